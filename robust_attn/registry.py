"""One registry type for models, attacks and datasets: names map to (frozen config, builder).

A duplicate name is an error at registration; an unknown name is a :class:`UserError` that lists
the closest known names.

A registry built with ``entry_points="GROUP"`` also holds what installed packages register: on its
first use (``names``, ``cfg``, ``builder``, ``entry``) every entry point of that group is loaded
once, in name order. An entry point names a module (``pkg.models``: importing it registers, e.g.
through ``@register_model``) or a callable (``pkg.models:register``: called with no arguments after
its module is imported, to register). A plugin that fails to load, or registers a name that is
taken, is a one-line :class:`UserError` naming it, raised on every use of the registry from then on
(a broken plugin is not silently left out, and is not imported again).
"""
from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import UserError, unknown_name

C = TypeVar("C")
F = TypeVar("F", bound=Callable)


class Registry(Generic[C, F]):
    def __init__(self, kind: str, entry_points: str | None = None):
        """``entry_points``: the entry-point group whose plugins register more entries (loaded on first use)."""
        self.kind = kind
        self.entry_points = entry_points
        self._entries: dict[str, tuple[C, F]] = {}
        self._plugins_loaded = entry_points is None
        self._plugin_error: UserError | None = None

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
        self._load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def cfg(self, name: str) -> C:
        return self.entry(name)[0]

    def builder(self, name: str) -> F:
        return self.entry(name)[1]

    def entry(self, name: str) -> tuple[C, F]:
        self._load_plugins()
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        return self._entries[name]

    # ------------------------------------------------------------ plugins
    def _load_plugins(self) -> None:
        """Load the entry-point group's plugins, once; a failure is raised again on every later use."""
        if self._plugins_loaded:
            if self._plugin_error is not None:
                raise self._plugin_error
            return
        self._plugins_loaded = True  # before loading: a plugin that lists our names must not recurse
        from importlib.metadata import entry_points

        seen: set[tuple[str, str]] = set()
        for ep in sorted(entry_points(group=self.entry_points), key=lambda e: (e.name, e.value)):
            if (ep.name, ep.value) in seen:  # one distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            try:
                self._load_plugin(ep)
            except Exception as exc:  # whatever the plugin raised: one line naming it
                dist = getattr(getattr(ep, "dist", None), "name", None)
                where = f"{ep.value}" + (f", from {dist}" if dist else "")
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self._plugin_error = UserError(
                    f"{self.kind} plugin {ep.name!r} ({where}; entry-point group {self.entry_points}) failed to "
                    f"load: {type(exc).__name__}" + (f": {why}" if why else "")
                )
                raise self._plugin_error from exc

    def _load_plugin(self, ep) -> None:
        obj = ep.load()
        if inspect.ismodule(obj):
            return  # importing it registered its entries
        if any(obj is builder for _, builder in self._entries.values()):
            return  # the entry point names a registered builder: importing its module was the registration
        if not callable(obj):
            raise TypeError(f"{ep.value} is neither a module nor a callable")
        obj()
