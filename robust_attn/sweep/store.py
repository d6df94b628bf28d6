"""A results folder as a store: finished cells, keyed by everything that can change their numbers,
the lock that keeps one writer at a time, and the append-only log of the commands that wrote there.

A cell's key is the hash of its *settings*: checkpoint hash and display name, the evaluation
images' hash, n, seed, batch size (it sets the per-batch seeds), the attack and its parameters, the
eps values up to this cell (the envelope and the still-robust path depend on them), how the number
is computed, AMP, device type, memory format and the package / torch / torchattacks / foolbox
versions. A rerun with identical settings resumes; a command whose settings differ from a cell
the folder already holds for the same (model, data, attack, eps) is refused with the setting named,
so no old number is ever returned for new settings and no finished cell is ever dropped.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..files import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from ..results import RUNS_FILE, AccuracyMethod, ResultRow
from .panels import Panel
from .walks import Cell

log = logging.getLogger(__name__)

CELLS_DIR = "cells"
LOCK_FILE = ".lock"
# The settings that make two cells answer the same question; any other setting must agree.
IDENTITY = ("model", "dataset", "n", "attack", "attack_params", "eps_label")


def cell_key(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def identity(settings: Mapping[str, Any]) -> tuple:
    return tuple(json.dumps(settings[k]) for k in IDENTITY)


def _describe(name: str, value: Any) -> str:
    if name == "eps":
        return "eps grid " + ",".join(value)
    if isinstance(value, str) and len(value) == 64:
        return f"{name} {value[:12]}"
    return f"{name}={value}"


@dataclass(frozen=True)
class Stored:
    """A finished cell read back from the store."""

    settings: dict[str, Any]
    row: ResultRow
    cell: Cell


class CellStore:
    """Finished cells under ``OUT/cells/<key>.json`` (settings, row, per-example state) plus
    ``<key>.npz`` (attention panels, where made); every file written atomically."""

    def __init__(self, out: Path):
        self.dir = out / CELLS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, dict[str, Any]] = {}  # key -> {"settings", "row"}
        for path in sorted(self.dir.glob("*.json")):
            try:
                blob = json.loads(path.read_text())
                self._index[path.stem] = {"settings": blob["settings"], "row": ResultRow(**blob["row"])}
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable or older-format cell %s (%s)", path, exc)
        self._by_identity = {identity(v["settings"]): k for k, v in self._index.items()}

    def rows(self) -> list[ResultRow]:
        """Every finished cell of the folder, whichever command computed it."""
        return [v["row"] for v in self._index.values()]

    def check_conflict(self, settings: Mapping[str, Any]) -> None:
        """Refuse settings that differ from a stored cell answering the same question."""
        key = self._by_identity.get(identity(settings))
        if key is None or key == cell_key(settings):
            return
        old = self._index[key]["settings"]
        differs = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
        what = "; ".join(f"{_describe(k, old.get(k))} there, {_describe(k, settings.get(k))} now" for k in differs[:2])
        raise UserError(
            f"{self.dir.parent} already holds {settings['model']} {settings['attack']} eps {settings['eps_label']} "
            f"computed with other settings ({what}); rerun with the same settings or use another --out"
        )

    def load(self, settings: Mapping[str, Any]) -> Stored | None:
        key = cell_key(settings)
        if key not in self._index:
            return None
        path = self.dir / f"{key}.json"
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
        panel_path = self.dir / f"{key}.npz"
        if panel_path.is_file():
            try:
                cell = Cell(**{**cell.__dict__, "panel": Panel.from_bytes(panel_path.read_bytes())})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("recomputing cell %s: its panel file is unreadable (%s)", path, exc)
                return None
        return Stored(dict(blob["settings"]), self._index[key]["row"], cell)

    def save(self, settings: Mapping[str, Any], row: ResultRow, cell: Cell, labels: torch.Tensor,
             clean_pred: torch.Tensor) -> None:
        key = cell_key(settings)
        if cell.panel is not None:  # first, so a cell file never points at a missing panel
            atomic_write_bytes(self.dir / f"{key}.npz", cell.panel.to_bytes())
        blob = {"settings": dict(settings), "row": vars(row), "label": labels.tolist(), "clean_pred": clean_pred.tolist(),
                "adv_pred": cell.adv_pred.tolist(),
                "norm": cell.norm.tolist(), "robust": cell.robust.int().tolist(),
                "worst_case": cell.worst_case.int().tolist(), "failed": cell.failed.int().tolist(),
                "shift": None if cell.shift is None else cell.shift.tolist()}
        atomic_write_text(self.dir / f"{key}.json", json.dumps(blob))
        self._index[key] = {"settings": dict(settings), "row": row}
        self._by_identity[identity(settings)] = key

    def examples(self) -> Iterator[tuple[dict[str, Any], ResultRow, dict[str, list]]]:
        """(settings, row, per-example lists) of every stored cell, for per_example.csv."""
        for key, entry in self._index.items():
            try:
                blob = json.loads((self.dir / f"{key}.json").read_text())
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("skipping unreadable cell %s (%s)", key, exc)
                continue
            yield entry["settings"], entry["row"], blob


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """One writer per results folder: an OS file lock (released by the kernel if the process dies,
    taken atomically, whatever pid the process has). A second sweep on a busy folder is refused."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{out} is in use by another sweep; wait for it or use another --out") from None
    try:
        for folder in (out, out / CELLS_DIR):  # we are the only writer now: what a killed run was writing is junk
            for tmp in remove_stale_temporaries(folder):
                log.warning("removed %s, left by an interrupted write", tmp)
        yield
    finally:
        lock.release()


class RunLog:
    """``OUT/runs.jsonl``: one line when a command starts writing to the folder (its command line,
    settings, checkpoints and planned cells) and one when it ends (status, wall time). Append-only:
    a crashed run is the one with a start line and no end line."""

    def __init__(self, out: Path):
        self.path = out / RUNS_FILE

    def _append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def start(self, record: Mapping[str, Any]) -> str:
        run_id = hashlib.sha256(f"{time.time_ns()}:{os.getpid()}".encode()).hexdigest()[:12]
        self._append({"event": "start", "run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record})
        return run_id

    def end(self, run_id: str, status: str, wall_seconds: float) -> None:
        self._append({"event": "end", "run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "status": status, "wall_seconds": round(wall_seconds, 2)})
