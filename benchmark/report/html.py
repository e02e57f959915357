"""The self-contained index.html: tables, embedded figures, statistics, config, provenance, data audit."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from benchmark.pages import markdown_html
from benchmark.report.figures import Figure

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1320px;
       padding: 16px 28px 60px; color: #1d2330; line-height: 1.45; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #dde3ec; padding-bottom: 4px; margin-top: 36px; }
.sub { color: #5a6476; margin-top: 0; }
nav a { margin-right: 14px; }
.note { background: #f4f7fb; border-left: 4px solid #7a9cc6; padding: 8px 12px; margin: 10px 0; }
.warn { background: #fff6e5; border-left: 4px solid #e0a030; padding: 8px 12px; margin: 10px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 13.5px; }
th, td { border: 1px solid #d4dae3; padding: 4px 9px; text-align: right; white-space: nowrap; }
th { background: #eef2f7; white-space: normal; } thead th { text-align: center; }
tbody th, td:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
table.kv td:first-child { font-weight: 600; background: #f7f9fc; } table.kv td { text-align: left; white-space: normal; }
figure { margin: 18px 0 30px; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ee; }
figcaption { color: #4a5467; font-size: 13.5px; margin-top: 4px; }
pre { background: #f6f8fa; padding: 10px 12px; overflow-x: auto; font-size: 12.5px; border: 1px solid #e3e7ee; }
.audit { border: 1px solid #e3e7ee; padding: 4px 16px; }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ name }} — solderbench report</title>
<style>{{ style }}</style></head><body>
<h1>{{ name }}</h1>
<p class="sub">solderbench report · {{ provenance["Runs"] }} · {{ provenance["Report generated"] }}</p>
<nav>{% for anchor, title in sections %}<a href="#{{ anchor }}">{{ title }}</a>{% endfor %}</nav>
{% if warnings %}<div class="warn">{% for w in warnings %}<div>{{ w }}</div>{% endfor %}</div>{% endif %}
<h2 id="results">Results</h2>
<div class="note">Cells: mean ± standard deviation over folds × repeats × seeds of the test fold, best per column in
bold; (n/N) marks cells with fewer finished runs than planned. “(selected)” rows choose, per backbone, fold, repeat and
seed, the setting with the best inner-validation {{ select_by }}: the fair comparison used in figures and statistics.
{% if oracle %}“(oracle)” rows choose by the test score instead: optimistic, never bold.{% endif %}</div>
{% if tuning_note %}<div class="note" id="tuning">{{ tuning_note }}</div>{% endif %}
<div class="note" id="conventions">{% if f1_note %}{{ f1_note }} {% endif %}{{ conventions }}</div>
{% for table in tables %}<div class="scroll">{{ table }}</div>{% endfor %}
<h2 id="statistics">Statistics</h2>
<div class="note">Each method's fair row against <b>{{ baseline or "—" }}</b> on the same (fold, repeat, seed),
per backbone: mean difference with a 95% t-interval using the Nadeau–Bengio corrected variance
((1/J + n_test/n_train)·s²), the corrected resampled t-test and the Wilcoxon signed-rank test, each Holm-corrected
across methods (tests that are undefined are left out of the correction). Friedman test and Nemenyi post-hoc over
complete backbone × fold × repeat × seed blocks. When all differences of a comparison are equal (zero variance) the
t-test and its interval are undefined and shown as such, never as p = 0; when all are 0 (identical on every pair) the
Wilcoxon p is 1.</div>
{% if pairwise %}<div class="scroll">{{ pairwise }}</div>{% else %}<p>No baseline runs: pairwise tests skipped.</p>{% endif %}
{% if friedman %}<div class="scroll">{{ friedman }}</div>{% endif %}
{% for note in stat_notes %}<p>{{ note }}</p>{% endfor %}
<h2 id="figures">Figures</h2>
{% for fig in figures %}<figure id="fig-{{ fig.name }}"><img alt="{{ fig.title }}" src="data:image/png;base64,{{ fig.png }}">
<figcaption><b>{{ fig.title }}.</b> {{ fig.caption }} (<a href="figures/{{ fig.name }}.svg">SVG</a>)</figcaption></figure>
{% else %}<p>No finished runs to plot.</p>{% endfor %}
<h2 id="runs">Runs</h2>
<div class="scroll">{{ status }}</div>
{% if failures %}<div class="scroll">{{ failures }}</div>{% endif %}
{% if selection %}<h3>Selected settings</h3><p>How often each setting was chosen by the inner-validation score.</p>
<div class="scroll">{{ selection }}</div>{% endif %}
{% if audit %}<h2 id="audit">Data audit</h2><div class="audit">{{ audit }}</div>{% endif %}
{% if explain %}<h2 id="explain">Activation maps, noise and feature diversity</h2><div class="audit">{{ explain }}</div>{% endif %}
<h2 id="config">Experiment config</h2>
{% if config %}<pre>{{ config }}</pre>{% else %}<p>config.resolved.yaml not found.</p>{% endif %}
<h2 id="provenance">Provenance</h2>
<table class="kv">{% for key, value in provenance.items() %}<tr><td>{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}</table>
<p>Files next to this page: results.csv, epochs.csv, tables/ (Markdown, LaTeX, CSV), stats/, figures/ (PNG, SVG).</p>
</body></html>
"""


