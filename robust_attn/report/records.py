"""RobustBench-style records: one ``model_info/<dataset>/<threat>/<name>.json`` per model and eps of a
results folder, with the fields and value types of RobustBench's own records (accuracies as percent
strings, ``eps`` as "8/255"), so a record reads like a leaderboard entry, plus the provenance that lets
someone else check it (checkpoint and data hashes, versions, command, attacks, sanity checks).

RobustBench's ``autoattack_acc`` is the accuracy under standard AutoAttack on a whole test split. A
record carries it only when that is what ran: the ``autoattack`` attack, on every image of the split.
A model evaluated otherwise gets the same record with the attacks named (``attacks``) and their
point-wise worst case (``robust_acc``) instead. ``unreliable`` is true when any sanity check of the
folder (admission checks included) failed for the model. Everything here reads result files only.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..files import atomic_write_text
from .inputs import RunInputs, image_shapes, read_runs
from .kit.inputs import Run
from .kit.labels import NOISE, attention_objective, of_kind
from .sanity import Check, Status, run_checks
from .tables import across_attacks

STANDARD_AUTOATTACK = "autoattack"  # the registered attack that is AutoAttack's standard version
REFERENCE_AUTOATTACK_STEPS = 100  # the APGD/FAB iterations of the reference implementation (torchattacks': 10)
# RobustBench's model_info fields and their JSON types, as its records under model_info/ hold them; the
# ones only some of its records carry are optional.
ROBUSTBENCH_FIELDS: dict[str, type] = {
    "link": str, "name": str, "authors": str, "additional_data": bool, "number_forward_passes": int,
    "dataset": str, "venue": str, "architecture": str, "eps": str, "clean_acc": str, "reported": str,
    "autoattack_acc": str, "footnote": str, "unreliable": bool, "external": str,
}
ROBUSTBENCH_OPTIONAL = ("footnote", "unreliable", "external")


@dataclass(frozen=True)
class Record:
    """One record: where it goes under the output folder, and its JSON content."""

    path: Path
    content: dict[str, Any]


def percent(accuracy: float) -> str:
    """A share as RobustBench writes accuracies: percent with two decimals, as a string."""
    return f"{100 * accuracy:.2f}"


def file_name(model: str, eps_label: str, n: int, whole: bool | None) -> str:
    """``<model>_eps<eps>.json`` (``vgg_c10s_ffgsm_eps8-255.json``), with ``_n<n>`` when the images are not a
    whole test split: one name per (model, eps, images), whatever else a folder holds."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model)
    part = "" if whole else f"_n{n}"
    return f"{stem}_eps{re.sub(r'[^0-9A-Za-z.]+', '-', eps_label)}{part}.json"


def chosen_autoattack(aa: pd.DataFrame) -> pd.Series:
    """Of several AutoAttack cells at one eps (other parameters, ``--quantize``), the one a record reports: scored
    unrounded, then with the most iterations, then with the most queries."""
    def key(row) -> tuple:
        params = json.loads(row.attack_params)
        return ("quantize" in params, -int(params.get("steps", 0)), -int(params.get("n_queries", 0)))

    return aa.iloc[min(range(len(aa)), key=lambda i: key(aa.iloc[i]))]


def _run_of(runs: Sequence[Run], row) -> tuple[Run | None, dict[str, Any]]:
    """The last run that evaluated this checkpoint on these images, and its checkpoint entry."""
    for run in reversed(runs):
        for c in run.checkpoints:
            if c.get("name") == row.model and c.get("sha256") == row.checkpoint_sha256 \
                    and c.get("evaluated_on") == row.dataset:
                return run, c
    return None, {}


def whole_split(run: Run | None, entry: dict[str, Any], n: int) -> bool | None:
    """Whether ``n`` images are the whole test split: from the run log's split size, or (logs written before
    it recorded one) from the run having evaluated all images (no ``--n``); None when no log says."""
    size = entry.get("split_size")
    if isinstance(size, int) and not isinstance(size, bool):
        return n == size
    if run is None or "n" not in run.settings:
        return None
    return run.settings["n"] is None


def _failed_checks(checks: Sequence[Check], model: str) -> list[str]:
    return [c.name for c in checks if c.status is Status.FAIL and (not c.models or model in c.models)]


def model_records(inputs: RunInputs, checks: Sequence[Check], eps_labels: Sequence[str] | None = None) -> list[Record]:
    """Every (model, eps > 0) record of the folders read into ``inputs``; ``eps_labels`` limits the eps."""
    frame = inputs.results
    attacks = frame[(frame["eps"] > 0) & ~of_kind(frame, NOISE) & ~attention_objective(frame)]
    if eps_labels:
        have = set(attacks["eps_label"])
        eps_labels = [e if e in have or f"{e}/255" not in have else f"{e}/255" for e in eps_labels]  # 8: 8/255
        unknown = [e for e in eps_labels if e not in have]
        if unknown:
            grid = attacks.drop_duplicates("eps_label").sort_values("eps")["eps_label"]
            raise UserError(f"no attack cell at eps {unknown[0]} (the results have eps {', '.join(grid)})")
        attacks = attacks[attacks["eps_label"].isin(eps_labels)]
    if not (attacks["attack"] == STANDARD_AUTOATTACK).any():
        raise UserError("no AutoAttack cell in these results: run the sweep with --attack autoattack at the eps to "
                        "record (e.g. --eps 8) on the whole test split, then export")
    worst = across_attacks(attacks, inputs.examples)
    records: dict[Path, Record] = {}
    for (model, sha, dataset, n), cells in attacks.groupby(["model", "checkpoint_sha256", "dataset", "n"], sort=True):
        first = cells.iloc[0]
        run, entry = _run_of(inputs.runs, first)
        whole = whole_split(run, entry, int(n))
        failed = _failed_checks(checks, model)
        for eps_label, at in cells.sort_values("eps").groupby("eps_label", sort=False):
            path = Path("model_info") / dataset / str(first.norm) / file_name(model, eps_label, int(n), whole)
            if path in records:
                raise UserError(f"two checkpoints named {model} were evaluated on these {dataset} images at {eps_label}: "
                                "export their folders one at a time")
            records[path] = Record(path, _content(first, at, worst, run, entry, whole, failed, int(n)))
    return list(records.values())


