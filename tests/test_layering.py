"""The module graph: no import cycle among the package's modules, and `methods` never imports `benchmark`.

Only imports executed when a module loads count (module level, including `if TYPE_CHECKING:` excluded); an import
inside a function is a deliberate lazy import and does not tie the modules' loading together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "methods")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules imported at load time: module-level statements, skipping `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _graph() -> nx.DiGraph:
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        imports = _load_time_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        for target in imports:
            # a module's own ancestor packages are always loading already (Python imports parents first)
            if target in modules and target != name and not name.startswith(target + "."):
                graph.add_edge(name, target)
    return graph


def test_no_import_cycle_between_modules():
    cycles = list(nx.simple_cycles(_graph()))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_methods_load_without_the_benchmark():
    graph = _graph()
    for module in [m for m in graph if m.startswith("methods")]:
        reached = nx.descendants(graph, module)
        assert not [m for m in reached if m.startswith("benchmark")], module


@pytest.mark.parametrize("module", ["benchmark.plan", "benchmark.config", "benchmark.rundir", "benchmark.atomic"])
def test_lower_layers_do_not_load_the_runner_or_the_report(module):
    reached = nx.descendants(_graph(), module)
    assert not [m for m in reached if m.startswith(("benchmark.runner", "benchmark.report", "benchmark.executors"))]
