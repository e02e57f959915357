"""The one error type a user sees: a clear one-line message and exit code 2; "did you mean" hints for it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user (config, data, command line); printed as one line, exit 2."""

    exit_code = 2


def did_you_mean(value: object, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' naming the option closest to `value` (difflib), or '' when none is close."""
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name_hint(value: object, options: Iterable[str], n: int = 3) -> str:
    """'did you mean a, b?' naming up to n options close to `value`, else 'registered: <every option>'."""
    options = list(options)
    close = difflib.get_close_matches(str(value), options, n=n, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else f"registered: {', '.join(sorted(options))}"
