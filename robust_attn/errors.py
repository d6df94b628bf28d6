"""The one exception type that means "the user asked for something invalid".

The CLI turns a :class:`UserError` into a single stderr line and exit status 2;
any other exception is a bug and keeps its traceback (shown with ``--debug``).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """A bad name, number, path or file supplied by the user."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UserError:
    """Build the error for an unknown registry name, listing the closest known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known)}"
    return UserError(f"unknown {kind} {name!r}; {hint}")


def require_int(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an integer (not a bool) >= ``minimum``, else a one-line :class:`UserError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
