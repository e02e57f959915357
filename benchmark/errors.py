"""The one error type a user sees (one line, exit code 2), its "did you mean" hints and short echoes of values.

`UserError`, the hints and `brief` are defined in `methods.errors`, so that the method and backbone registries stand
without the benchmark; these are the same objects, so `except UserError` here catches what `methods` raises.
"""

from __future__ import annotations

from methods.errors import ECHO_LIMIT, UserError, brief, did_you_mean, unknown_name_hint

__all__ = ["ECHO_LIMIT", "UserError", "brief", "did_you_mean", "safe_name", "unknown_name_hint"]


def safe_name(name: object, limit: int | None = None) -> str:
    """A file name, key or path for a one-line message: as it is when printable, else its repr (a newline, a control
    character or a byte that is not UTF-8 is escaped, so it cannot break or forge a line); cut to `limit` if given."""
    text = str(name)
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    return repr(text) if limit is None else brief(text, limit)
