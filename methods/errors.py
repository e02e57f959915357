"""The error bad input raises (one clear line, exit code 2), "did you mean" hints and short echoes of values for it.

It lives here so that the registries work without the benchmark; `benchmark.errors` re-exports the same objects.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user (config, data, command line, a name or parameter); printed as one line, exit 2."""

    exit_code = 2


def _comparable(value: object) -> str:
    """The text to match against names: a short string as it is, anything else (a huge value) as nothing."""
    return value if isinstance(value, str) and len(value) <= 200 else ""


def did_you_mean(value: object, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' naming the option closest to `value` (difflib), or '' when none is close."""
    close = difflib.get_close_matches(_comparable(value), list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name_hint(value: object, options: Iterable[str], n: int = 3) -> str:
    """'did you mean a, b?' naming up to n options close to `value`, else 'registered: <every option>'."""
    options = list(options)
    close = difflib.get_close_matches(_comparable(value), options, n=n, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else f"registered: {', '.join(sorted(options))}"


ECHO_LIMIT = 80


def _short_repr() -> reprlib.Repr:
    shorter = reprlib.Repr()
    shorter.maxlevel, shorter.maxlist, shorter.maxtuple, shorter.maxdict, shorter.maxset = 3, 6, 6, 6, 6
    shorter.maxstring, shorter.maxother, shorter.maxlong = ECHO_LIMIT, ECHO_LIMIT, ECHO_LIMIT
    return shorter


_SHORT_REPR = _short_repr()


def brief(value: object, limit: int = ECHO_LIMIT) -> str:
    """repr(value) cut to about `limit` characters, without building the whole repr of a huge or nested value."""
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({type(value).__name__}, cut)"
