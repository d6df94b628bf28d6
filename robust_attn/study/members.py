"""A study's members: one checkpoint per (architecture, seed), found if it exists, trained if not.

A checkpoint is the member when the training configuration it records agrees with the study's
recipe, architecture and seed on every field that decides the weights (``spec.RECIPE_FIELDS``),
whatever its file name or folder: a checkpoint trained by hand with the same recipe is reused.
Trainings write ``OUT/checkpoints/<architecture>_seed<seed>.pt`` with the per-epoch training state
beside it, so a killed study continues from the last finished epoch when it is run again.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_lib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..checkpoints import read_checkpoint_file
from ..data import load_dataset
from ..errors import UserError
from ..study_files import CHECKPOINTS_DIR
from ..train import TrainConfig, train
from .spec import StudySpec, recipe_key

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Member:
    """One trained model of the study."""

    architecture: str
    seed: int
    checkpoint: Path
    trained: bool  # trained by this run (False: found)

    @property
    def name(self) -> str:
        """The model's name in the study's sweep and tables."""
        return f"{self.architecture}_seed{self.seed}"


class TrainingEvent(NamedTuple):
    """Progress of one training: an epoch finished (``epoch`` of ``epochs``), or ``epoch == 0`` at its start."""

    architecture: str
    seed: int
    epoch: int
    epochs: int
    test_accuracy: float


def member_path(out: Path, architecture: str, seed: int) -> Path:
    return out / CHECKPOINTS_DIR / f"{architecture}_seed{seed}.pt"


def _recorded_key(path: Path) -> tuple | None:
    """The recipe key a checkpoint file records, or None for files that are not our checkpoints."""
    try:
        meta = read_checkpoint_file(path)["metadata"]
    except UserError as exc:
        log.debug("not a study candidate: %s", exc)
        return None
    config = meta.get("train_config")
    return recipe_key(config) if isinstance(config, dict) else None


def index_checkpoints(folders: Iterable[Path]) -> dict[tuple, Path]:
    """Every checkpoint under ``folders`` (not recursive) by its recipe key; the first found wins."""
    found: dict[tuple, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.pt")):
            key = _recorded_key(path)
            if key is not None:
                found.setdefault(key, path)
    return found


def wanted_key(spec: StudySpec, architecture: str, seed: int) -> tuple:
    cfg = spec.recipe.train_config(architecture, seed)
    return recipe_key({**vars(cfg), "schedule": cfg.schedule.value})


def find_members(spec: StudySpec, out: Path) -> tuple[list[Member], list[tuple[str, int]]]:
    """(members found, (architecture, seed) pairs still to train). A file at a member's own path that
    records another recipe is refused: training over it would destroy someone's checkpoint."""
    index = index_checkpoints([*spec.checkpoints, out / CHECKPOINTS_DIR])
    found, missing = [], []
    for arch, seed in spec.members():
        path = index.get(wanted_key(spec, arch, seed))
        if path is not None:
            found.append(Member(arch, seed, path, trained=False))
            continue
        own = member_path(out, arch, seed)
        if own.exists():
            raise UserError(f"{own} exists but was trained with another recipe or seed than study "
                            f"{spec.name!r} asks for; use another --out or remove it")
        missing.append((arch, seed))
    return found, missing


def check_can_train(spec: StudySpec, missing: Sequence[tuple[str, int]]) -> None:
    """Fail before any work when something must be trained and the training data is not there."""
    if not missing:
        return
    data_dir = spec.recipe.data_dir
    todo = ", ".join(f"{a} seed {s}" for a, s in missing[:4]) + (" ..." if len(missing) > 4 else "")
    if data_dir is not None and not data_dir.exists():
        raise UserError(f"{len(missing)} checkpoint(s) must be trained ({todo}) but [train] data_dir "
                        f"{data_dir} does not exist")
    try:  # load it once now (a few seconds) rather than fail in every training after the first has run
        load_dataset(spec.recipe.dataset, data_dir)
    except UserError as exc:
        raise UserError(f"{len(missing)} checkpoint(s) must be trained ({todo}) but the training data cannot be "
                        f"loaded (set [train] data_dir): {str(exc).replace('--data-dir', 'data_dir')}") from None


def _train_one(cfg: TrainConfig, out: Path, threads: int | None, put: Callable[[TrainingEvent], None]) -> Path:
    """Train one member (in this process or a worker); resume from its state file when one exists.
    ``put`` receives its progress (a queue's ``put`` in a worker)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    resume = out.with_name(out.name + ".state").exists()
    put(TrainingEvent(cfg.architecture, cfg.seed, 0, cfg.epochs, float("nan")))

    def on_epoch(stats) -> None:
        put(TrainingEvent(cfg.architecture, cfg.seed, stats.epoch, stats.epochs, stats.test_accuracy))

    return train(cfg, out, resume=resume, on_epoch=on_epoch)


def train_members(spec: StudySpec, missing: Sequence[tuple[str, int]], out: Path, jobs: int = 1,
                  device: str = "auto", on_event: Callable[[TrainingEvent], None] | None = None) -> list[Member]:
    """Train the missing members, ``jobs`` at a time; on a CPU the threads are split between them.

    Workers are separate processes (spawned, so each has its own torch thread pool); a finished
    training is a checkpoint on disk, so an interruption loses at most the epoch in progress.
    """
    if not missing:
        return []
    (out / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    configs = [(spec.recipe.train_config(a, s, device), member_path(out, a, s)) for a, s in missing]
    notify = on_event or (lambda event: None)
    if jobs <= 1:
        for cfg, path in configs:
            _train_one(cfg, path, None, notify)
        return [Member(c.architecture, c.seed, p, trained=True) for c, p in configs]
    import torch

    threads = max(1, torch.get_num_threads() // jobs) if not device.startswith("cuda") else None
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        events = manager.Queue()
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
        try:
            pending = {pool.submit(_train_one, cfg, path, threads, events.put) for cfg, path in configs}
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(events, notify)
                for future in done:
                    future.result()  # a failed training fails the study (its state file stays for the rerun)
            _drain(events, notify)
        finally:
            # On Ctrl-C (or a failed training) the queued trainings are cancelled, not run to the end:
            # the running ones got the same SIGINT and keep their last finished epoch for the rerun.
            pool.shutdown(wait=True, cancel_futures=True)
    return [Member(c.architecture, c.seed, p, trained=True) for c, p in configs]


def _drain(events: Any, notify: Callable[[TrainingEvent], None]) -> None:
    while True:
        try:
            notify(events.get_nowait())
        except queue_lib.Empty:
            return


def default_jobs() -> int:
    """One training per core."""
    return max(1, os.cpu_count() or 1)
