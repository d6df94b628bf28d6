"""The sweep engine: accuracy of many models under many attacks over an eps grid.

For each model the clean pass runs once and is shared by every attack and eps. For each
(model, attack) the eps grid is walked in increasing order and only the points still robust at
the previous eps are attacked: an adversarial example found at eps_k lies in every larger ball,
so a broken point stays broken (its adversarial prediction and perturbation are carried over).
Points misclassified clean are never attacked. FGSM computes the input gradient once and
evaluates every eps from it. Minimal-perturbation attacks (CW, DeepFool) run once and are read
as accuracy under each budget.

Each finished cell is written atomically to ``OUT/cells/`` as it completes, together with the
per-example state the next eps needs, and ``results.csv`` is rebuilt from the cells; rerunning
the same sweep on the same ``out`` skips finished cells, so an interruption costs at most the
cell in flight.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from . import __version__
from .attacks import (
    EpsGrid, EpsUnit, Norm, create_attack, eval_mode, get_attack_cfg, params_json, parse_eps_grid, resolve_params,
)
from .checkpoints import Checkpoint, CheckpointRef, load_checkpoint, resolve_checkpoints
from .data import ImageSet, get_dataset_cfg, load_dataset
from .devices import resolve_device
from .distributed import Ranks
from .errors import UserError, require_int
from .files import atomic_write_text, ensure_dir, remove_stale_temporaries
from .results import EXAMPLE_COLUMNS, RESULT_COLUMNS, ExampleRow, ResultRow, rows_frame, wilson_interval, write_csv

log = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
EXAMPLES_FILE = "per_example.csv"
CELLS_DIR = "cells"
LOCK_FILE = ".lock"
RUN_FILE = "run.json"


@dataclass(frozen=True)
class AttackSpec:
    """An attack name with its fully resolved parameters."""

    name: str
    params: Mapping[str, Any]

    @property
    def params_json(self) -> str:
        return params_json(self.params)


@dataclass(frozen=True)
class EvalData:
    """The examples a model is evaluated on: the first ``n`` test images of ``dataset``."""

    dataset: str
    images: ImageSet


@dataclass(frozen=True)
class CellEvent:
    """Progress report: ``done`` of ``total`` cells finished (``skipped`` of them from a previous run)."""

    done: int
    total: int
    skipped: int
    model: str
    attack: str
    eps_label: str


@dataclass
class _Outcome:
    """Per-example state after one eps: the adversarial prediction (clean prediction where the
    point was never attacked) and the perturbation norm of the example that produced it."""

    adv_pred: torch.Tensor
    norm: torch.Tensor
    x_adv: torch.Tensor | None = None  # kept only when asked for (attention panels)

    def robust(self, y: torch.Tensor) -> torch.Tensor:
        return self.adv_pred == y.cpu()


# ------------------------------------------------------------------ fast paths

class _Autocast(nn.Module):
    """Opt-in bf16 autocast around a CUDA model's forward; logits come back as float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return self.model(x).float()


def _gradient_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign of d CE / d x for one batch, exactly as torchattacks' FGSM computes it."""
    with eval_mode(model):
        xb = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xb), y), xb)
    return grad.sign()


def _batches(todo: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The attacked points cut into batches: identical in every process, so results do not depend
    on how many processes share the work."""
    return [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]


class _FGSMShared:
    """FGSM with one input gradient per example reused for every eps (``x + eps * sign(grad)``).

    The gradient is taken once, for the points attacked at the first nonzero eps; every later
    eps attacks a subset of them.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, ranks: Ranks):
        self.model, self.x, self.y, self.batch_size, self.ranks = model, x, y, batch_size, ranks
        self.sign: torch.Tensor | None = None
        self.row = torch.full((len(x),), -1, dtype=torch.long)

    def prepare(self, todo: torch.Tensor) -> None:
        if self.sign is not None or not len(todo):
            return
        self.row[todo] = torch.arange(len(todo))
        sign = torch.zeros((len(todo), *self.x.shape[1:]), device=self.x.device)
        touched = torch.zeros(len(todo), dtype=torch.bool)
        for idx in self.ranks.pick(_batches(todo, self.batch_size)):
            rows = self.row[idx]
            sign[rows] = _gradient_sign(self.model, self.x[idx], self.y[idx])
            touched[rows] = True
        self.sign = self.ranks.merge(sign, touched)

    def perturb(self, idx: torch.Tensor, eps: float) -> torch.Tensor:
        return (self.x[idx] + eps * self.sign[self.row[idx]]).clamp_(0, 1)