CONVENTIONS = (
    "Macro-F1 averages over all K classes (a class absent from both truth and prediction counts as 0; "
    "scikit-learn's default skips it); ECE is top-label with 15 equal-width, right-closed bins; Brier sums over "
    "classes (2× scikit-learn's binary score); NLL clips probabilities at 1e-15."
)


def _base64_file(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _embed(figure: Figure, directory: Path) -> dict:
    png = _base64_file(directory / f"{figure.name}.png")
    return {"name": figure.name, "title": figure.title, "caption": figure.caption, "png": png}


def markdown_section(text: str, base_dir: Path | None = None) -> Markup:
    """Markdown rendered to HTML, its local images embedded as data URIs so the page stays self-contained."""
    body = markdown_html(text)
    if base_dir is not None:
        def embed(match: re.Match) -> str:
            path = base_dir / match.group(1)
            if not path.is_file():
                return match.group(0)
            kind = "svg+xml" if path.suffix.lower() == ".svg" else path.suffix.lower().lstrip(".")
            return f'src="data:image/{kind};base64,{_base64_file(path)}"'

        body = re.sub(r'src="(?!data:|https?:)([^"]+)"', embed, body)
    return Markup(body)


def render(
    *, name: str, tables: list[str], pairwise: str, friedman: str, stat_notes: list[str], figures: list[Figure],
    figure_dir: Path, status: str, failures: str, selection: str, audit_md: str, config: str, provenance: dict,
    explain_md: str = "", explain_dir: Path | None = None,
    warnings: list[str], baseline: str | None, select_by: str, oracle: bool, f1_note: str = "", tuning_note: str = "",
) -> str:
    """The page as a string; the HTML tables come escaped from `benchmark.pages.html_table`, the Markdown sections are
    rendered without raw HTML, everything else is escaped by the template."""
    sections = [("results", "Results"), ("statistics", "Statistics"), ("figures", "Figures"), ("runs", "Runs")]
    sections += [("audit", "Data audit")] if audit_md else []
    sections += [("explain", "Activation maps")] if explain_md else []
    sections += [("config", "Config"), ("provenance", "Provenance")]
    audit = markdown_section(audit_md) if audit_md else ""
    explain = markdown_section(explain_md, explain_dir) if explain_md else ""
    template = Environment(autoescape=True).from_string(TEMPLATE)
    return template.render(
        name=name, style=Markup(STYLE), sections=sections, tables=[Markup(t) for t in tables],
        pairwise=Markup(pairwise), friedman=Markup(friedman), stat_notes=stat_notes,
        figures=[_embed(f, figure_dir) for f in figures], status=Markup(status), failures=Markup(failures),
        selection=Markup(selection), audit=audit, explain=explain, config=config, provenance=provenance, warnings=warnings,
        baseline=baseline, select_by=select_by, oracle=oracle, f1_note=f1_note, conventions=CONVENTIONS,
        tuning_note=tuning_note,
    )
