"""Run a study: find or train every (architecture, seed), sweep them all, write the statistics.

The steps share one output folder and each can be resumed on its own: checkpoints under
``OUT/checkpoints`` (with per-epoch training state), the member sweep in ``OUT/sweep`` (the
sweep's own cell store), and the study's tables, which are recomputed from those every run.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from ..checkpoints import load_checkpoint
from ..devices import resolve_device
from ..errors import UserError, require_int
from ..files import atomic_write_text, ensure_dir, sha256_file
from ..results import CELL, read_examples_csv, read_results_csv
from ..study_files import (
    EFFECTS_FILE,
    MEMBER_COLUMNS,
    MEMBERS_FILE,
    PER_SEED_FILE,
    PROVENANCE_FILE,
    STUDY_FILE,
    SWEEP_DIR,
    WITHIN_SEED_FILE,
)
from ..sweep import EXAMPLES_FILE, RESULTS_FILE, CellEvent, run_sweep
from ..threat_models import resolve_threat, threat_summary
from . import stats
from .members import Member, TrainingEvent, check_can_train, find_members, train_members
from .spec import StudySpec, load_study

log = logging.getLogger(__name__)

LOCK_FILE = ".study.lock"


@dataclass(frozen=True)
class StudyResult:
    """What a study wrote (every frame is also a CSV in ``out``)."""

    spec: StudySpec
    out: Path
    members: pd.DataFrame
    per_seed: pd.DataFrame
    study: pd.DataFrame
    effects: pd.DataFrame
    within_seed: pd.DataFrame
    report: Path | None


def _check_sweep_folder(folder: Path, members: list[Member], digests: dict[str, str]) -> None:
    """Refuse a sweep folder that holds other checkpoints under the members' names (a changed recipe
    with the same --out): their rows would mix with this run's."""
    if not (folder / RESULTS_FILE).exists():
        return
    old = read_results_csv(folder)
    for m in members:
        other = set(old.loc[old["model"] == m.name, "checkpoint_sha256"]) - {digests[m.name]}
        if other:
            raise UserError(f"{folder} holds results of another checkpoint named {m.name!r} (a different recipe or "
                            f"checkpoint with the same --out); use another --out")


