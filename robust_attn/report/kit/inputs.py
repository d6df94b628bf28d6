"""What every report page reads besides its own tables: run logs (``runs.jsonl``: a start record per
command, an end record when it ends) as :class:`Run` records, the attacks they ran and could have run.

The files themselves are read by :mod:`robust_attn.results`' one reader per file kind (tables through
``read_table`` and its schemas, run logs through ``read_runs``); this module only shapes what a page
needs from them.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import UserError
from ...results import read_runs
from ..legacy import describe_catalog
from .labels import NOISE

NO_END = "no end record (crashed, killed, or still running)"


def require_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; a one-line :class:`UserError` naming ``what`` it should be when it is no folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{what} {folder} does not exist")
    return folder


@dataclass(frozen=True)
class Run:
    """One command that wrote to a folder, from its run log's start and end records."""

    folder: str
    run_id: str
    time: str | None
    command: str | None
    settings: dict[str, Any]
    attacks: list[dict[str, Any]]  # [{name, params, defaults}] as the run resolved them
    checkpoints: list[dict[str, Any]]
    planned: list[dict[str, Any]]
    status: str  # finished | interrupted | failed | NO_END
    wall_seconds: float | None
    catalog: dict[str, dict[str, Any]]  # every attack registered when the run started (see legacy.describe_catalog)
    missing: list[dict[str, Any]] = field(default_factory=list)  # planned cells the folder lacks (sweep folders)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def finished(self) -> bool:
        return self.status == "finished"


def _records(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def read_runs_log(folder: str | os.PathLike) -> list[Run]:
    """The runs of a folder's run log (:func:`robust_attn.results.read_runs`), in the order they started,
    as records a page reads (empty without a log)."""
    runs = []
    for s in read_runs(folder):
        wall, settings = s.get("wall_seconds"), s.get("settings")
        runs.append(Run(str(folder), str(s["run_id"]), s.get("time"), s.get("command"),
                        settings if isinstance(settings, dict) else {}, _records(s.get("attacks")),
                        _records(s.get("checkpoints")), _records(s.get("planned")), str(s.get("status") or NO_END),
                        wall if isinstance(wall, (int, float)) and not isinstance(wall, bool) else None,
                        describe_catalog(s)))
    return runs


def attack_defaults(runs: Iterable[Run]) -> dict[str, dict[str, Any]]:
    """Registered attack defaults where a run log records them (``attacks: [{name, params, defaults}]``)."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        for a in r.attacks:
            if isinstance(a.get("defaults"), dict):
                out[str(a.get("name"))] = a["defaults"]
    return out


def attack_catalog(runs: Sequence[Run], rows: pd.DataFrame | None = None) -> dict[str, dict[str, Any]]:
    """Every attack the runs' registries held (a later run's entry wins), so a page can name attacks that
    were not run; without a run log, the attacks of the rows present (``rows``: attack, norm, attack_kind,
    ce_gradient, objective)."""
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(runs, key=lambda r: str(r.time or "")):
        out.update(r.catalog)
    if out or rows is None or rows.empty:
        return out
    for r in rows.drop_duplicates("attack").itertuples():
        out[str(r.attack)] = {"kind": r.attack_kind, "norm": r.norm, "ce_gradient": bool(r.ce_gradient),
                              "objective": getattr(r, "objective", "misclassify")}
    return out


def non_ce_gradient_attacks(catalog: dict[str, dict[str, Any]]) -> list[str]:
    """The label attacks whose strength does not depend on the cross-entropy gradient's scale (random
    noise aside): what to run when a check suggests gradient masking."""
    return sorted(name for name, a in catalog.items()
                  if not a.get("ce_gradient") and a.get("kind") not in (NOISE, "")
                  and a.get("objective", "misclassify") == "misclassify")


__all__ = ["NO_END", "Run", "attack_catalog", "attack_defaults", "non_ce_gradient_attacks", "read_runs_log",
           "require_folder"]