def _perturbation_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm is Norm.LINF else flat.norm(dim=1)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Argmax predictions in eval mode (the model's mode is restored)."""
    with eval_mode(model):
        return torch.cat([model(x[s:s + batch_size]).argmax(1) for s in range(0, len(x), batch_size)]).cpu()


def _batch_seed(seed: int, eps_index: int, first_example: int) -> int:
    """Seed for one attacked batch: depends on the sweep seed, the eps and the batch's first example."""
    digest = hashlib.sha256(f"{seed}:{eps_index}:{first_example}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


# ------------------------------------------------------------------ per (model, attack) walks

def _walk_bounded(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, grid: EpsGrid, start: int,
    state: _Outcome, batch_size: int, seed: int, ranks: Ranks = Ranks(),
) -> Iterator[tuple[int, _Outcome]]:
    """Attack the still-robust points at each eps from ``start`` on; yield (eps index, outcome)."""
    cfg = get_attack_cfg(spec.name)
    fgsm = _FGSMShared(model, x, y, batch_size, ranks) if spec.name == "fgsm" else None
    for k in range(start, len(grid)):
        eps = grid.values[k]
        state = _Outcome(state.adv_pred.clone(), state.norm.clone(), None if state.x_adv is None else state.x_adv.clone())
        todo = state.robust(y).nonzero().flatten().cpu() if eps > 0 else torch.empty(0, dtype=torch.long)
        if fgsm is not None:
            fgsm.prepare(todo)
        touched = torch.zeros(len(y), dtype=torch.bool)
        for idx in ranks.pick(_batches(todo, batch_size)):
            if fgsm is not None:
                x_adv = fgsm.perturb(idx, eps)
            else:
                attack = create_attack(spec.name, model, eps, seed=_batch_seed(seed, k, int(idx[0])), **spec.params)
                x_adv = attack(x[idx], y[idx])
            pred = predict(model, x_adv, batch_size)
            broken = pred != y[idx].cpu()
            state.adv_pred[idx[broken]] = pred[broken]
            state.norm[idx[broken]] = _perturbation_norm(x_adv[broken] - x[idx[broken]], cfg.norm).cpu()
            touched[idx[broken]] = True
            if state.x_adv is not None:
                state.x_adv[idx[broken]] = x_adv[broken].to(state.x_adv)
        state.adv_pred, state.norm = ranks.merge(state.adv_pred, touched), ranks.merge(state.norm, touched)
        yield k, state


def _walk_minimal(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, grid: EpsGrid, clean: _Outcome,
    batch_size: int, seed: int, ranks: Ranks = Ranks(),
) -> Iterator[tuple[int, _Outcome]]:
    """Run a minimal-perturbation attack once on the clean-correct points; read it at each budget."""
    cfg = get_attack_cfg(spec.name)
    todo = clean.robust(y).nonzero().flatten()
    adv_pred = clean.adv_pred.clone()
    norm = torch.full_like(clean.norm, float("inf"))
    touched = torch.zeros(len(y), dtype=torch.bool)
    for idx in ranks.pick(_batches(todo, batch_size)):
        attack = create_attack(spec.name, model, 0.0, seed=_batch_seed(seed, 0, int(idx[0])), **spec.params)
        x_adv = attack(x[idx], y[idx])
        adv_pred[idx] = predict(model, x_adv, batch_size)
        norm[idx] = _perturbation_norm(x_adv - x[idx], cfg.norm).cpu()
        touched[idx] = True
    adv_pred, norm = ranks.merge(adv_pred, touched), ranks.merge(norm, touched)
    success = adv_pred != y.cpu()
    for k, eps in enumerate(grid.values):
        broken = success & (norm <= eps)
        yield k, _Outcome(torch.where(broken, adv_pred, clean.adv_pred), torch.where(broken, norm, 0.0))


def adversarial_examples(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: str | AttackSpec, grid: EpsGrid | str,
    batch_size: int = 256, seed: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(adversarial images, predictions) at every eps, produced exactly as the sweep walks the grid:
    broken points keep the example that broke them; clean-misclassified points stay clean.
    For eps-bounded attacks only (the attention panels of reports use it)."""
    spec = resolve_attacks([attack])[0]
    if not get_attack_cfg(spec.name).eps_bounded:
        raise UserError(f"{spec.name} is a minimal-perturbation attack; choose an eps-bounded one")
    grid = grid if isinstance(grid, EpsGrid) else parse_eps_grid(grid)
    clean = _Outcome(predict(model, x, batch_size), torch.zeros(len(y)), x.detach().clone())
    return [(o.x_adv.clone(), o.adv_pred.clone())
            for _, o in _walk_bounded(model, x, y, spec, grid, 0, clean, batch_size, seed)]


# ------------------------------------------------------------------ the resume store

class CellStore:
    """Finished cells under ``OUT/cells/<key>.json`` (row + per-example state), written atomically."""

    def __init__(self, out: Path):
        self.dir = out / CELLS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(sha256: str, dataset: str, n: int, seed: int, spec: AttackSpec, eps_prefix: Sequence[float]) -> str:
        # The eps values up to this cell are part of the key: the still-robust set depends on them.
        ident = json.dumps([sha256, dataset, n, seed, spec.name, spec.params_json, [repr(e) for e in eps_prefix]])
        return hashlib.sha256(ident.encode()).hexdigest()[:24]

    def load(self, key: str) -> tuple[ResultRow, _Outcome] | None:
        path = self.dir / f"{key}.json"
        if not path.exists():
            return None
        try:
            blob = json.loads(path.read_text())
            row = ResultRow(**blob["row"])
            outcome = _Outcome(torch.tensor(blob["adv_pred"], dtype=torch.long),
                               torch.tensor(blob["norm"], dtype=torch.float32))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cell %s (%s)", path, exc)
            return None
        return row, outcome

    def save(self, key: str, row: ResultRow, outcome: _Outcome) -> None:
        blob = {"row": vars(row), "adv_pred": outcome.adv_pred.tolist(), "norm": outcome.norm.tolist()}
        atomic_write_text(self.dir / f"{key}.json", json.dumps(blob))


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """Refuse a second sweep on the same ``out``; take over a lock left by a dead process."""
    lock = out / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise UserError(f"{out} is in use by another sweep (pid {pid}); wait for it or use another --out") from None
            log.warning("removing stale lock %s (pid %s is gone)", lock, pid)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise UserError(f"cannot lock {out}")
    for folder in (out, out / CELLS_DIR):  # we are the only writer now: what a killed run was writing is junk
        for tmp in remove_stale_temporaries(folder):
            log.warning("removed %s, left by an interrupted write", tmp)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ inputs

def resolve_attacks(attacks: Sequence[str | AttackSpec], attack_args: Mapping[str, Any] | None = None) -> list[AttackSpec]:
    """Attack names (+ shared ``KEY=VALUE`` overrides, applied to each attack that has that key)."""
    if not attacks:
        raise UserError("no attack given")
    attack_args = dict(attack_args or {})
    specs: list[AttackSpec] = []
    for attack in attacks:
        if isinstance(attack, AttackSpec):
            specs.append(AttackSpec(attack.name, resolve_params(attack.name, attack.params)))
            continue
        cfg = get_attack_cfg(attack)
        specs.append(AttackSpec(attack, resolve_params(attack, {k: v for k, v in attack_args.items() if k in cfg.defaults})))
    unused = [k for k in attack_args if not any(k in get_attack_cfg(s.name).defaults for s in specs)]
    if unused:
        raise UserError(f"--attack-arg {unused[0]!r} is not a parameter of {', '.join(s.name for s in specs)}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"attack listed twice: {names}")
    return specs


def _check_grid_norms(grid: EpsGrid, specs: Sequence[AttackSpec]) -> None:
    l2 = [s.name for s in specs if get_attack_cfg(s.name).norm is Norm.L2]
    if l2 and grid.unit is EpsUnit.PER_255:
        raise UserError(f"L2 attacks ({', '.join(l2)}) take raw eps: pass --eps-unit raw (e.g. --eps 0:1:0.25)")
    if any(get_attack_cfg(s.name).norm is Norm.LINF for s in specs) and grid.values[-1] > 1:
        raise UserError(f"Linf eps above 1 exceeds the [0, 1] pixel range (largest: {grid.labels[-1]})")


def _evaluation_data(ckpt: Checkpoint, dataset: str | None, data_dir: str | None, n: int | None,
                     cache: dict[str, ImageSet]) -> EvalData:
    trained_on = get_dataset_cfg(ckpt.metadata["dataset"])
    name = dataset or trained_on.evaluation_set or trained_on.name
    if name not in cache:
        cache[name] = load_dataset(name, data_dir).test
    cfg = get_dataset_cfg(name)
    if cfg.in_channels != ckpt.metadata["in_channels"] or cfg.num_classes != ckpt.metadata["num_classes"]:
        raise UserError(
            f"{ckpt.name} ({ckpt.metadata['in_channels']} channels, {ckpt.metadata['num_classes']} classes) "
            f"cannot be evaluated on {name} ({cfg.in_channels} channels, {cfg.num_classes} classes)"
        )
    images = cache[name]
    if n is not None:
        images = ImageSet(images.x[:n], images.y[:n])
    return EvalData(name, images)


def _load_models(models: Sequence[str | os.PathLike | Checkpoint | CheckpointRef] | None, models_dir: str | os.PathLike) -> list[Checkpoint]:
    loaded: list[Checkpoint] = []
    specs = [m for m in (models or []) if not isinstance(m, (Checkpoint, CheckpointRef))]
    refs = resolve_checkpoints([str(s) for s in specs], models_dir) if specs or not models else []
    for m in models or []:
        if isinstance(m, Checkpoint):
            loaded.append(m)
        elif isinstance(m, CheckpointRef):
            refs.append(m)
    loaded += [load_checkpoint(r.path, expected_sha256=r.sha256, name=r.name) for r in refs]
    names = [c.name for c in loaded]
    if len(set(names)) != len(names):
        raise UserError(f"two checkpoints share a name: {sorted(n for n in names if names.count(n) > 1)}")
    return loaded


# ------------------------------------------------------------------ the sweep

def sweep(
    models: Sequence[str | os.PathLike | Checkpoint | CheckpointRef] | None,
    attacks: Sequence[str | AttackSpec],
    eps: EpsGrid | str,
    data: str | None = None,
    *,
    eps_unit: str | EpsUnit = EpsUnit.PER_255,
    attack_args: Mapping[str, Any] | None = None,
    data_dir: str | os.PathLike | None = None,
    models_dir: str | os.PathLike = "models",
    n: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    out: str | os.PathLike | None = None,
    per_example: bool = False,
    channels_last: bool = True,
    amp: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_cell: Callable[[CellEvent], None] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Evaluate ``models`` under ``attacks`` at every eps of the grid; one row per cell.

    ``models``: checkpoints, manifest names, paths or globs (None: the whole manifest in
    ``models_dir``). ``data``: a dataset name; None evaluates each checkpoint on the embedded set
    of the dataset it was trained on. With ``out``, cells are persisted and resumed.
    """
    grid = eps if isinstance(eps, EpsGrid) else parse_eps_grid(eps, eps_unit)
    specs = resolve_attacks(attacks, attack_args)
    _check_grid_norms(grid, specs)
    require_int("batch_size", batch_size, 1)
    require_int("seed", seed, 0)
    if n is not None:
        require_int("n", n, 1)
    dev = resolve_device(device)
    if amp and dev.type != "cuda":
        raise UserError("--amp needs a CUDA device (mixed precision is a GPU-only opt-in)")
    if amp:
        log.warning("AMP (bf16) changes the gradients the attacks follow: numbers may differ from float32 runs")
    if data is not None:
        get_dataset_cfg(data)
    checkpoints = _load_models(models, models_dir)
    cache: dict[str, ImageSet] = {}
    evals = [_evaluation_data(c, data, None if data_dir is None else str(data_dir), n, cache) for c in checkpoints]
    ranks = Ranks.current()
    out_path = None if out is None else ensure_dir(out, "--out") if ranks.is_writer else Path(out)
    started = time.time()
    with _locked(out_path, ranks):
        frame = _run(checkpoints, evals, specs, grid, batch_size, seed, dev, out_path, per_example, channels_last,
                     amp, on_start, on_cell, ranks)
        if out_path and ranks.is_writer:
            run = {
                **dict(provenance or {}),
                "version": __version__,
                "seed": seed,
                "device": str(dev),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "processes": ranks.world,
                "n": n,
                "batch_size": batch_size,
                "amp": amp,
                "eps": list(grid.values),
                "eps_labels": list(grid.labels),
                "attacks": [{"name": s.name, "params": dict(s.params)} for s in specs],
                "data_dir": None if data_dir is None else str(data_dir),
                "checkpoints": [
                    {"name": c.name, "path": str(c.path), "sha256": c.sha256, "architecture": c.metadata["architecture"],
                     "width": c.metadata["width"], "trained_on": c.metadata["dataset"], "evaluated_on": e.dataset}
                    for c, e in zip(checkpoints, evals)
                ],
                "wall_seconds": round(time.time() - started, 2),
            }
            atomic_write_text(out_path / RUN_FILE, json.dumps(run, indent=2) + "\n")
    return frame


@contextlib.contextmanager
def _locked(out: Path | None, ranks: Ranks) -> Iterator[None]:
    """Rank 0 takes the lock on ``out``; every rank learns whether it got it."""
    if out is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        problem = None
        if ranks.is_writer:
            try:
                stack.enter_context(out_lock(out))
            except UserError as exc:
                problem = str(exc)
        problem = ranks.broadcast(problem)
        if problem:
            raise UserError(problem)
        yield


def _run(checkpoints, evals, specs, grid, batch_size, seed, dev, out_path, per_example, channels_last, amp,
         on_start, on_cell, ranks: Ranks) -> pd.DataFrame:
    writer = ranks.is_writer
    store = CellStore(out_path) if out_path and writer else None
    out_path = out_path if writer else None
    on_start, on_cell = (on_start, on_cell) if writer else (None, None)
    total = len(checkpoints) * len(specs) * len(grid)
    if on_start:
        on_start(total)
    rows: list[ResultRow] = []
    examples: list[ExampleRow] = []
    done = skipped = 0
    try:
        for ckpt, ev in zip(checkpoints, evals):
            model = ckpt.model.to(dev)
            memory = torch.channels_last if channels_last else torch.contiguous_format
            model = model.to(memory_format=memory)
            if amp:
                model = _Autocast(model)
            x = ev.images.x.to(dev).float().div_(255.0).contiguous(memory_format=memory)
            y = ev.images.y.to(dev)
            clean = _Outcome(predict(model, x, batch_size), torch.zeros(len(y)))
            for spec in specs:
                keys = [CellStore.key(ckpt.sha256, ev.dataset, len(y), seed, spec, grid.values[:k + 1]) for k in range(len(grid))]
                finished = ranks.broadcast([store.load(k) if store else None for k in keys])
                start = next((k for k, f in enumerate(finished) if f is None), len(grid))
                for k in range(start):
                    rows.append(finished[k][0])
                    examples += _example_rows(ckpt.name, spec.name, grid, k, ev, finished[k][1], clean) if per_example else []
                    done += 1
                    skipped += 1
                    if on_cell:
                        on_cell(CellEvent(done, total, skipped, ckpt.name, spec.name, grid.labels[k]))
                if start == len(grid):
                    continue
                cfg = get_attack_cfg(spec.name)
                if cfg.eps_bounded:
                    state = finished[start - 1][1] if start > 0 else clean
                    walk = _walk_bounded(model, x, y, spec, grid, start, state, batch_size, seed, ranks)
                else:
                    walk = _walk_minimal(model, x, y, spec, grid, clean, batch_size, seed, ranks)
                t0 = time.perf_counter()
                for k, outcome in walk:
                    seconds = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    if k < start:  # a minimal attack re-read at a budget that was already stored
                        continue
                    row = _make_row(ckpt, ev, spec, grid, k, outcome, clean, seed, seconds)
                    rows.append(row)
                    if store:
                        store.save(keys[k], row, outcome)
                    if per_example:
                        examples += _example_rows(ckpt.name, spec.name, grid, k, ev, outcome, clean)
                    if out_path:
                        write_csv(rows_frame(rows, RESULT_COLUMNS), out_path / RESULTS_FILE)
                    done += 1
                    if on_cell:
                        on_cell(CellEvent(done, total, skipped, ckpt.name, spec.name, grid.labels[k]))
    finally:  # also on Ctrl-C: results.csv shows every finished cell
        if out_path and rows:
            write_csv(rows_frame(rows, RESULT_COLUMNS), out_path / RESULTS_FILE)
    if out_path and per_example:
        write_csv(rows_frame(examples, EXAMPLE_COLUMNS), out_path / EXAMPLES_FILE)
    return rows_frame(rows, RESULT_COLUMNS)


def _make_row(ckpt: Checkpoint, ev: EvalData, spec: AttackSpec, grid: EpsGrid, k: int, outcome: _Outcome,
              clean: _Outcome, seed: int, seconds: float) -> ResultRow:
    y = ev.images.y
    n = len(y)
    n_correct = int(outcome.robust(y).sum())
    lo, hi = wilson_interval(n_correct, n)
    return ResultRow(
        model=ckpt.name,
        checkpoint_sha256=ckpt.sha256,
        architecture=ckpt.metadata["architecture"],
        width=float(ckpt.metadata["width"]),
        trained_on=ckpt.metadata["dataset"],
        dataset=ev.dataset,
        n=n,
        attack=spec.name,
        attack_params=spec.params_json,
        norm=get_attack_cfg(spec.name).norm.value,
        eps=grid.values[k],
        eps_label=grid.labels[k],
        n_correct=n_correct,
        accuracy=n_correct / n,
        ci_low=lo,
        ci_high=hi,
        clean_accuracy=int(clean.robust(y).sum()) / n,
        seed=seed,
        version=__version__,
        seconds=round(seconds, 4),
    )


def _example_rows(model: str, attack: str, grid: EpsGrid, k: int, ev: EvalData, outcome: _Outcome,
                  clean: _Outcome) -> list[ExampleRow]:
    y = ev.images.y.tolist()
    clean_pred, adv_pred, norm = clean.adv_pred.tolist(), outcome.adv_pred.tolist(), outcome.norm.tolist()
    return [ExampleRow(model, attack, grid.values[k], grid.labels[k], i, y[i], clean_pred[i], adv_pred[i], norm[i])
            for i in range(len(y))]
