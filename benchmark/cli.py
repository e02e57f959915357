"""`python -m benchmark <command>`: discovers the sub-commands in `benchmark.commands`."""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys

from benchmark import commands
from benchmark.errors import UserError

# The OSErrors of the machine rather than of the program (full disk or quota, read-only or forbidden folder, failing
# device): one line and exit code 1; any other OSError is a bug and keeps its traceback.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def _command_modules() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"benchmark.commands.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="solderbench: fine-grained classification methods under one cross-validated protocol.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _command_modules():
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; run the same command again to resume.", file=sys.stderr)
        return 130


def os_error_line(exc: OSError) -> str:
    """'PATH: No space left on device (ENOSPC); ...': what failed where, and what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    return (f"{where}{exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)}); free space or make the "
            "folder writable, then run the same command again")