def _members_frame(members: list[Member], digests: dict[str, str], results: pd.DataFrame) -> pd.DataFrame:
    clean = results.groupby("model")["clean_accuracy"].first()
    rows = [{"architecture": m.architecture, "seed": m.seed, "model": m.name, "checkpoint": str(m.checkpoint),
             "checkpoint_sha256": digests[m.name], "clean_accuracy": float(clean.get(m.name, float("nan"))),
             "trained": m.trained} for m in members]
    return pd.DataFrame(rows, columns=MEMBER_COLUMNS)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def run_study(
    spec: StudySpec | str | os.PathLike,
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    device: str = "auto",
    report: bool = True,
    command: str | None = None,
    on_training: Callable[[TrainingEvent], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_cell: Callable[[CellEvent], None] | None = None,
) -> StudyResult:
    """Run the study in ``spec`` (a :class:`StudySpec` or the path of its TOML file) into ``out``.

    Trains the members that no checkpoint matches (``jobs`` at a time), sweeps every member through
    the sweep engine into ``out/sweep``, then writes members.csv, per_seed.csv, study.csv,
    effects.csv, within_seed.csv, provenance.json and (``report=True``) the study report. Run it
    again after an interruption: it continues where it stopped.
    """
    spec = spec if isinstance(spec, StudySpec) else load_study(spec)
    require_int("jobs", jobs, 1)
    resolve_device(device)
    found, missing = find_members(spec, Path(out))  # every check before the output folder is made
    check_can_train(spec, missing)
    out = ensure_dir(out, "--out")
    started, t0 = datetime.now(UTC).isoformat(timespec="seconds"), time.time()
    try:
        lock = FileLock(out / LOCK_FILE, timeout=0)
        lock.acquire()
    except Timeout:
        raise UserError(f"another study is running on {out}; wait for it or use another --out") from None
    try:
        found, missing = find_members(spec, out)  # again under the lock: another run may have trained some
        log.info("study %s: %d checkpoints found, %d to train", spec.name, len(found), len(missing))
        trained = train_members(spec, missing, out, jobs=jobs, device=device, on_event=on_training)
        order = {pair: i for i, pair in enumerate(spec.members())}
        members = sorted(found + trained, key=lambda m: order[(m.architecture, m.seed)])
        checkpoints = [load_checkpoint(m.checkpoint, name=m.name) for m in members]
        digests = {c.name: c.sha256 for c in checkpoints}
        ev = spec.evaluation
        _check_sweep_folder(out / SWEEP_DIR, members, digests)
        results = run_sweep(checkpoints, list(ev.attacks), ev.grid, ev.dataset, data_dir=ev.data_dir, n=ev.n,
                        batch_size=ev.batch_size, seed=ev.seed, device="cpu" if device == "auto" else device,
                        out=out / SWEEP_DIR, per_example=True, on_start=on_start, on_cell=on_cell,
                        provenance={"command": command, "study": spec.name})
        result = _write_tables(spec, out, members, digests, results)
        _write_provenance(spec, out, members, command, started, time.time() - t0)
    finally:
        lock.release()
    index = None
    if report:
        from ..report.study import build_study_report

        index = build_study_report(out, command=command)
    return StudyResult(spec, out, *result, index)


def _write_tables(spec: StudySpec, out: Path, members: list[Member], digests: dict[str, str],
                  results: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    member_frame = _members_frame(members, digests, results)
    seeds = stats.per_seed(results, member_frame)
    table = stats.study_table(seeds)
    effects = stats.effects(seeds, spec.baselines)
    within = stats.within_seed(command_examples(out / SWEEP_DIR, results), member_frame, spec.baselines)
    for frame, name in ((member_frame, MEMBERS_FILE), (seeds, PER_SEED_FILE), (table, STUDY_FILE),
                        (effects, EFFECTS_FILE), (within, WITHIN_SEED_FILE)):
        _write_csv(frame, out / name)
    return member_frame, seeds, table, effects, within


def command_examples(sweep_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    """The per-example rows of this command's cells (``results``, what the sweep call returned), by
    the whole cell identity: the folder may also hold the same models on another ``n`` or dataset
    from an earlier study file, whose rows must not join these."""
    examples = read_examples_csv(sweep_dir / EXAMPLES_FILE)
    wanted = results[list(CELL)].drop_duplicates()
    return examples.merge(wanted, on=list(CELL), how="inner", validate="many_to_one")


def _training_threat(spec: StudySpec) -> str:
    """The members' training threat model in one line (every member shares the recipe's)."""
    r = spec.recipe
    return threat_summary(resolve_threat(r.threat_model, r.threat_eps, r.threat_steps, r.threat_step_size,
                                         r.trades_beta).record())


def _write_provenance(spec: StudySpec, out: Path, members: list[Member], command: str | None, started: str,
                      seconds: float) -> None:
    import platform

    import scipy
    import statsmodels
    import torch

    from .. import __version__

    versions = {"robust_attn": __version__, "torch": torch.__version__, "scipy": scipy.__version__,
                "statsmodels": statsmodels.__version__, "python": platform.python_version()}
    record = {
        "study": spec.name, "file": str(spec.file), "sha256": sha256_file(spec.file), "description": spec.description,
        "command": command, "versions": versions, "spec": spec.record(), "baselines": dict(spec.baselines),
        "training_threat": _training_threat(spec),
        "trained": [str(m.checkpoint) for m in members if m.trained],
        "reused": [str(m.checkpoint) for m in members if not m.trained],
        "started": started, "wall_seconds": round(seconds, 1),
    }
    atomic_write_text(out / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")
