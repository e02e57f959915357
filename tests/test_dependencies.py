"""Every distribution the code and the tests import is declared in pyproject.toml (dependencies or an extra)."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
LOCAL = {"benchmark", "methods", "tests", "scripts", "readme_result", "config_doc", "results_csv_time"}


def _imported_top_level() -> dict[str, str]:
    """Top-level module → a file importing it, over benchmark/, methods/, tests/ and scripts/."""
    found: dict[str, str] = {}
    for path in [p for folder in ("benchmark", "methods", "tests", "scripts") for p in (REPO / folder).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_every_imported_distribution_is_declared():
    owners = metadata.packages_distributions()
    declared = _declared()
    missing = []
    for module, where in sorted(_imported_top_level().items()):
        if module in sys.stdlib_module_names or module in LOCAL or module not in owners:
            continue
        names = {d.lower().replace("_", "-") for d in owners[module]}
        if not names & declared:
            missing.append(f"{module} ({'/'.join(sorted(names))}, imported by {where})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
