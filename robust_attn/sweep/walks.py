"""One model under one attack, walked over the eps grid: the per-eps numbers, the worst-case
envelope, and the fast paths that are allowed to compute them.

Definitions (the quantities every row reports):

* **per-eps accuracy**: the attack run at that eps alone on every evaluation point, then the model's
  prediction on its output compared with the label, as torchattacks, foolbox and the paper report it.
* **worst case** (envelope): a point counts as robust at eps only if it is classified correctly clean
  and under this attack at every eps' <= eps of the grid. It never increases with eps.

Ways of computing the per-eps number (:class:`~robust_attn.results.AccuracyMethod`):

* ``per-eps``: every point is attacked at every eps. FGSM takes the input gradient once per point
  (the clean pass shares its forward) and reads every eps from it with one forward each.
* ``still-robust``: only points robust at the previous eps are attacked; a point broken there keeps
  its adversarial example (it lies in every larger ball). The number is then the envelope; attacks
  declare whether this is allowed (``AttackCfg.still_robust_fast_path``), which a test on the shipped
  checkpoints backs (within 0.5 points of attacking every point).
* ``minimal``: a minimal-perturbation attack (CW, DeepFool) runs once; a point is broken at eps when
  the attack made it adversarial with a perturbation norm <= eps.

A common corruption (:func:`walk_corruption`) is walked over severities instead: every point at every
severity (``per-eps``), on images that depend on the image, the severity and the seed only.

Every attacked example is checked: its pixels must be finite and in [0, 1], and for eps-bounded
attacks its perturbation norm is reported (``max_perturbation``) so the budget can be enforced.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..attacks import EpsGrid, Norm, Objective, create_attack, eval_mode, get_attack_cfg, seeded
from ..attacks.attention_shift import attention_shift
from ..attacks.quantization import quantize
from ..distributed import Ranks
from ..errors import UserError
from ..results import AccuracyMethod
from ..run.admission import dead_gradients
from ..run.inputs import AttackSpec
from .panels import Panel, PanelSpec


@dataclass(frozen=True)
class Prepared:
    """A model ready for every attack of a sweep: its evaluation data on the device, the clean pass,
    and (when a gradient attack runs) the clean input gradient's sign and the gradient diagnostic."""

    model: nn.Module
    attention_model: nn.Module | None  # exposes forward_with_attention (panels); None: no attention maps
    x: torch.Tensor
    y: torch.Tensor
    clean_pred: torch.Tensor  # on CPU
    gradient_sign: torch.Tensor | None
    zero_gradient_fraction: float
    batch_size: int
    ranks: Ranks
    panel: PanelSpec | None

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.clean_pred == self.y.cpu()


@dataclass(frozen=True)
class Cell:
    """Per-example state of one (model, attack) after one eps (all tensors on CPU, length n)."""

    adv_pred: torch.Tensor  # prediction on the attack's output (the clean prediction where not attacked)
    norm: torch.Tensor  # perturbation norm of that output
    robust: torch.Tensor  # per-eps: adv_pred == label (and, for minimal attacks, correct clean)
    worst_case: torch.Tensor  # robust at every eps' <= eps tried, and clean
    failed: torch.Tensor  # minimal attacks: no adversarial example found at all
    max_perturbation: float
    method: AccuracyMethod
    panel: Panel | None = None
    shift: torch.Tensor | None = None  # attention attacks: per-example attention shift (float64); None otherwise


