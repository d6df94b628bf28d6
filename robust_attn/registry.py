"""One registry type for models, attacks and datasets: names map to (frozen config, builder).

A duplicate name is an error at registration; an unknown name is a :class:`UserError` that lists
the closest known names.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import unknown_name

C = TypeVar("C")
F = TypeVar("F", bound=Callable)


class Registry(Generic[C, F]):
    def __init__(self, kind: str, entry_points: str | None = None):
        """``entry_points``: the entry-point group whose plugins register more entries (loaded on first use)."""
        self.kind = kind
        self.entry_points = entry_points
        self._entries: dict[str, tuple[C, F]] = {}

    def register(self, name: str, cfg: C) -> Callable[[F], F]:
        """Decorator registering ``builder`` under ``name`` with ``cfg``."""

        def decorator(builder: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = (cfg, builder)
            return builder

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style ``pattern``, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def cfg(self, name: str) -> C:
        return self.entry(name)[0]

    def builder(self, name: str) -> F:
        return self.entry(name)[1]

    def entry(self, name: str) -> tuple[C, F]:
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        return self._entries[name]
