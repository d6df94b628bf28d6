"""A run's keyed cell store: finished cells as ``<key>.json`` files under one folder of the results
folder, the key a hash of the cell's *settings* (everything that can change its numbers).

A rerun with identical settings finds the cell and resumes; settings that differ from a stored cell
answering the same question (the same *identity*: model or source, data, attack, eps) are refused with
the setting named, so no old number is ever returned for new settings and no finished cell is ever
dropped. Each kind of run says what a cell holds and how it reads back (:meth:`KeyedStore.decode`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import UserError
from ..files import atomic_write_text

log = logging.getLogger(__name__)

Entry = TypeVar("Entry")


def cell_key(settings: Mapping[str, Any]) -> str:
    """The hash of a cell's settings: its file name in the store."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def describe_setting(name: str, value: Any) -> str:
    """A setting as a refusal names it (an eps grid as its values, a hash by its first digits)."""
    if name == "eps" and isinstance(value, list):
        return "eps grid " + ",".join(value)
    if isinstance(value, str) and len(value) == 64:
        return f"{name} {value[:12]}"
    return f"{name}={value}"


class KeyedStore(Generic[Entry]):
    """Finished cells under ``out/<folder>/<key>.json``, each ``{"settings": ..., **what the run stores}``
    and read back once into an in-memory index; every file written atomically.

    Subclasses say what an entry is: :meth:`decode` turns a stored blob into the entry the run keeps in
    memory (a blob it cannot read raises ``KeyError``, ``TypeError``, ``ValueError`` or ``AttributeError``
    and is skipped with a warning: that cell is computed again); :meth:`put` takes both the entry and
    the blob to write."""

    def __init__(self, out: Path, folder: str, identity: Sequence[str]):
        self.out = out
        self.dir = out / folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.identity_keys = tuple(identity)
        self._settings: dict[str, dict[str, Any]] = {}
        self._entries: dict[str, Entry] = {}
        for path in sorted(self.dir.glob("*.json")):
            try:
                blob = json.loads(path.read_text())
                entry = self.decode(blob)
                self._identity(blob["settings"])  # a KeyError marks a file of another format
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("ignoring unreadable or older-format cell %s (%s)", path, exc)
                continue
            self._settings[path.stem] = dict(blob["settings"])
            self._entries[path.stem] = entry
        self._by_identity = {self._identity(s): k for k, s in self._settings.items()}

    def decode(self, blob: dict[str, Any]) -> Entry:
        """The in-memory entry of a stored blob: the subclass's."""
        raise NotImplementedError

    # ---- the store
    def _identity(self, settings: Mapping[str, Any]) -> tuple:
        return tuple(json.dumps(settings[k]) for k in self.identity_keys)

    def path(self, settings: Mapping[str, Any], suffix: str = ".json") -> Path:
        return self.dir / f"{cell_key(settings)}{suffix}"

    def entries(self) -> Iterator[tuple[dict[str, Any], Entry]]:
        """(settings, entry) of every finished cell of the folder, whichever command computed it."""
        for key, entry in self._entries.items():
            yield self._settings[key], entry

    def get(self, settings: Mapping[str, Any]) -> Entry | None:
        return self._entries.get(cell_key(settings))

    def stored_settings(self, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """The settings of the stored cell answering the same question as ``settings`` (None: none)."""
        key = self._by_identity.get(self._identity(settings))
        return None if key is None else self._settings[key]

    def refuse_other_settings(self, settings: Mapping[str, Any], what: str) -> None:
        """Refuse ``settings`` that differ from a stored cell answering the same question (``what`` names
        that question in the refusal)."""
        old = self.stored_settings(settings)
        if old is None or cell_key(old) == cell_key(settings):
            return
        differs = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
        diff = "; ".join(f"{describe_setting(k, old.get(k))} there, {describe_setting(k, settings.get(k))} now"
                         for k in differs[:2])
        raise UserError(f"{self.out} already holds {what} computed with other settings ({diff}); rerun with the "
                        f"same settings or use another --out")

    def put(self, settings: Mapping[str, Any], entry: Entry, blob: Mapping[str, Any]) -> None:
        """Store a finished cell: ``blob`` (JSON-ready; ``decode`` reads it back as ``entry``) on disk."""
        key = cell_key(settings)
        atomic_write_text(self.dir / f"{key}.json", json.dumps({"settings": dict(settings), **blob}))
        self._settings[key] = dict(settings)
        self._entries[key] = entry
        self._by_identity[self._identity(settings)] = key
