"""Reading one or more results folders for a report: their cells, per-example outcomes, run logs
and attention artifacts, merged; and which folders hold less than their runs planned.

A results folder (see :mod:`robust_attn.results`) holds ``results.csv``, ``per_example.csv``, the
append-only run log ``runs.jsonl`` and ``attention/*.npz``; every file is read by that module's reader
of its kind (run logs through ``results.read_runs``, shaped by :func:`.kit.inputs.read_runs_log`), and
the rows' descriptions completed by :mod:`.legacy`. Nothing here runs a model.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..results import (
    ADMISSION_FILE, ATTENTION_DIR, EXAMPLES_FILE, RESULT_COLUMNS, RESULTS, RESULTS_FILE, RUNS_FILE, read_admission_csv, read_examples_csv,
    read_results_csv,
)
from .kit.inputs import Run, attack_catalog, attack_defaults, read_runs_log, require_folder
from .kit.labels import CURVE, attack_labels, with_labels
from .legacy import RESULT_DESCRIPTION, describe_results

log = logging.getLogger(__name__)

# A cell of a results folder: a curve at one eps.
CELL = [*CURVE, "eps_label"]
# The cell as a run log plans it.
PLANNED = ["model", "attack", "attack_params", "eps_label"]
# The columns a report reads from results.csv: the run's rows and the facts they record about their model
# and attack (filled by :func:`..legacy.describe_results` for folders written before they were recorded).
COLUMNS = list(dict.fromkeys([*RESULT_COLUMNS, *RESULT_DESCRIPTION]))


@dataclass(frozen=True)
class Artifact:
    """An attention artifact (``OUT/attention/*.npz``) of one (model, attack, attack_params)."""

    path: Path
    model: str
    attack: str
    attack_params: str


@dataclass
class RunInputs:
    results: pd.DataFrame  # COLUMNS + attack_label, one row per (curve, eps)
    examples: pd.DataFrame | None  # EXAMPLE_COLUMNS: only those of the rows kept
    runs: list[Run]
    folders: list[str]
    artifacts: list[Artifact]
    notes: list[str]  # things the banner should say that are not sanity checks
    labels: dict[tuple[str, str], str]  # (attack, attack_params) -> display label, planned cells' too
    catalog: dict[str, dict[str, Any]]  # every attack the runs could have run (see kit.inputs.attack_catalog)
    admission: pd.DataFrame | None = None  # ADMISSION_COLUMNS: the latest admission checks per model and images

    @property
    def incomplete(self) -> list[Run]:
        return [r for r in self.runs if r.missing]


def _runs(folder: Path, results: pd.DataFrame) -> list[Run]:
    """The folder's runs, each with the planned cells its results.csv lacks."""
    present = set(map(tuple, results[PLANNED].astype(str).to_numpy().tolist()))
    return [replace(r, missing=[p for p in r.planned if tuple(str(p.get(k)) for k in PLANNED) not in present])
            for r in read_runs_log(folder)]


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
    frames, examples, runs, artifacts, notes, admission = [], [], [], {}, [], []
    folders = []
    for order, d in enumerate(require_folder(d, "results directory") for d in dirs):
        folders.append(str(d))
        if not (d / RESULTS_FILE).is_file() and (d / RUNS_FILE).is_file():
            results = describe_results(pd.DataFrame({c: pd.Series(dtype=float if c in RESULTS.numeric else str)
                                                     for c in RESULT_COLUMNS}))
            notes.append(f"{d} holds no finished cell yet (no {RESULTS_FILE})")
        else:
            results = describe_results(read_results_csv(d / RESULTS_FILE))
        frames.append(results.assign(_folder=order))
        if (d / EXAMPLES_FILE).is_file():
            examples.append(read_examples_csv(d / EXAMPLES_FILE).assign(_folder=order))
        if (d / ADMISSION_FILE).is_file():
            admission.append(read_admission_csv(d / ADMISSION_FILE))
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
    defaults = attack_defaults(runs)
    results = with_labels(results[COLUMNS], defaults)
    pairs = [*zip(results["attack"], results["attack_params"]),
             *((str(m.get("attack")), str(m.get("attack_params"))) for r in runs for m in r.planned)]
    checks = None
    if admission:  # a model's checks on the images its rows were computed on, the last folder's where several
        checks = pd.concat(admission, ignore_index=True).drop_duplicates(
            ["model", "checkpoint_sha256", "data_sha256", "n", "check"], keep="last")
        evaluated = results[["model", "checkpoint_sha256", "dataset", "n"]].drop_duplicates()
        checks = checks.merge(evaluated, on=["model", "checkpoint_sha256", "dataset", "n"]).reset_index(drop=True)
    return RunInputs(results, ex, runs, folders, list(artifacts.values()), notes, attack_labels(pairs, defaults),
                     attack_catalog(runs, results), checks)


def describe_missing(run: Run, labels: dict[tuple[str, str], str], limit: int = 4) -> str:
    """'44 of 50 planned cells are missing from results.csv, e.g. vgg_c10s pgd eps 3/255, ...'"""
    named = ", ".join(
        f"{m.get('model')} {labels.get((str(m.get('attack')), str(m.get('attack_params'))), m.get('attack'))} "
        f"eps {m.get('eps_label')}" for m in run.missing[:limit])
    more = ", ..." if len(run.missing) > limit else ""
    return f"{len(run.missing)} of {len(run.planned)} planned cells are missing from {RESULTS_FILE}, e.g. {named}{more}"


def image_shapes(inputs: RunInputs) -> dict[str, tuple[int, ...]]:
    """Image shape (C, H, W) per evaluation dataset, where a run log or an artifact records it."""
    shapes: dict[str, tuple[int, ...]] = {}
    for run in inputs.runs:
        for c in run.checkpoints:
            shape = c.get("image_shape")
            if isinstance(shape, list) and len(shape) == 3:
                shapes[str(c.get("evaluated_on"))] = tuple(int(v) for v in shape)
    datasets = inputs.results.drop_duplicates("model").set_index("model")["dataset"]
    for art in inputs.artifacts:
        if art.model in datasets.index and datasets[art.model] not in shapes:
            try:
                with np.load(art.path, allow_pickle=False) as z:
                    shapes[datasets[art.model]] = tuple(int(v) for v in z["x"].shape[1:])
            except Exception:  # the check falls back to the dataset's registered channels
                pass
    return shapes