def batches(todo: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The attacked points cut into batches: identical in every process, so results do not depend
    on how many processes share the work."""
    return [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]


def batch_seed(seed: int, eps_index: int, first_example: int) -> int:
    """Seed for one attacked batch: depends on the sweep seed, the eps and the batch's first example."""
    digest = hashlib.sha256(f"{seed}:{eps_index}:{first_example}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def perturbation_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per example: the L2 norm for L2 attacks, else the Linf norm (a corruption's largest pixel change)."""
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm is Norm.L2 else flat.abs().amax(1)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Argmax predictions in eval mode (the model's mode is restored), on CPU."""
    with eval_mode(model):
        return torch.cat([model(x[s:s + batch_size]).argmax(1) for s in range(0, len(x), batch_size)]).cpu()


def prepare(model: nn.Module, attention_model: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
            batch_size: int, ranks: Ranks, gradient: bool, panel: PanelSpec | None) -> Prepared:
    """The clean pass. With ``gradient`` it is a forward+backward over every point that gives the
    clean predictions, the input gradient's sign (FGSM reads every eps from it, exactly as
    torchattacks' FGSM computes it per batch) and the share of clean-correct points whose gradient is
    exactly zero or non-finite: the masking symptom of a saturated softmax or a non-differentiable
    layer, visible without running any further attack."""
    if not gradient:
        pred = predict(model, x, batch_size)
        return Prepared(model, attention_model, x, y, pred, None, float("nan"), batch_size, ranks, panel)
    pred = torch.zeros(len(y), dtype=torch.long)
    dead = torch.zeros(len(y))  # float 0/1: all_reduce does not take bool tensors everywhere
    sign = torch.zeros_like(x)
    touched = torch.zeros(len(y), dtype=torch.bool)
    with eval_mode(model):
        for idx in ranks.pick(batches(torch.arange(len(y)), batch_size)):
            xb = x[idx].clone().requires_grad_(True)
            logits = model(xb)
            (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits, y[idx]), xb)
            pred[idx] = logits.detach().argmax(1).cpu()
            dead[idx] = dead_gradients(grad).float().cpu()
            sign[idx.to(x.device)] = grad.sign()
            touched[idx] = True
    pred, dead, sign = ranks.merge(pred, touched), ranks.merge(dead, touched), ranks.merge(sign, touched)
    correct = pred == y.cpu()
    fraction = float(dead[correct].mean()) if correct.any() else 0.0
    return Prepared(model, attention_model, x, y, pred, sign, fraction, batch_size, ranks, panel)


def _checked(x_adv: torch.Tensor, name: str, label: str) -> torch.Tensor:
    """An attack's output must be finite pixels in [0, 1]; anything else is a broken attack."""
    if not bool(torch.isfinite(x_adv).all()) or float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise UserError(f"attack {name} at eps {label} returned images that are not finite pixels in [0, 1]")
    return x_adv


def _failures_as_clean(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A minimal-perturbation attack that divides by a zero gradient (DeepFool on a masked model)
    returns non-finite images for those points: it found no adversarial example there, so they are
    recorded as attack failures (the clean image, not adversarial) rather than ending the sweep."""
    bad = ~torch.isfinite(x_adv.flatten(1)).all(1)
    if not bool(bad.any()):
        return x_adv
    return torch.where(bad.view(-1, *[1] * (x.ndim - 1)), x, x_adv)


def _clean_cell(p: Prepared, method: AccuracyMethod) -> Cell:
    """The state before any eps: every point as the clean pass saw it."""
    correct = p.clean_correct
    n = len(correct)
    panel = None if p.panel is None else p.panel.clean_panel(p.attention_model, p.x, p.clean_pred)
    return Cell(p.clean_pred.clone(), torch.zeros(n), correct.clone(), correct.clone(), torch.zeros(n, dtype=torch.bool),
                0.0, method, panel)


def attack_batch(p: Prepared, spec: AttackSpec, grid: EpsGrid, k: int, idx: torch.Tensor, seed: int) -> torch.Tensor:
    """An eps-bounded attack's output on one batch (``idx``, CPU indices) at eps ``grid.values[k]``,
    checked: FGSM reads the clean pass's gradient sign; any other attack is built for this batch
    with the seed of the batch's first example and the eps' index (:func:`batch_seed`). The per-eps
    path of :func:`walk_bounded` and the transfer attacks (:mod:`robust_attn.transfer`) both craft
    with it, so their examples are the same tensors."""
    eps, dev_idx = grid.values[k], idx.to(p.x.device)
    if spec.name == "fgsm" and p.gradient_sign is not None:
        x_adv = (p.x[dev_idx] + eps * p.gradient_sign[dev_idx]).clamp_(0, 1)
    else:
        attack = create_attack(spec.name, p.model, eps, seed=batch_seed(seed, k, int(idx[0])), **spec.params)
        x_adv = attack(p.x[dev_idx], p.y[dev_idx])
    x_adv = _checked(x_adv, spec.name, grid.labels[k])
    if spec.quantize:  # scored as a file would store it; the budget holds and is measured again after rounding
        x_adv = quantize(p.x[dev_idx], x_adv, spec.quantize, eps, get_attack_cfg(spec.name).norm)
    return x_adv


def walk_bounded(p: Prepared, spec: AttackSpec, grid: EpsGrid, start: int, previous: Cell | None, seed: int,
                 fast_path: bool = True) -> Iterator[tuple[int, Cell]]:
    """Run an eps-bounded attack at each eps from ``start`` on; yield (eps index, cell).

    ``previous`` is the cell at ``start - 1`` (None at the start of the grid): the envelope and, on
    the still-robust path, the points still to attack and the examples carried, continue from it.
    """
    cfg = get_attack_cfg(spec.name)
    method = AccuracyMethod.STILL_ROBUST if fast_path and cfg.still_robust_fast_path else AccuracyMethod.PER_EPS
    state = previous if previous is not None else _clean_cell(p, method)
    y_cpu = p.y.cpu()
    for k in range(start, len(grid)):
        carry = method is AccuracyMethod.STILL_ROBUST and (k > 0 or previous is not None)
        todo = state.robust.nonzero().flatten() if carry else torch.arange(len(y_cpu))
        adv_pred = state.adv_pred.clone() if carry else p.clean_pred.clone()
        norm = state.norm.clone() if carry else torch.zeros(len(y_cpu))
        panel = None if state.panel is None else state.panel.copy()
        touched = torch.zeros(len(y_cpu), dtype=torch.bool)
        # attention attacks record how far they moved the maps (the per-eps path attacks every point)
        shift = torch.zeros(len(y_cpu), dtype=torch.float64) if cfg.objective is Objective.ATTENTION else None
        for idx in p.ranks.pick(batches(todo, p.batch_size)):
            dev_idx = idx.to(p.x.device)
            x_adv = attack_batch(p, spec, grid, k, idx, seed)
            with seeded(batch_seed(seed, k, int(idx[0])) ^ 1, p.x.device):  # a random model scores reproducibly
                adv_pred[idx] = predict(p.model, x_adv, p.batch_size)
            norm[idx] = perturbation_norm(x_adv - p.x[dev_idx], cfg.norm).cpu()
            if shift is not None:
                shift[idx] = attention_shift(p.model, p.x[dev_idx], x_adv)
            touched[idx] = True
            if panel is not None:
                panel.update(p.attention_model, idx, x_adv)
        adv_pred, norm = p.ranks.merge(adv_pred, touched), p.ranks.merge(norm, touched)
        shift = None if shift is None else p.ranks.merge(shift, touched)
        if panel is not None:
            panel = panel.merged(p.ranks)
            panel.pred = adv_pred[:len(panel.pred)].clone()
        robust = adv_pred == y_cpu
        attacked = torch.zeros(len(y_cpu), dtype=torch.bool)
        attacked[todo] = True  # the same on every rank
        state = Cell(adv_pred, norm, robust, state.worst_case & robust, torch.zeros(len(y_cpu), dtype=torch.bool),
                     float(norm[attacked].max()) if attacked.any() else 0.0, method, panel, shift)
        yield k, state


def walk_minimal(p: Prepared, spec: AttackSpec, grid: EpsGrid, start: int, seed: int) -> Iterator[tuple[int, Cell]]:
    """Run a minimal-perturbation attack once on every point; read it at each budget from ``start`` on.

    A point is broken at eps when the attack's output is misclassified with a norm <= eps; a point
    misclassified clean is broken at every eps (the clean input lies in every ball). A clean-correct
    point the attack could not make adversarial at all is an attack failure: robust at every budget
    by this attack's account, and flagged as such.
    """
    cfg = get_attack_cfg(spec.name)
    y_cpu = p.y.cpu()
    pred = p.clean_pred.clone()
    norm = torch.zeros(len(y_cpu))
    touched = torch.zeros(len(y_cpu), dtype=torch.bool)
    for idx in p.ranks.pick(batches(torch.arange(len(y_cpu)), p.batch_size)):
        dev_idx = idx.to(p.x.device)
        attack = create_attack(spec.name, p.model, 0.0, seed=batch_seed(seed, 0, int(idx[0])), **spec.params)
        x_adv = _checked(_failures_as_clean(attack(p.x[dev_idx], p.y[dev_idx]), p.x[dev_idx]), spec.name, "any")
        if spec.quantize:  # no budget to keep: the norm is read after rounding
            x_adv = quantize(p.x[dev_idx], x_adv, spec.quantize, None, cfg.norm)
        with seeded(batch_seed(seed, 0, int(idx[0])) ^ 1, p.x.device):
            pred[idx] = predict(p.model, x_adv, p.batch_size)
        norm[idx] = perturbation_norm(x_adv - p.x[dev_idx], cfg.norm).cpu()
        touched[idx] = True
    pred, norm = p.ranks.merge(pred, touched), p.ranks.merge(norm, touched)
    correct = p.clean_correct
    success = pred != y_cpu
    failed = correct & ~success
    for k in range(start, len(grid)):
        broken = success & (norm <= grid.values[k])
        robust = correct & ~broken
        shown = torch.where(broken | ~correct, pred, p.clean_pred)
        yield k, Cell(shown, norm.clone(), robust, robust.clone(), failed.clone(),
                      float(norm[broken & correct].max()) if (broken & correct).any() else 0.0, AccuracyMethod.MINIMAL)


def walk_corruption(p: Prepared, grid: EpsGrid, start: int, previous: Cell | None, seed: int,
                    corrupted: Callable[[int], torch.Tensor]) -> Iterator[tuple[int, Cell]]:
    """A common corruption at each severity of the grid from ``start`` on; yield (severity index, cell).

    ``corrupted(k)`` gives the whole evaluation set corrupted at ``grid.values[k]`` (on the device, in the
    layout of ``p.x``): the corruption does not look at the model, so one set serves every model. Every
    point is scored at every severity; the worst case is robust at every severity <= s of the grid (and
    clean), continued from ``previous``. ``norm`` records each image's largest pixel change (Linf)."""
    state = previous if previous is not None else _clean_cell(p, AccuracyMethod.PER_EPS)
    y_cpu = p.y.cpu()
    for k in range(start, len(grid)):
        if grid.values[k] == 0:  # severity 0 is the clean images: the clean pass scored them
            state = Cell(p.clean_pred.clone(), torch.zeros(len(y_cpu)), p.clean_correct.clone(),
                         state.worst_case & p.clean_correct, torch.zeros(len(y_cpu), dtype=torch.bool), 0.0,
                         AccuracyMethod.PER_EPS)
            yield k, state
            continue
        x_c = corrupted(k)
        pred = torch.zeros(len(y_cpu), dtype=torch.long)
        norm = torch.zeros(len(y_cpu))
        touched = torch.zeros(len(y_cpu), dtype=torch.bool)
        for idx in p.ranks.pick(batches(torch.arange(len(y_cpu)), p.batch_size)):
            dev_idx = idx.to(p.x.device)
            with seeded(batch_seed(seed, k, int(idx[0])) ^ 1, p.x.device):  # a random model scores reproducibly
                pred[idx] = predict(p.model, x_c[dev_idx], p.batch_size)
            norm[idx] = perturbation_norm(x_c[dev_idx] - p.x[dev_idx], Norm.LINF).cpu()
            touched[idx] = True
        pred, norm = p.ranks.merge(pred, touched), p.ranks.merge(norm, touched)
        robust = pred == y_cpu
        state = Cell(pred, norm, robust, state.worst_case & robust, torch.zeros(len(y_cpu), dtype=torch.bool),
                     float(norm.max()) if len(norm) else 0.0, AccuracyMethod.PER_EPS)
        yield k, state


__all__ = ["Cell", "Prepared", "attack_batch", "batch_seed", "batches", "perturbation_norm",
           "predict", "prepare", "walk_bounded", "walk_corruption", "walk_minimal"]
