"""Reading what a report page reads besides a sweep's results: CSV tables with declared columns, and
run logs (``runs.jsonl``: a start record per command, an end record when it ends).

One reader per kind of input, used by every page: the study and transfer pages read their tables
with :func:`read_table`, and every page reads run logs with :func:`read_runs_log`.
"""
from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import UserError
from ...results import read_run_log
from ..legacy import describe_catalog
from .labels import NOISE

NO_END = "no end record (crashed, killed, or still running)"


def require_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; a one-line :class:`UserError` naming ``what`` it should be when it is no folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{what} {folder} does not exist")
    return folder


def read_table(path: Path, columns: Sequence[str], what: str, numeric: Collection[str], *,
               required_numbers: Collection[str] = (), nonempty: bool = False) -> pd.DataFrame:
    """A CSV with its declared ``columns`` checked: text stays text (a model named 'NA' is not a missing
    value), the ``numeric`` columns present become numbers; a one-line :class:`UserError` when it is not
    what ``what`` promises (missing columns, a number that is not one, empty ``required_numbers``, no
    rows where ``nonempty``)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:  # pandas' parser and empty-file errors are ValueErrors
        raise UserError(f"cannot read {path} as CSV: {exc}".splitlines()[0]) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks the columns {missing} of {what}")
    if nonempty and frame.empty:
        raise UserError(f"{path} holds no rows: nothing to report")
    for column in set(numeric) & set(frame.columns):
        try:
            frame[column] = pd.to_numeric(frame[column].replace("", np.nan))
        except (ValueError, TypeError):
            raise UserError(f"{path}: column {column!r} holds a value that is not a number") from None
        if column in required_numbers and frame[column].isna().any():
            raise UserError(f"{path}: column {column!r} has empty values")
    return frame


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
    """The runs of a folder's run log, in the order they started (empty without a log)."""
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    for record in read_run_log(folder):
        if not isinstance(record, dict) or "run_id" not in record:
            continue
        if record.get("event") == "start":
            starts[str(record["run_id"])] = record
        elif record.get("event") == "end":
            ends[str(record["run_id"])] = record
    runs = []
    for run_id, s in starts.items():
        end = ends.get(run_id, {})
        wall = end.get("wall_seconds")
        settings = s.get("settings")
        runs.append(Run(str(folder), run_id, s.get("time"), s.get("command"),
                        settings if isinstance(settings, dict) else {}, _records(s.get("attacks")),
                        _records(s.get("checkpoints")), _records(s.get("planned")), str(end.get("status") or NO_END),
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
           "read_table", "require_folder"]
