"""Reading one or more results folders for a report: their cells, per-example outcomes, run logs
and attention artifacts, merged; and which folders hold less than their runs planned.

A results folder (see :mod:`robust_attn.results`) holds ``results.csv``, ``per_example.csv``, the
append-only run log ``runs.jsonl`` and ``attention/*.npz``. Nothing here runs a model.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..results import (
    ATTENTION_DIR, EXAMPLES_FILE, RESULT_COLUMNS, RESULTS_FILE, RUNS_FILE, read_examples_csv, read_results_csv, read_run_log,
)
from .common import CURVE, attack_labels, with_labels

log = logging.getLogger(__name__)

# A cell of a results folder: a curve at one eps.
CELL = [*CURVE, "eps_label"]
# The cell as a run log plans it.
PLANNED = ["model", "attack", "attack_params", "eps_label"]
_NUMERIC = {"width", "n", "eps", "n_correct", "accuracy", "ci_low", "ci_high", "worst_case_n_correct",
            "worst_case_accuracy", "worst_case_ci_low", "worst_case_ci_high", "clean_accuracy",
            "zero_gradient_fraction", "max_perturbation", "attack_failures", "seed", "seconds"}
NO_END = "no end record (crashed, killed, or still running)"


@dataclass(frozen=True)
class Run:
    """One command that wrote to a results folder, from its start and end records."""

    folder: str
    run_id: str
    time: str | None
    command: str | None
    settings: dict[str, Any]
    attacks: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    planned: list[dict[str, Any]]
    status: str  # finished | interrupted | failed | NO_END
    wall_seconds: float | None
    missing: list[dict[str, Any]] = field(default_factory=list)  # planned cells not in the folder's results.csv

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Artifact:
    """An attention artifact (``OUT/attention/*.npz``) of one (model, attack, attack_params)."""

    path: Path
    model: str
    attack: str
    attack_params: str


@dataclass
class RunInputs:
    results: pd.DataFrame  # RESULT_COLUMNS + attack_label, one row per (curve, eps)
    examples: pd.DataFrame | None  # EXAMPLE_COLUMNS: only those of the rows kept
    runs: list[Run]
    folders: list[str]
    artifacts: list[Artifact]
    notes: list[str]  # things the banner should say that are not sanity checks
    labels: dict[tuple[str, str], str]  # (attack, attack_params) -> display label, planned cells' too

    @property
    def incomplete(self) -> list[Run]:
        return [r for r in self.runs if r.missing]


def _runs(folder: Path, results: pd.DataFrame) -> list[Run]:
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    for record in read_run_log(folder):
        if not isinstance(record, dict) or "run_id" not in record:
            continue
        if record.get("event") == "start":
            starts[record["run_id"]] = record
        elif record.get("event") == "end":
            ends[record["run_id"]] = record
    present = set(map(tuple, results[PLANNED].astype(str).to_numpy().tolist()))
    runs = []
    for run_id, s in starts.items():
        end = ends.get(run_id, {})
        planned = [p for p in s.get("planned", []) if isinstance(p, dict)]
        missing = [p for p in planned if tuple(str(p.get(k)) for k in PLANNED) not in present]
        runs.append(Run(str(folder), run_id, s.get("time"), s.get("command"), s.get("settings") or {},
                        s.get("attacks") or [], s.get("checkpoints") or [], planned, end.get("status", NO_END),
                        end.get("wall_seconds"), missing))
    return runs


def _artifacts(folder: Path) -> list[Artifact]:
    out = []
    for path in sorted((folder / ATTENTION_DIR).glob("*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                out.append(Artifact(path, str(z["model"]), str(z["attack"]), str(z["attack_params"])))
        except Exception as exc:  # a damaged artifact costs its panel, not the report
            log.warning("skipping attention artifact %s (%s)", path, exc)
    return out


def read_runs(dirs: Sequence[str | os.PathLike]) -> RunInputs:
    """Merge results folders. A cell present in several folders is taken from the last one given,
    with its per-example outcomes from that same folder."""
    if not dirs:
        raise UserError("no results directory given")
    frames, examples, runs, artifacts, notes = [], [], [], {}, []
    folders = []
    for order, d in enumerate(map(Path, dirs)):
        if not d.is_dir():
            raise UserError(f"results directory {d} does not exist")
        folders.append(str(d))
        if not (d / RESULTS_FILE).is_file() and (d / RUNS_FILE).is_file():
            results = pd.DataFrame({c: pd.Series(dtype=float if c in _NUMERIC else str) for c in RESULT_COLUMNS})
            notes.append(f"{d} holds no finished cell yet (no {RESULTS_FILE})")
        else:
            results = read_results_csv(d / RESULTS_FILE)
        frames.append(results.assign(_folder=order))
        if (d / EXAMPLES_FILE).is_file():
            examples.append(read_examples_csv(d / EXAMPLES_FILE).assign(_folder=order))
        runs += _runs(d, results)
        if not (d / RUNS_FILE).is_file():
            notes.append(f"{d} has no run log ({RUNS_FILE}): its provenance is unknown")
        for a in _artifacts(d):
            artifacts[(a.model, a.attack, a.attack_params)] = a
    results = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    results = results.drop_duplicates(CELL, keep="last").reset_index(drop=True)
    if results.empty:
        raise UserError(f"no finished cell in {', '.join(folders)}: nothing to report")
    shas = results.groupby("model")["checkpoint_sha256"].nunique()
    for model in shas[shas > 1].index:
        notes.append(f"model name {model!r} stands for {shas[model]} different checkpoints in these folders; "
                     "their cells are shown under one name")
    ex = None
    if examples:
        ex = pd.concat(examples, ignore_index=True)
        ex = ex.merge(results[[*CELL, "_folder"]], on=[*CELL, "_folder"], how="inner")
        ex = ex.drop_duplicates([*CELL, "index"], keep="last").drop(columns="_folder").reset_index(drop=True)
    defaults = _defaults(runs)
    results = with_labels(results[list(RESULT_COLUMNS)], defaults)
    pairs = [*zip(results["attack"], results["attack_params"]),
             *((str(m.get("attack")), str(m.get("attack_params"))) for r in runs for m in r.planned)]
    return RunInputs(results, ex, runs, folders, list(artifacts.values()), notes, attack_labels(pairs, defaults))


def _defaults(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Registered attack defaults where a run log records them (``attacks: [{name, params, defaults}]``)."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        for a in r.attacks:
            if isinstance(a, dict) and isinstance(a.get("defaults"), dict):
                out[str(a.get("name"))] = a["defaults"]
    return out


def describe_missing(run: Run, labels: dict[tuple[str, str], str], limit: int = 4) -> str:
    """'44 of 50 planned cells are missing from results.csv, e.g. vgg_c10s pgd eps 3/255, ...'"""
    named = ", ".join(
        f"{m.get('model')} {labels.get((str(m.get('attack')), str(m.get('attack_params'))), m.get('attack'))} "
        f"eps {m.get('eps_label')}" for m in run.missing[:limit])
    more = ", ..." if len(run.missing) > limit else ""
    return f"{len(run.missing)} of {len(run.planned)} planned cells are missing from {RESULTS_FILE}, e.g. {named}{more}"
