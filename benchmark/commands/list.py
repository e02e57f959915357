"""`python -m benchmark list [methods|backbones|experiments] [PATTERN]`: what the benchmark can compare, and the
experiments already run here."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "list"
HELP = ("List registered methods and backbones (parameters with defaults, description, search space, citation), or past "
        "experiments (list experiments)")
KINDS = ("methods", "backbones")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=(*KINDS, "experiments"),
                        help="what to list (default: methods and backbones); experiments: output folders under --under "
                             "and those named by experiments/*.yaml, with runs, done/failed, last finish and data")
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch wildcard on names, e.g. 'res*' (default: *)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a plugin (module name or .py file) first, so its methods are listed; repeatable")
    parser.add_argument("--under", type=Path, default=Path("runs"), metavar="DIR",
                        help="list experiments: the folder holding output folders (default: runs)")


def method_lines(name: str) -> list[str]:
    import methods

    info = methods.method_info(name)
    params = ", ".join(f"{p}: {type_name} = {default!r}" for p, (type_name, default) in info["params"].items())
    space = ", ".join(f"{p} ~ {dim.describe()}" for p, dim in info["space"].items()) or "nothing of its own"
    return [f"{name}({params})", f"    {info['description']}", f"    tunes: {space}", f"    cite: {info['citation']}"]


def backbone_lines(name: str) -> list[str]:
    import methods

    info = methods.backbone_info(name)
    lines = [f"{name}  (min image size {info['min_image_size']})", f"    {info['description']}"]
    if info["notes"]:
        lines.append(f"    notes: {info['notes']}")
    return lines + [f"    cite: {info['citation']}"]


def main(args: argparse.Namespace) -> int:
    import methods
    from benchmark.errors import unknown_name_hint

    if args.kind == "experiments":
        return _experiments(args)
    methods.load_plugins(args.plugin, Path.cwd())
    sections = {
        "methods": ("methods", methods.list_methods, method_lines),
        "backbones": ("backbones (any other timm architecture: timm:<name>)", methods.list_backbones, backbone_lines),
    }
    blocks = []
    for kind in [args.kind] if args.kind else KINDS:
        title, names, describe = sections[kind]
        found = names(args.pattern)
        body = [line for name in found for line in describe(name)] or [
            f"(no {kind} match '{args.pattern}'; {unknown_name_hint(args.pattern, names('*'))})"]
        blocks.append("\n".join([f"{title}:"] + ["  " + line for line in body]))
    print("\n\n".join(blocks))
    return 0


def _experiments(args: argparse.Namespace) -> int:
    from fnmatch import fnmatch

    from benchmark.experiments_index import find, table

    found = [e for e in find(args.under) if fnmatch(e.name, args.pattern)]
    if not found:
        print(f"(no experiment output folders under {args.under}/ or named by experiments/*.yaml"
              + ("" if args.pattern == "*" else f" matching '{args.pattern}'") + "; `python -m benchmark run FILE` makes one)")
        return 0
    print(table(found))
    return 0
