"""Transfer attacks: adversarial examples crafted on one model (the source) and evaluated on others
(the targets), the black-box question "do examples made on the baseline fool the attention model,
and the other way round?".

Per (source, attack, eps) the attack runs once, on every evaluation point at that eps alone (the
sweep's per-eps path: the same batches, the same per-batch seeds, the same FGSM gradient sign), and
each batch of adversarial examples goes through every target in one forward. A target's accuracy
is its prediction on the source's examples compared with the label, so the diagonal (source ==
target) is the white-box per-eps accuracy: it equals ``sweep``'s ``accuracy`` for the same grid,
seed, n and batch size exactly (for attacks with a still-robust fast path, pgd and bim, the sweep's
``--no-fast-path`` number; FGSM has no fast path).

A source and a target must be evaluated on the same images (same pixels and labels): targets named
explicitly that are not are an error; by default every checkpoint evaluated on the source's images
is a target. Only eps-bounded attacks that aim at misclassification transfer.

Results folder (see /work/notes/transfer_contract.md): ``transfer.csv`` (one row per source x target
x attack x eps), ``transfer_examples.csv`` (one row per example of each), ``runs.jsonl`` (the
run log) and ``transfer_cells/`` (the resume store: one file per (source, attack, eps) holding every
target's results, keyed by a hash of everything that can change its numbers).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import __version__
from .attacks import CORRUPTIONS, AttackKind, EpsGrid, EpsUnit, Objective, get_attack_cfg
from .budget import exceeds_budget
from .checkpoints import Checkpoint
from .data import ImageSet, get_dataset_cfg
from .distributed import Ranks
from .errors import UserError
from .results import (
    TRANSFER_COLUMNS, TRANSFER_DESCRIPTIVE_COLUMNS, TRANSFER_EXAMPLE_COLUMNS, TRANSFER_EXAMPLES_FILE, TRANSFER_FILE,
    TransferExampleRow, TransferRow, read_transfer_csv, read_transfer_examples_csv, row_from_record, rows_frame,
    wilson_interval, write_csv,
)
from .run import (
    AttackSpec, EvalData, KeyedStore, ModelFacts, attack_facts, check_request, evaluation_data, load_models, locked, logged,
    model_facts, needs_gradient, results_folder, start_record, versions,
)
from .sweep.walks import Prepared, attack_batch, batches, perturbation_norm, predict, prepare

log = logging.getLogger(__name__)

TRANSFER_CELLS_DIR = "transfer_cells"
DEFAULT_OUT = Path("results") / "transfer"
# The settings that make two cells answer the same question; any other setting must agree.
IDENTITY = ("source", "dataset", "n", "attack", "attack_params", "eps_label")


@dataclass(frozen=True)
class TransferEvent:
    """Progress: ``done`` of ``total`` (source, attack, eps) cells finished, ``skipped`` of them read
    back from the folder; ``accuracy`` per target of this cell."""

    done: int
    total: int
    skipped: int
    source: str
    attack: str
    eps_label: str
    accuracy: Mapping[str, float]
    stored: bool


def run_transfer(
    sources: Sequence[Any] | Mapping[str, torch.nn.Module] | None,
    targets: Sequence[Any] | Mapping[str, torch.nn.Module] | None,
    attacks: str | AttackSpec | Sequence[str | AttackSpec],
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
    on_start: Callable[[int], None] | None = None,
    on_cell: Callable[[TransferEvent], None] | None = None,
    provenance: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """Craft adversarial examples on each source (once per attack and eps) and evaluate them on every
    target; one row per source x target x attack x eps (columns :data:`TRANSFER_COLUMNS`).

    ``sources`` / ``targets``: checkpoints, manifest names, paths or globs, as ``sweep``'s ``models``
    (None: the default model set of ``models_dir``; default targets are, per source, those evaluated
    on the source's images). ``attacks``: eps-bounded attacks aiming at misclassification (a name,
    or several). ``data``: the evaluation dataset (None: each checkpoint's embedded set). With
    ``out``, cells are stored and resumed there and ``transfer.csv`` / ``transfer_examples.csv``
    hold every cell of the folder; the frame returned holds this call's rows. The diagonal (source
    == target) equals ``sweep(..., fast_path=False)``'s ``accuracy`` for the same grid, seed, n and
    batch size. The caller's models are never modified.
    """
    request = check_request([attacks] if isinstance(attacks, (str, AttackSpec)) else list(attacks), eps,
                            eps_unit=eps_unit, attack_args=attack_args, data=data, batch_size=batch_size, seed=seed,
                            n=n, device=device, accept=_check_transferable)
    plan = _plan(sources, targets, request.specs, request.grid, data, data_dir, models_dir, n, strict, seed,
                 batch_size, request.device)
    ranks = Ranks()  # one process: transfer is not distributed
    out_path = results_folder(out, ranks)
    with locked(out_path, ranks, [TRANSFER_CELLS_DIR]):
        store = TransferStore(out_path) if out_path else None
        if store:
            for source in plan.sources:
                for spec in plan.specs:
                    for k in range(len(plan.grid)):
                        store.check_conflict(plan.cell_settings(source, spec, k), plan.target_shas(source))
        with logged(out_path, plan.record(provenance, data_dir, n)):
            return _run(plan, store, on_start, on_cell)


def _check_transferable(name: str) -> None:
    if name == CORRUPTIONS or get_attack_cfg(name).kind is AttackKind.CORRUPTION:
        raise UserError(f"{name} cannot transfer: a common corruption does not look at any model, so every model "
                        f"sees the same images; sweep it (robust-attn sweep --attack {name})")
    cfg = get_attack_cfg(name)
    if not cfg.eps_bounded:
        raise UserError(f"attack {name} cannot transfer: it is a minimal-perturbation attack (no eps budget); "
                        f"use an eps-bounded attack such as fgsm or pgd")
    if cfg.objective is not Objective.MISCLASSIFY:
        raise UserError(f"attack {name} cannot transfer: it aims at the {cfg.objective.value} maps, not the label; "
                        f"use a label attack such as fgsm or pgd")


# ---------------------------------------------------------------- plan

@dataclass
class _Model:
    ckpt: Checkpoint
    ev: EvalData
    gradient: bool  # prepared with the clean input gradient (sources of gradient attacks)
    facts: ModelFacts  # what its rows say about it
    prepared: Prepared | None = None

    @property
    def name(self) -> str:
        return self.ckpt.name


@dataclass(frozen=True)
class _Plan:
    sources: list[_Model]
    targets: dict[str, list[_Model]]  # per source name, in target order
    specs: list[AttackSpec]
    grid: EpsGrid
    seed: int
    batch_size: int
    device: torch.device
    versions: dict[str, str]

    def target_shas(self, source: _Model) -> dict[str, str]:
        return {t.name: t.ckpt.sha256 for t in self.targets[source.name]}

    def cell_settings(self, source: _Model, spec: AttackSpec, k: int) -> dict[str, Any]:
        """Everything that can change a (source, attack, eps) cell's numbers (the targets' own
        checkpoint hashes are checked per target)."""
        ev = source.ev
        return {
            "source": source.name, "source_sha256": source.ckpt.sha256, "dataset": ev.dataset,
            "data_sha256": ev.sha256, "n": len(ev.images), "seed": self.seed, "batch_size": self.batch_size,
            "attack": spec.name, "attack_params": spec.params_json, "eps_label": self.grid.labels[k],
            "eps_index": k,  # the per-batch attack seeds depend on it
            "eps": repr(self.grid.values[k]), "device": self.device.type, "channels_last": True,
            "versions": self.versions,
        }

    def record(self, provenance: Mapping[str, Any] | None, data_dir, n: int | None) -> dict[str, Any]:
        models = _unique([*self.sources, *(t for ts in self.targets.values() for t in ts)])
        return start_record(
            provenance=provenance, kind="transfer",
            settings={"seed": self.seed, "batch_size": self.batch_size, "device": self.device.type,
                      "channels_last": True},
            grid=self.grid, n=n, data_dir=data_dir, processes=1, specs=self.specs,
            models=[(m.ckpt, m.ev) for m in models],
            pairs={s.name: [t.name for t in self.targets[s.name]] for s in self.sources},
            planned=[{"source": s.name, "attack": a.name, "attack_params": a.params_json, "eps_label": label}
                     for s in self.sources for a in self.specs for label in self.grid.labels],
        )


def _unique(models: Sequence[_Model]) -> list[_Model]:
    return list({id(m): m for m in models}.values())


def _plan(sources, targets, specs: list[AttackSpec], grid: EpsGrid, data: str | None, data_dir, models_dir,
          n: int | None, strict: bool, seed: int, batch_size: int, dev: torch.device) -> _Plan:
    """Load sources and targets (a checkpoint that is both is loaded once), their evaluation images,
    and pair them; every refusal happens here, before any attack."""
    default_sources, default_targets = _is_default(sources), _is_default(targets)
    source_ckpts = load_models(None if default_sources else sources, models_dir, data, strict=strict)
    if default_targets and default_sources:
        target_ckpts = source_ckpts
    else:
        target_ckpts = load_models(None if default_targets else targets, models_dir, data, strict=strict)
    gradient = needs_gradient(specs)  # as the sweep prepares its models
    cache: dict[str, ImageSet] = {}
    models: dict[str, _Model] = {}

    def model(ckpt: Checkpoint, is_source: bool) -> _Model | None:
        known = models.get(ckpt.name)
        if known is not None:
            if known.ckpt.sha256 != ckpt.sha256 or known.ckpt.path.resolve() != ckpt.path.resolve():
                raise UserError(f"two checkpoints are named {ckpt.name} ({known.ckpt.path} and {ckpt.path}); "
                                f"name one by its manifest entry")
            known.gradient = known.gradient or (is_source and gradient)
            return known
        try:
            ev = evaluation_data(ckpt, data, None if data_dir is None else str(data_dir), n, cache)
        except UserError:
            if is_source or not default_targets:
                raise
            return None  # a default target that cannot be evaluated on --dataset (load_models left most out)
        models[ckpt.name] = _Model(ckpt, ev, is_source and gradient, model_facts(ckpt))
        return models[ckpt.name]

    srcs = [model(c, True) for c in source_ckpts]
    candidates = [m for m in (model(c, False) for c in target_ckpts) if m is not None]
    pairs: dict[str, list[_Model]] = {}
    for s in srcs:
        fit = [t for t in candidates if t.ev.sha256 == s.ev.sha256]
        other = next((t for t in candidates if t not in fit), None)
        if default_targets:
            if s not in fit:  # a source outside the default set (a seed replica) keeps its diagonal
                fit.insert(0, s)
            if other is not None:
                log.info("targets of %s: left out %s (not evaluated on %s)", s.name,
                         ", ".join(t.name for t in candidates if t not in fit), s.ev.dataset)
        elif other is not None and not default_sources:
            raise UserError(
                f"target {other.name} is evaluated on {other.ev.dataset} ({_shape(other.ev)}), source {s.name} on "
                f"{s.ev.dataset} ({_shape(s.ev)}): a transfer needs both on the same images")
        pairs[s.name] = fit
    if not default_targets and default_sources:  # the default sources are those that share the targets' images
        left_out = [s.name for s in srcs if not pairs[s.name]]
        if left_out:
            log.info("sources: left out %s (no target is evaluated on their images)", ", ".join(left_out))
        srcs = [s for s in srcs if pairs[s.name]]
        alone = next((t for t in candidates if not any(t in pairs[s.name] for s in srcs)), None)
        if alone is not None:
            raise UserError(f"target {alone.name} ({alone.ev.dataset}, {_shape(alone.ev)}): no checkpoint of "
                            f"{models_dir} is evaluated on its images to craft examples on; pass --sources")
    names = [s.name for s in srcs]
    if len(set(names)) != len(names):
        raise UserError(f"source listed twice: {sorted({x for x in names if names.count(x) > 1})}")
    return _Plan(srcs, pairs, specs, grid, seed, batch_size, dev, versions())


def _is_default(models) -> bool:
    return models is None or (not isinstance(models, (str, os.PathLike)) and len(models) == 0)


def _shape(ev: EvalData) -> str:
    c, h, w = ev.images.x.shape[1:]
    return f"{c}x{h}x{w} images, {get_dataset_cfg(ev.dataset).num_classes} classes"


# ---------------------------------------------------------------- store

class TransferStore(KeyedStore[dict]):
    """Finished (source, attack, eps) cells under ``OUT/transfer_cells/<key>.json``: the settings, the
    labels, and per target its checkpoint hash, row, clean and adversarial predictions. A cell holds
    every target it was evaluated on; a rerun with new targets crafts again and adds them."""

    def __init__(self, out: Path):
        super().__init__(out, TRANSFER_CELLS_DIR, IDENTITY)

    def decode(self, blob: dict[str, Any]) -> dict[str, Any]:
        for entry in blob["targets"].values():
            entry["row"] = row_from_record(TransferRow, entry["row"], TRANSFER_DESCRIPTIVE_COLUMNS)
        return blob

    def check_conflict(self, settings: Mapping[str, Any], target_shas: Mapping[str, str]) -> None:
        """Refuse settings (or a target's checkpoint) that differ from a stored cell answering the
        same question."""
        what = f"{settings['source']} {settings['attack']} eps {settings['eps_label']}"
        self.refuse_other_settings(settings, what)
        if self.stored_settings(settings) is None:
            return
        for name, sha in target_shas.items():
            entry = self.get(settings)["targets"].get(name)
            if entry is not None and entry["sha256"] != sha:
                raise UserError(f"{self.out} already holds {what} evaluated on another checkpoint named {name} "
                                f"(sha256 {entry['sha256'][:12]} there, {sha[:12]} now); rerun with the same "
                                f"checkpoints or use another --out")

    def save(self, settings: Mapping[str, Any], blob: dict[str, Any]) -> None:
        on_disk = {**blob, "targets": {name: {**e, "row": vars(e["row"])} for name, e in blob["targets"].items()}}
        on_disk.pop("settings", None)
        self.put(settings, blob, on_disk)

    def rows(self) -> list[TransferRow]:
        return [e["row"] for _, b in self.entries() for e in b["targets"].values()]

    def examples(self) -> Iterator[TransferExampleRow]:
        for _, blob in self.entries():
            for entry in blob["targets"].values():
                r = entry["row"]
                for i, (label, clean, adv) in enumerate(zip(blob["label"], entry["clean_pred"], entry["adv_pred"])):
                    yield TransferExampleRow(r.source, r.target, r.dataset, r.n, r.attack, r.attack_params, r.eps,
                                             r.eps_label, i, label, clean, adv, int(adv == label))


def _facts(source: _Model, target: _Model, spec: AttackSpec) -> dict[str, Any]:
    """The descriptive columns of a transfer row (``results.TRANSFER_DESCRIPTIVE_COLUMNS``)."""
    facts: dict[str, Any] = {}
    for end, m in (("source", source), ("target", target)):
        f = m.facts
        facts.update({f"{end}_architecture": f.architecture, f"{end}_family": f.family, f"{end}_baseline": f.baseline,
                      f"{end}_attention_maps": f.attention_maps,
                      f"{end}_training_threat_model": f.training_threat_model,
                      f"{end}_trained_on": str(m.ckpt.metadata["dataset"]),
                      f"{end}_training_seed": f.training_seed, f"{end}_model_args": f.model_args})
    a = attack_facts(spec.name)
    return {**facts, "attack_kind": a.attack_kind, "ce_gradient": a.ce_gradient}


# ---------------------------------------------------------------- run

def _prepare(m: _Model, plan: _Plan, images: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Prepared:
    """A private copy of the model on the device, prepared as the sweep prepares it (channels_last
    weights and inputs; with a gradient attack, the clean pass with the input gradient)."""
    if m.prepared is None:
        if m.ev.sha256 not in images:
            x = m.ev.images.x.to(plan.device).float().div_(255.0).contiguous(memory_format=torch.channels_last)
            images[m.ev.sha256] = (x, m.ev.images.y.to(plan.device))
        x, y = images[m.ev.sha256]
        net = copy.deepcopy(m.ckpt.model).to(plan.device).eval().to(memory_format=torch.channels_last)
        m.prepared = prepare(net, None, x, y, plan.batch_size, Ranks(), m.gradient, None)
    return m.prepared


def _run(plan: _Plan, store: TransferStore | None, on_start, on_cell) -> pd.DataFrame:
    grid = plan.grid
    total = len(plan.sources) * len(plan.specs) * len(grid)
    if on_start:
        on_start(total)
    out_path = store.out if store else None
    images: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    rows: list[TransferRow] = []
    done = skipped = 0
    try:
        for source in plan.sources:
            targets = plan.targets[source.name]
            for spec in plan.specs:
                for k in range(len(grid)):
                    settings = plan.cell_settings(source, spec, k)
                    blob = store.get(settings) if store else None
                    missing = [t for t in targets if blob is None or t.name not in blob["targets"]]
                    if blob is not None and _refresh_facts(blob, source, targets, spec) and not missing:
                        store.save(settings, blob)  # a cell stored by 0.3: its rows gain the descriptive columns
                    if missing:
                        blob = _compute(plan, source, spec, k, missing, blob, settings, images)
                        if store:
                            store.save(settings, blob)
                            _write_results(store, out_path)
                    else:
                        skipped += 1
                    cell_rows = [blob["targets"][t.name]["row"] for t in targets]
                    rows += cell_rows
                    done += 1
                    if on_cell:
                        on_cell(TransferEvent(done, total, skipped, source.name, spec.name, grid.labels[k],
                                              {r.target: r.accuracy for r in cell_rows}, not missing))
    finally:  # also on Ctrl-C: the folder's CSVs show every finished cell
        if store:
            _write_results(store, out_path)
            write_csv(_sorted(rows_frame(list(store.examples()), TRANSFER_EXAMPLE_COLUMNS), ["index"]),
                      out_path / TRANSFER_EXAMPLES_FILE)
    return rows_frame(rows, TRANSFER_COLUMNS)


def _refresh_facts(blob: dict[str, Any], source: _Model, targets: Sequence[_Model], spec: AttackSpec) -> bool:
    """Give a stored cell's rows this run's descriptive columns; whether any changed."""
    changed = False
    for t in targets:
        entry = blob["targets"].get(t.name)
        if entry is None:
            continue
        facts = _facts(source, t, spec)
        if any(getattr(entry["row"], k) != v for k, v in facts.items()):
            entry["row"] = dataclasses.replace(entry["row"], **facts)
            changed = True
    return changed


def _compute(plan: _Plan, source: _Model, spec: AttackSpec, k: int, targets: list[_Model], stored: dict | None,
             settings: Mapping[str, Any], images) -> dict[str, Any]:
    """Craft the source's examples at eps k batch by batch (as the sweep's per-eps path does) and put
    each batch through every target: one attack, one forward per target and batch."""
    t0 = time.perf_counter()
    src = _prepare(source, plan, images)
    prepared = [(t, _prepare(t, plan, images)) for t in targets]
    cfg = get_attack_cfg(spec.name)
    n = len(src.y)
    adv_pred = {t.name: torch.zeros(n, dtype=torch.long) for t in targets}
    norm = torch.zeros(n)
    for idx in batches(torch.arange(n), plan.batch_size):
        x_adv = attack_batch(src, spec, plan.grid, k, idx, plan.seed)
        norm[idx] = perturbation_norm(x_adv - src.x[idx.to(src.x.device)], cfg.norm).cpu()
        for t, p in prepared:
            adv_pred[t.name][idx] = predict(p.model, x_adv, plan.batch_size)
    max_perturbation = float(norm.max()) if n else 0.0
    eps, label = plan.grid.values[k], plan.grid.labels[k]
    if exceeds_budget(max_perturbation, eps):
        raise UserError(f"attack {spec.name} exceeded its budget at eps {label} on {source.name}: perturbation norm "
                        f"{max_perturbation:.6g} > {eps:.6g} ({cfg.norm.value}); its examples do not measure transfer")
    seconds = round(time.perf_counter() - t0, 4)
    y = src.y.cpu()
    entries = dict(stored["targets"]) if stored else {}
    for t, p in prepared:
        n_correct = int((adv_pred[t.name] == y).sum())
        lo, hi = wilson_interval(n_correct, n)
        row = TransferRow(
            source=source.name, source_sha256=source.ckpt.sha256, target=t.name, target_sha256=t.ckpt.sha256,
            **_facts(source, t, spec),
            dataset=source.ev.dataset, n=n, attack=spec.name, attack_params=spec.params_json, norm=cfg.norm.value,
            eps=eps, eps_label=label, n_correct=n_correct, accuracy=n_correct / n, ci_low=lo, ci_high=hi,
            clean_accuracy=int(p.clean_correct.sum()) / n, white_box=t.name == source.name, seed=plan.seed,
            version=__version__, seconds=seconds,
        )
        entries[t.name] = {"sha256": t.ckpt.sha256, "row": row, "clean_pred": p.clean_pred.tolist(),
                           "adv_pred": adv_pred[t.name].tolist()}
    return {"settings": dict(settings), "label": y.tolist(), "max_perturbation": max_perturbation, "targets": entries}


def _sorted(frame: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    keys = ["source", "target", "dataset", "n", "attack", "attack_params", "eps", *(extra or [])]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _write_results(store: TransferStore, out: Path) -> None:
    write_csv(_sorted(rows_frame(store.rows(), TRANSFER_COLUMNS)), out / TRANSFER_FILE)


__all__ = ["DEFAULT_OUT", "TRANSFER_CELLS_DIR", "TRANSFER_COLUMNS", "TRANSFER_EXAMPLES_FILE", "TRANSFER_EXAMPLE_COLUMNS",
           "TRANSFER_FILE", "TransferEvent", "TransferExampleRow", "TransferRow", "TransferStore",
           "read_transfer_csv", "read_transfer_examples_csv", "run_transfer"]
