"""The sweep's cells in the run's keyed store (:class:`robust_attn.run.KeyedStore`).

A cell's settings: checkpoint hash and display name, the evaluation images' hash, n, seed, batch size
(it sets the per-batch seeds), the attack and its parameters, the eps values up to this cell (the
envelope and the still-robust path depend on them), how the number is computed, AMP, device type,
memory format and the versions. Its file holds the row and the per-example state; its attention
panel, where made, sits beside it as ``<key>.npz``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_bytes
from ..results import CELL, DESCRIPTIVE_COLUMNS, AccuracyMethod, ResultRow, row_from_record
from ..run import KeyedStore, cell_key
from .panels import Panel
from .walks import Cell

log = logging.getLogger(__name__)

CELLS_DIR = "cells"
IDENTITY = CELL  # the settings that make two cells answer the same question; any other setting must agree

__all__ = ["CELLS_DIR", "IDENTITY", "CellStore", "Stored", "cell_key"]


@dataclass(frozen=True)
class Stored:
    """A finished cell read back from the store."""

    settings: dict[str, Any]
    row: ResultRow
    cell: Cell


class CellStore(KeyedStore[ResultRow]):
    """Finished cells under ``OUT/cells/<key>.json`` (settings, row, per-example state) plus
    ``<key>.npz`` (attention panels, where made). The index keeps the rows; the per-example state is
    read when a cell is resumed."""

    def __init__(self, out: Path):
        super().__init__(out, CELLS_DIR, IDENTITY)

    def decode(self, blob: dict[str, Any]) -> ResultRow:
        return row_from_record(ResultRow, blob["row"], DESCRIPTIVE_COLUMNS)

    def rows(self) -> list[ResultRow]:
        """Every finished cell of the folder, whichever command computed it."""
        return [row for _, row in self.entries()]

    def check_conflict(self, settings: Mapping[str, Any]) -> None:
        """Refuse settings that differ from a stored cell answering the same question."""
        self.refuse_other_settings(settings, f"{settings['model']} {settings['attack']} eps {settings['eps_label']}")

    def load(self, settings: Mapping[str, Any], facts: Mapping[str, Any] | None = None) -> Stored | None:
        """The finished cell with these settings (None: not stored, or unreadable: computed again).
        ``facts``: the descriptive columns this run writes for it (see ``results.DESCRIPTIVE_COLUMNS``),
        which replace the stored ones (a cell stored by 0.3 has none: its file is rewritten with them)."""
        stored_row = self.get(settings)
        if stored_row is None:
            return None
        path = self.path(settings)
        try:
            blob = json.loads(path.read_text())
            method = AccuracyMethod(blob["row"]["accuracy_method"])
            cell = Cell(
                torch.tensor(blob["adv_pred"], dtype=torch.long), torch.tensor(blob["norm"], dtype=torch.float32),
                torch.tensor(blob["robust"], dtype=torch.bool), torch.tensor(blob["worst_case"], dtype=torch.bool),
                torch.tensor(blob["failed"], dtype=torch.bool), float(blob["row"]["max_perturbation"]), method,
                shift=None if blob.get("shift") is None else torch.tensor(blob["shift"], dtype=torch.float64),
            )
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("recomputing unreadable cell %s (%s)", path, exc)
            return None
        panel_path = self.path(settings, ".npz")
        if panel_path.is_file():
            try:
                cell = Cell(**{**cell.__dict__, "panel": Panel.from_bytes(panel_path.read_bytes())})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("recomputing cell %s: its panel file is unreadable (%s)", path, exc)
                return None
        if facts is not None:
            if any(getattr(stored_row, c) != v for c, v in facts.items()):
                stored_row = dataclasses.replace(stored_row, **facts)
                blob.pop("settings", None)
                self.put(settings, stored_row, {**blob, "row": vars(stored_row)})
        return Stored(dict(settings), stored_row, cell)

    def save(self, settings: Mapping[str, Any], row: ResultRow, cell: Cell, labels: torch.Tensor,
             clean_pred: torch.Tensor) -> None:
        if cell.panel is not None:  # first, so a cell file never points at a missing panel
            atomic_write_bytes(self.path(settings, ".npz"), cell.panel.to_bytes())
        self.put(settings, row, {
            "row": vars(row), "label": labels.tolist(), "clean_pred": clean_pred.tolist(),
            "adv_pred": cell.adv_pred.tolist(), "norm": cell.norm.tolist(), "robust": cell.robust.int().tolist(),
            "worst_case": cell.worst_case.int().tolist(), "failed": cell.failed.int().tolist(),
            "shift": None if cell.shift is None else cell.shift.tolist(),
        })

    def examples(self) -> Iterator[tuple[dict[str, Any], ResultRow, dict[str, list]]]:
        """(settings, row, per-example lists) of every stored cell, for per_example.csv."""
        for settings, row in self.entries():
            try:
                blob = json.loads(self.path(settings).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("skipping unreadable cell %s (%s)", cell_key(settings), exc)
                continue
            yield settings, row, blob
