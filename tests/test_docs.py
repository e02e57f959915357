"""The documentation: a short README front page, relative links and anchors that resolve, every docs page linked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, -1, -2 for repeats."""
    counts: dict[str, int] = {}
    slugs, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            base = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            repeat = counts.get(base, 0)
            slugs.add(f"{base}-{repeat}" if repeat else base)
            counts[base] = repeat + 1
    return slugs


def links(path: Path) -> list[str]:
    """Every link and image target in a Markdown file's prose."""
    return [m.group(1) for line in prose(path.read_text()) for m in LINK.finditer(line)]


def test_readme_is_a_front_page_of_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(README) if not EXTERNAL.match(t)}
    assert PAGES
    assert [p.name for p in PAGES if p not in linked] == []


def test_anchor_rule_matches_github_on_examples(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A: b, “c” (d)\n## `--out`: e\n## F\n## F\n```\n# not a heading\n```\n## α-JS 3\n")
    assert anchors(page) == {"a-b-c-d", "--out-e", "f", "f-1", "α-js-3"}
