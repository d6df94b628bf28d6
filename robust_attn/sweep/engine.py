"""The sweep: accuracy of many models under many attacks over an eps grid, one row per cell.

Per model the clean pass runs once and is shared by every attack (with a gradient attack in the
sweep it is a forward+backward that also gives FGSM its gradient and the gradient diagnostic). Per
(model, attack) the walk in :mod:`.walks` gives each eps its per-eps accuracy and worst-case
envelope. Each finished cell goes to the folder's store as it completes and ``results.csv`` is
rebuilt from every cell the folder holds, so an interruption costs at most the cell in flight and
no finished result ever disappears.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..attacks import AttackKind, EpsGrid, EpsUnit, Objective, get_attack_cfg, seeded
from ..attacks.attention_shift import attention_model
from ..budget import exceeds_budget
from ..checkpoints import Checkpoint
from ..data import ImageSet, load_dataset
from ..distributed import Ranks
from ..errors import UserError
from ..results import (
    ADMISSION_COLUMNS, ADMISSION_FILE, EXAMPLE_COLUMNS, EXAMPLES_FILE, RESULT_COLUMNS, RESULTS_FILE, AdmissionRow,
    CheckStatus, ExampleRow, Outcome, ResultRow, read_admission_csv, rows_frame, wilson_interval, write_csv,
)
from ..run import (
    AttackSpec, EvalData, Models, attack_facts, check_request, evaluation_data, load_models, locked, logged,
    model_facts, needs_gradient, results_folder, start_record, versions,
)
from ..run.admission import admit
from ..user_models import is_user_checkpoint, probe
from .panels import PanelSpec, artifact_path, maps_are_distributions, wants_panel, write_artifact
from .store import CELLS_DIR, CellStore
from .corrupted import corrupted_sets, strip_path, write_strip
from .walks import Cell, Prepared, prepare, walk_bounded, walk_corruption, walk_minimal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellEvent:
    """Progress report: ``done`` of ``total`` cells finished (``skipped`` of them from a previous run)."""

    done: int
    total: int
    skipped: int
    model: str
    attack: str
    eps_label: str
    accuracy: float
    stored: bool  # read back from the folder's store, not computed now


@dataclass(frozen=True)
class Settings:
    """The sweep-wide settings that can change a number (each cell's key adds its own)."""

    seed: int
    batch_size: int
    fast_path: bool
    amp: bool
    device: str
    channels_last: bool


class _Autocast(nn.Module):
    """Opt-in bf16 autocast around a CUDA model's forward; logits come back as float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return self.model(x).float()


def run_sweep(
    models: Models | None,
    attacks: Sequence[str | AttackSpec],
    eps: EpsGrid | str | None,
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
    fast_path: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_cell: Callable[[CellEvent], None] | None = None,
    provenance: Mapping[str, Any] | None = None,
    strict: bool = False,
    on_admission: Callable[[AdmissionRow], None] | None = None,
    quantize: int | None = None,
) -> pd.DataFrame:
    """Evaluate ``models`` under ``attacks`` at every eps of the grid; one row per cell.

    ``attacks`` may name common corruptions instead (``fog``, or ``corruptions`` for all 15): the grid is then
    their severities (``0:5:1``, 0 the clean images; ``eps`` None gives that, or 0:8:1 for attacks).

    ``models``: checkpoints, manifest names, paths or globs (None: the whole manifest in
    ``models_dir``; with ``data`` given, those that fit it), and your own models: a ``{name: module}``
    mapping, :class:`~robust_attn.user_models.UserModel` items or ``package.module:function`` /
    ``file.py:function`` specs, each a ``torch.nn.Module`` mapping float N x C x H x W images in [0, 1]
    to N x num_classes logits, probed on two images before any attack (see :mod:`robust_attn.user_models`;
    rows carry its state_dict's sha256). ``data``: a dataset name; None evaluates each checkpoint on the
    embedded set of the dataset it was trained on (user models need it). With ``out``, cells are
    stored and resumed there and ``results.csv`` holds every cell of the folder; the frame returned
    holds this call's cells. ``fast_path=False`` attacks every point at every eps for every attack.
    The caller's models are never modified. ``strict``: with the default model set, a manifest entry
    whose checkpoint file is missing is an error instead of a warning that skips it.

    Before a model's first attack the sweep makes RobustBench's admission checks on it (deterministic
    forward, informative input gradient, clean accuracy as the checkpoint records it for the same images;
    :mod:`robust_attn.run.admission`): each is logged, passed to ``on_admission`` and kept in the folder's
    ``admission.csv``. A failed check does not stop the sweep: the report says what it means for the numbers.
    ``quantize`` (8 or 16): every adversarial image is rounded to that many bits per channel before it is
    scored, as saving it to a PNG would (:mod:`robust_attn.attacks.quantization`); rows record it in
    ``attack_params``.
    """
    request = check_request(attacks, eps, eps_unit=eps_unit, attack_args=attack_args, data=data,
                            batch_size=batch_size, seed=seed, n=n, device=device, quantize=quantize)
    grid, specs, dev = request.grid, request.specs, request.device
    if amp and dev.type != "cuda":
        raise UserError("--amp needs a CUDA device (mixed precision is a GPU-only opt-in)")
    if amp:
        log.warning("AMP (bf16) changes the gradients the attacks follow: numbers may differ from float32 runs")
    cache: dict[str, ImageSet] = {}
    if data is not None:  # load it first: a missing dataset is the error, before any warning about models
        cache[data] = load_dataset(data, None if data_dir is None else str(data_dir)).test
    checkpoints = load_models(models, models_dir, data, strict=strict)
    evals = [evaluation_data(c, data, None if data_dir is None else str(data_dir), n, cache) for c in checkpoints]
    gradient = needs_gradient(specs)
    for c, e in zip(checkpoints, evals):
        if is_user_checkpoint(c):  # before any work: a module that cannot answer is one line naming it
            probe(c, e.images.x, e.dataset, dev, channels_last, gradient)
    for spec in specs:  # attention attacks need spatial maps: refuse a model without them before any work
        if get_attack_cfg(spec.name).objective is Objective.ATTENTION:
            for c in checkpoints:
                attention_model(c.model, name=c.name)
    facts = {(c.name, a.name): _facts(c, a) for c in checkpoints for a in specs}  # a failed lookup: before any work
    settings = Settings(seed, batch_size, fast_path, amp, dev.type, channels_last)
    ranks = Ranks.current()
    out_path = results_folder(out, ranks)
    with locked(out_path, ranks, [CELLS_DIR]):
        store = CellStore(out_path) if out_path and ranks.is_writer else None
        plan = _Plan(checkpoints, evals, specs, grid, settings, dev, versions(), facts)
        if store:
            for cell_settings in plan.all_settings():
                store.check_conflict(cell_settings)
        with logged(store.out if store else None, plan.record(provenance, data_dir, n, ranks.world)):
            return _run(plan, store, per_example, on_start, on_cell, ranks, panels=out is not None,
                        on_admission=on_admission)


@dataclass(frozen=True)
class _Plan:
    checkpoints: Sequence[Checkpoint]
    evals: Sequence[EvalData]
    specs: Sequence[AttackSpec]
    grid: EpsGrid
    settings: Settings
    device: torch.device
    versions: dict[str, str]
    facts: Mapping[tuple[str, str], Mapping[str, Any]]  # per (model, attack): the rows' descriptive columns

    def cell_settings(self, ckpt: Checkpoint, ev: EvalData, spec: AttackSpec, k: int) -> dict[str, Any]:
        s = self.settings
        return {
            "model": ckpt.name, "checkpoint_sha256": ckpt.sha256, "dataset": ev.dataset, "data_sha256": ev.sha256,
            "n": len(ev.images), "seed": s.seed, "batch_size": s.batch_size, "attack": spec.name,
            "attack_params": spec.params_json, "eps_label": self.grid.labels[k],
            "eps": [repr(e) for e in self.grid.values[:k + 1]], "fast_path": s.fast_path, "amp": s.amp,
            "device": s.device, "channels_last": s.channels_last, "versions": self.versions,
        }

    def all_settings(self) -> Iterator[dict[str, Any]]:
        for ckpt, ev in zip(self.checkpoints, self.evals):
            for spec in self.specs:
                for k in range(len(self.grid)):
                    yield self.cell_settings(ckpt, ev, spec, k)

    def record(self, provenance: Mapping[str, Any] | None, data_dir, n: int | None, world: int) -> dict[str, Any]:
        return start_record(
            provenance=provenance, kind="sweep", settings=asdict(self.settings), grid=self.grid, n=n, data_dir=data_dir,
            processes=world, specs=self.specs, models=zip(self.checkpoints, self.evals),
            planned=[{"model": c.name, "attack": a.name, "attack_params": a.params_json, "eps_label": label}
                     for c in self.checkpoints for a in self.specs for label in self.grid.labels],
        )


def _facts(ckpt: Checkpoint, spec: AttackSpec) -> dict[str, Any]:
    """The descriptive columns of a (model, attack)'s rows (``results.DESCRIPTIVE_COLUMNS``)."""
    m, a = model_facts(ckpt), attack_facts(spec.name)
    return {"model_family": m.family, "baseline": m.baseline, "attention_maps": m.attention_maps,
            "training_threat_model": m.training_threat_model, "model_args": m.model_args, "attack_kind": a.attack_kind,
            "ce_gradient": a.ce_gradient}


def _prepare_model(ckpt: Checkpoint, ev: EvalData, plan: _Plan, ranks: Ranks, panels: bool) -> Prepared:
    """A private copy of the model on the device (the caller's model is left as it was). ``panels``: record
    the attention panels the report draws; only a run with a results folder keeps them, and a panel costs an
    attention pass per attacked batch (the same on every process: it decides a collective)."""
    s, dev = plan.settings, plan.device
    net = copy.deepcopy(ckpt.model).to(dev).eval()
    if s.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = _Autocast(net) if s.amp else net
    x = ev.images.x.to(dev).float().div_(255.0)
    if s.channels_last:  # inputs in the model's layout, or every conv converts them again
        x = x.contiguous(memory_format=torch.channels_last)
    y = ev.images.y.to(dev)
    gradient = needs_gradient(plan.specs)
    panel = PanelSpec() if panels and any(wants_panel(net, a) for a in plan.specs) else None
    with seeded(s.seed, dev):  # a model whose forward is random gives the same clean pass for the same seed
        return prepare(model, net if panel else None, x, y, s.batch_size, ranks, gradient, panel)


def _admit(ckpt: Checkpoint, ev: EvalData, p: Prepared, out_path, on_admission, seed: int) -> None:
    """The admission checks of a model just prepared, before its first attack: logged, reported, kept."""
    with seeded(seed, p.x.device):
        rows = admit(ckpt.name, ckpt.sha256, ckpt.metadata, ev, p.model, p.x, p.y, p.clean_pred,
                               p.batch_size, p.zero_gradient_fraction if p.gradient_sign is not None else None)
    for row in rows:
        log.log(logging.WARNING if row.status == CheckStatus.FAIL else logging.INFO,
                "admission %s: %s %s: %s", row.status, row.model, row.check, row.detail)
        if on_admission:
            on_admission(row)
    if out_path is not None:
        _save_admission(out_path, rows)


def _save_admission(out_path, rows: Sequence[AdmissionRow]) -> None:
    """admission.csv holds the latest checks of every (model, images) the folder evaluated."""
    frame = rows_frame(list(rows), ADMISSION_COLUMNS)
    path = out_path / ADMISSION_FILE
    if path.is_file():
        frame = pd.concat([read_admission_csv(path), frame], ignore_index=True)
    key = ["model", "checkpoint_sha256", "data_sha256", "n", "check"]
    write_csv(frame.drop_duplicates(key, keep="last").reset_index(drop=True), path)


def _run(plan: _Plan, store: CellStore | None, per_example: bool, on_start, on_cell, ranks: Ranks,
         panels: bool, on_admission=None) -> pd.DataFrame:
    writer = ranks.is_writer
    out_path = store.out if store else None
    on_start, on_cell = (on_start, on_cell) if writer else (None, None)
    grid = plan.grid
    total = len(plan.checkpoints) * len(plan.specs) * len(grid)
    if on_start:
        on_start(total)
    rows: list[ResultRow] = []
    done = skipped = 0
    try:
        for ckpt, ev in zip(plan.checkpoints, plan.evals):
            prepared: Prepared | None = None
            for spec in plan.specs:
                facts = plan.facts[ckpt.name, spec.name]
                all_settings = [plan.cell_settings(ckpt, ev, spec, k) for k in range(len(grid))]
                finished = ranks.broadcast([store.load(s, facts) if store else None for s in all_settings])
                start = next((k for k, f in enumerate(finished) if f is None), len(grid))
                for k in range(start):
                    _check_budget(finished[k].row, spec)
                    rows.append(finished[k].row)
                    done += 1
                    skipped += 1
                    if on_cell:
                        on_cell(CellEvent(done, total, skipped, ckpt.name, spec.name, grid.labels[k], finished[k].row.accuracy, True))
                cells: list[Cell] = [f.cell for f in finished[:start]]
                if start < len(grid):
                    if prepared is None:
                        prepared = _prepare_model(ckpt, ev, plan, ranks, panels)
                        if writer:
                            _admit(ckpt, ev, prepared, out_path, on_admission, plan.settings.seed)
                    corruption = get_attack_cfg(spec.name).kind is AttackKind.CORRUPTION
                    previous = cells[start - 1] if start > 0 else None
                    if corruption:
                        images = corrupted_sets(ev, spec.name, grid, plan.settings.seed, prepared.x)
                        walk = walk_corruption(prepared, grid, start, previous, plan.settings.seed, images)
                    elif get_attack_cfg(spec.name).eps_bounded:
                        walk = walk_bounded(prepared, spec, grid, start, previous, plan.settings.seed, plan.settings.fast_path)
                    else:
                        walk = walk_minimal(prepared, spec, grid, start, plan.settings.seed)
                    t0 = time.perf_counter()
                    for k, cell in walk:
                        seconds, t0 = time.perf_counter() - t0, time.perf_counter()
                        if not (prepared.panel and wants_panel(prepared.attention_model, spec)):
                            cell = Cell(**{**cell.__dict__, "panel": None})
                        row = _make_row(ckpt, ev, spec, grid, k, cell, prepared, plan.settings.seed, seconds, facts)
                        rows.append(row)
                        cells.append(cell)
                        if store:
                            store.save(all_settings[k], row, cell, ev.images.y, prepared.clean_pred)
                            write_csv(_sorted(rows_frame(store.rows(), RESULT_COLUMNS)), out_path / RESULTS_FILE)
                        _check_budget(row, spec)
                        done += 1
                        if on_cell:
                            on_cell(CellEvent(done, total, skipped, ckpt.name, spec.name, grid.labels[k], row.accuracy, False))
                if store and get_attack_cfg(spec.name).kind is AttackKind.CORRUPTION and \
                        (start < len(grid) or not strip_path(out_path, ev, spec.name, plan.settings.seed).is_file()):
                    write_strip(out_path, ev, spec.name, grid, plan.settings.seed)
                if store and prepared is not None and prepared.panel and wants_panel(prepared.attention_model, spec) \
                        and all(c.panel is not None for c in cells):
                    clean = prepared.panel.clean_panel(prepared.attention_model, prepared.x, prepared.clean_pred)
                    cfg = getattr(ckpt.model, "cfg", None)
                    layers = list(getattr(cfg, "map_labels", None) or
                                  (f"layer {j}" for j in getattr(cfg, "attention_layers", ())))
                    write_artifact(artifact_path(out_path, ckpt.name, spec), ckpt.name, spec, grid, layers,
                                   ev.images.y, clean, [c.panel for c in cells],
                                   maps_are_distributions(ckpt.model))
    finally:  # also on Ctrl-C: the folder's CSVs show every finished cell
        if store:
            write_csv(_sorted(rows_frame(store.rows(), RESULT_COLUMNS)), out_path / RESULTS_FILE)
            if per_example:
                write_csv(_examples_frame(store), out_path / EXAMPLES_FILE)
    return rows_frame(rows, RESULT_COLUMNS)


def _check_budget(row: ResultRow, spec: AttackSpec) -> None:
    """An eps-bounded attack whose output left the eps-ball fails loudly (its cell stays in the
    folder, where the report's budget check shows it)."""
    if get_attack_cfg(spec.name).eps_bounded and exceeds_budget(row.max_perturbation, row.eps):
        raise UserError(
            f"attack {spec.name} exceeded its budget at eps {row.eps_label} on {row.model}: perturbation norm "
            f"{row.max_perturbation:.6g} > {row.eps:.6g} ({row.norm}); its numbers are not robust accuracy"
        )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "dataset", "n", "attack", "attack_params", "eps"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _make_row(ckpt: Checkpoint, ev: EvalData, spec: AttackSpec, grid: EpsGrid, k: int, cell: Cell, p: Prepared,
              seed: int, seconds: float, facts: Mapping[str, Any]) -> ResultRow:
    n = len(ev.images.y)
    n_correct, worst = int(cell.robust.sum()), int(cell.worst_case.sum())
    lo, hi = wilson_interval(n_correct, n)
    wlo, whi = wilson_interval(worst, n)
    cfg = get_attack_cfg(spec.name)
    return ResultRow(
        model=ckpt.name,
        checkpoint_sha256=ckpt.sha256,
        architecture=ckpt.metadata["architecture"],
        width=float(ckpt.metadata["width"]),
        trained_on=ckpt.metadata["dataset"],
        dataset=ev.dataset,
        **facts,
        n=n,
        attack=spec.name,
        attack_params=spec.params_json,
        norm=cfg.norm.value,
        objective=cfg.objective.value,
        eps=grid.values[k],
        eps_label=grid.labels[k],
        n_correct=n_correct,
        accuracy=n_correct / n,
        ci_low=lo,
        ci_high=hi,
        worst_case_n_correct=worst,
        worst_case_accuracy=worst / n,
        worst_case_ci_low=wlo,
        worst_case_ci_high=whi,
        accuracy_method=cell.method.value,
        clean_accuracy=int(p.clean_correct.sum()) / n,
        zero_gradient_fraction=p.zero_gradient_fraction if cfg.uses_gradient else float("nan"),
        max_perturbation=cell.max_perturbation,
        attack_failures=int(cell.failed.sum()),
        attention_shift=float("nan") if cell.shift is None else float(cell.shift.mean()),
        seed=seed,
        version=__version__,
        seconds=round(seconds, 4),
    )


def _examples_frame(store: CellStore) -> pd.DataFrame:
    """per_example.csv: every example of every cell the folder holds."""
    rows: list[ExampleRow] = []
    for _, row, blob in store.examples():
        shifts = blob.get("shift") or [float("nan")] * len(blob["label"])
        for i, (label, clean, adv, norm, shift, robust, worst, failed) in enumerate(zip(
                blob["label"], blob["clean_pred"], blob["adv_pred"], blob["norm"], shifts, blob["robust"],
                blob["worst_case"], blob["failed"])):
            outcome = (Outcome.ATTACK_FAILED if failed else Outcome.ROBUST if robust
                       else Outcome.CLEAN_ERROR if clean != label else Outcome.BROKEN)
            rows.append(ExampleRow(row.model, row.dataset, row.n, row.attack, row.attack_params, row.eps, row.eps_label,
                                   i, label, clean, adv, norm, shift, int(robust), int(worst), outcome.value))
    return _sorted_examples(rows_frame(rows, EXAMPLE_COLUMNS))


def _sorted_examples(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "dataset", "n", "attack", "attack_params", "eps", "index"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