def _content(first, at: pd.DataFrame, worst: pd.DataFrame, run: Run | None, entry: dict[str, Any],
             whole: bool | None, failed: list[str], n: int) -> dict[str, Any]:
    eps_label = str(at["eps_label"].iloc[0])
    aa = at[at["attack"] == STANDARD_AUTOATTACK]
    notes = []
    record: dict[str, Any] = {
        "link": "", "name": str(first.model), "authors": "", "additional_data": False, "number_forward_passes": 1,
        "dataset": str(first.dataset), "venue": "",
        "architecture": f"{first.architecture} (width {first.width:g})" if math.isfinite(float(first.width))
        else str(first.architecture),
        "eps": eps_label, "clean_acc": percent(float(first.clean_accuracy)), "reported": "",
    }
    across = worst[(worst["model"] == first.model) & (worst["dataset"] == first.dataset) & (worst["n"] == n)
                   & (worst["eps_label"] == eps_label)]  # the point-wise worst case over the attacks at this eps
    if len(aa) and whole:
        row = chosen_autoattack(aa)
        record["autoattack_acc"] = percent(float(row.accuracy))
        params = json.loads(row.attack_params)
        notes.append("AutoAttack as torchattacks runs it (" + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
                     + f"; the reference implementation runs {REFERENCE_AUTOATTACK_STEPS} APGD/FAB iterations and 5000 "
                     "Square queries)" + (f", chosen of {len(aa)} AutoAttack runs at this eps as the unrounded one with the most iterations"
                        if len(aa) > 1 else ""))
        others = sorted(set(at.loc[at["attack"] != STANDARD_AUTOATTACK, "attack_label"].astype(str)))
        if others and len(across):
            record["external"] = percent(float(across["accuracy"].iloc[0]))
            notes.append(f"external: the point-wise worst case over every attack run at this eps ({', '.join(others)} "
                         "beside AutoAttack)")
    else:
        if len(aa):
            notes.append(f"AutoAttack ran on the first {n:,} images of {first.dataset}, not on the whole test split: "
                         "no autoattack_acc" if whole is False else
                         "no run log says whether AutoAttack ran on the whole test split: no autoattack_acc")
        named = sorted(set(at["attack_label"].astype(str)))
        record["attacks"] = named
        if len(named) > 1 and len(across):
            record["robust_acc"] = percent(float(across["accuracy"].iloc[0]))
        else:  # without per-example outcomes the lowest accuracy of one attack: at least the point-wise worst case
            record["robust_acc"] = percent(float(at["accuracy"].min()))
            if len(named) > 1:
                notes.append("robust_acc is the lowest single attack's accuracy (no per-example outcomes for the "
                             "point-wise worst case, which can only be lower)")
    record["unreliable"] = bool(failed)
    if failed:
        notes.append("failed sanity checks: " + "; ".join(failed))
    notes.append(f"evaluated by robust-attn on {n:,} images of {first.dataset}")
    record["footnote"] = " ".join(note[0].upper() + note[1:] + "." for note in notes)
    versions = run.settings.get("versions", {}) if run is not None else {}
    record["provenance"] = {
        "checkpoint_sha256": str(first.checkpoint_sha256),
        "data_sha256": entry.get("data_sha256"),
        "n": n, "whole_test_split": whole, "trained_on": str(first.trained_on),
        "training_threat_model": str(first.training_threat_model),
        "versions": versions if isinstance(versions, dict) else {},
        "command": run.command if run is not None else None,
        "seed": int(first.seed),
        "attacks": [{"attack": r.attack, "params": json.loads(r.attack_params), "accuracy": percent(float(r.accuracy)),
                     "worst_case_accuracy": percent(float(r.worst_case_accuracy))} for r in at.itertuples()],
        "failed_checks": failed,
    }
    return record


def export_records(result_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   eps_labels: Sequence[str] | None = None) -> list[Path]:
    """Write the records of every model of ``result_dirs`` under ``out_dir``; return their paths."""
    inputs = read_runs(result_dirs)
    checks = run_checks(inputs.results, inputs.examples, image_shapes(inputs), inputs.admission)
    records = model_records(inputs, checks, eps_labels)
    out = Path(out_dir)
    paths = []
    for record in records:
        path = out / record.path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record.content, indent=2) + "\n")
        paths.append(path)
    return paths
