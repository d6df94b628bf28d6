"""``KEY=VALUE`` arguments as a command line gives them (``--attack-arg steps=20``, ``--model-arg depth=56``).

One reading for every option of that form, so they all accept and refuse the same things; each registry
types the values against its own declared defaults afterwards.
"""
from __future__ import annotations

from collections.abc import Iterable

from .errors import UserError

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


def split_key_values(items: Iterable[str] | None, option: str) -> dict[str, str]:
    """``["steps=20", " random_start = false "]`` -> ``{"steps": "20", "random_start": "false"}``; an item
    without a key, a ``=`` or a value, and a key given twice with different values (which one would win is
    a guess), are each a one-line :class:`UserError` naming ``option``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UserError(f"{option} expects KEY=VALUE, got {item!r}")
        if out.get(key, value) != value:
            raise UserError(f"{option} gives {key} twice: {key}={out[key]} and {key}={value}")
        out[key] = value
    return out


def parse_bool(text: str) -> bool:
    """``true``/``1``/``yes`` or ``false``/``0``/``no`` (any case); anything else is a ValueError."""
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(f"not a boolean: {text!r}")
