"""The one path by which text from data and runs (file names, error messages, method, class and backbone names) reaches
a page: HTML tables escaped, Markdown rendered without raw HTML or script links, Markdown table cells that a `|` or a
newline cannot break."""

from __future__ import annotations

import html
import re
from xml.etree.ElementTree import Element

import markdown
import pandas as pd
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from pandas.io.formats.style import Styler

SAFE_URL = re.compile(r"^(?:https?:|mailto:|#|data:image/(?:png|jpeg|gif|webp);)|^(?![a-zA-Z][a-zA-Z0-9+.-]*:)")


def html_table(styler: Styler, caption: str | None = None, precision: int | None = None) -> str:
    """A pandas table as HTML with every cell, header and the caption escaped."""
    styler = styler.format(escape="html", precision=precision)
    styler = styler.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    if caption is not None:
        styler = styler.set_caption(html.escape(caption))
    return styler.to_html()


class _SafeLinks(Treeprocessor):
    """Links and images whose address is not http(s), mailto, an anchor, a relative path or an embedded image lose it."""

    def run(self, root: Element) -> None:
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is not None and not SAFE_URL.match(value.strip()):
                    element.set(attribute, "")


class _NoRawHtml(Extension):
    """Raw HTML in the Markdown source is shown as text, never passed through."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Python-Markdown's name
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_SafeLinks(md), "safe_links", 0)


def markdown_html(text: str) -> str:
    """Markdown (tables, fenced code) as HTML without any raw HTML or script link from the source."""
    return markdown.markdown(text, extensions=["tables", "fenced_code", _NoRawHtml()])


def md_cell(value: object) -> str:
    """A Markdown table cell: `|` escaped, line breaks as spaces."""
    return re.sub(r"[\r\n]+", " ", str(value)).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, index: bool = True, **options) -> str:
    """`DataFrame.to_markdown` with every text cell, header and index label passed through `md_cell`."""
    shown = frame.copy()
    shown.columns = [md_cell(c) for c in shown.columns]
    if index:
        name = shown.index.name
        shown.index = pd.Index([md_cell(i) for i in shown.index], name=None if name is None else md_cell(name))
    for column in shown.columns:
        if not pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: md_cell(v) if isinstance(v, str) else v)
    return shown.to_markdown(index=index, **options)
