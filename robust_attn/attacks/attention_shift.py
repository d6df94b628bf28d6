r"""The ``attention-shift`` attack: move the attention maps, not the label.

Ghorbani, Abid, Zou, 'Interpretation of Neural Networks is Fragile', AAAI 2019 [arXiv:1710.10547]
show that saliency maps can be moved far by perturbations that leave the prediction alone. This
attack asks the same of the maps the paper sells as an explanation (Jetley et al.'s attention): how
far can they be moved inside the Linf eps-ball while the label holds?

The measure is the one the report already uses (``robust_attn.report.attention._js``): each
attended layer's map is a distribution over its spatial positions (normalised to sum 1, as scipy's
``jensenshannon`` does), two maps are compared by their Jensen-Shannon *distance* with log base 2
(the square root of the divergence, in [0, 1]), and an image's shift is the mean of that distance
over the attended layers. :func:`attention_shift` computes it per example (float64, on CPU), and
:func:`attention_shift_per_layer` per example and layer.

Reaching the maps. The attack receives the model the way the sweep hands it over: wrapped in
:class:`~robust_attn.attacks.layout.StandardLayout` by :func:`~robust_attn.attacks.create_attack`,
possibly around the sweep's bf16 autocast wrapper, around a (possibly channels_last)
:class:`~robust_attn.models.wrapper.ModelWrapper`. :func:`attention_model` follows ``.model``
(those wrappers) and ``.module`` (DataParallel / DDP) down to the first module with a
``forward_with_attention`` method whose ``cfg.has_attention`` is true; a model without spatial
attention maps (the baseline VGG, or anything with no ``forward_with_attention``) is refused with a
one-line :class:`~robust_attn.errors.UserError`. The maps (and their gradient) come from that
module in float32, fed in the layout of its weights; the label decisions use the model as received,
the very model the sweep re-predicts with (so under autocast they are the autocast predictions).

What a sweep should record (per cell = model, attack, eps), beside the usual accuracy:

* per example: ``attention_shift(model, x, x_adv)`` (the example's mean JS distance over the
  attended layers; 0 for the unperturbed input), plus whether the label was kept
  (``adv_pred == clean_pred``);
* per cell: the mean shift over the evaluated points and over the clean-correct points, and the
  share of clean-correct points whose label was kept (1 by construction with ``keep_label=true``);
* for the report's per-layer plot: ``attention_shift_per_layer`` (N x attended layers), averaged.

Run it per eps (``still_robust_fast_path`` is False: its goal is not misclassification, so "carry
the points broken at the previous eps" does not apply); a sweep over eps then gives "how far can the
maps be moved at eps while the label holds". The same recording under ``pgd`` gives the comparison.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .layout import _ToLayout, model_memory_format
from .registry import AttackCfg, AttackKind, Norm, Objective, Perturb, eval_mode, register_attack

NAME = "attention-shift"
_PAPER = ("Ghorbani, Abid, Zou, Interpretation of Neural Networks is Fragile, AAAI 2019 (arXiv:1710.10547); "
          "attention maps of Jetley et al., Learn To Pay Attention, ICLR 2018")


def attention_model(model: nn.Module, name: str | None = None) -> nn.Module:
    """The module under ``model``'s wrappers that returns spatial attention maps.

    Follows ``.model`` (StandardLayout, the sweep's autocast wrapper) and ``.module`` (DataParallel,
    DDP) to the first module with a callable ``forward_with_attention`` and ``cfg.has_attention``.
    Otherwise a one-line :class:`UserError` naming the model (``name`` if given, e.g. the checkpoint's,
    else its architecture).
    """
    seen: set[int] = set()
    current: Any = model
    while isinstance(current, nn.Module) and id(current) not in seen:
        seen.add(id(current))
        if callable(getattr(current, "forward_with_attention", None)):
            break
        inner = getattr(current, "model", None)
        current = inner if inner is not None else getattr(current, "module", None)
    found = current if isinstance(current, nn.Module) and callable(getattr(current, "forward_with_attention", None)) \
        else None
    cfg = getattr(found, "cfg", None)
    if found is None or not bool(getattr(cfg, "has_attention", False)):
        label = name or getattr(cfg, "name", None) or type(model).__name__
        raise UserError(f"{NAME} needs a model with spatial attention maps; {label} has none")
    return found


def _maps(net: nn.Module, x: torch.Tensor, name: str | None = None) -> list[torch.Tensor]:
    """Each attended layer's map, N x positions (as returned, not yet normalised)."""
    x = _ToLayout.apply(x, model_memory_format(net)) if x.ndim == 4 else x
    maps = net.forward_with_attention(x).attention_maps
    if not len(maps):
        label = name or getattr(getattr(net, "cfg", None), "name", None) or type(net).__name__
        raise UserError(f"{NAME} needs a model with spatial attention maps; {label} returned none")
    return [a.float().flatten(1) for a in maps]


def _js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence, base 2 (in [0, 1]), between the rows of ``p`` and ``q`` (N x K,
    non-negative), each normalised to sum 1."""
    p = p / p.sum(1, keepdim=True)
    q = q / q.sum(1, keepdim=True)
    m = 0.5 * (p + q)
    tiny = torch.finfo(p.dtype).tiny
    log_m = torch.log(m.clamp_min(tiny))

    def rel_entr(a: torch.Tensor) -> torch.Tensor:  # a log(a / m), 0 where a = 0 (finite gradients everywhere)
        return torch.where(a > 0, a * (torch.log(a.clamp_min(tiny)) - log_m), torch.zeros_like(a)).sum(1)

    return (0.5 * (rel_entr(p) + rel_entr(q)) / math.log(2)).clamp_min(0)


def _js_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon distance, base 2 (in [0, 1]): scipy's ``jensenshannon(p, q, base=2)`` row by row."""
    return torch.sqrt(_js_divergence(p, q))


@torch.no_grad()
def attention_shift_per_layer(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                              name: str | None = None) -> torch.Tensor:
    """Per example and attended layer (N x L, float64, CPU): the JS distance (base 2) between the
    attention map on ``x_adv`` and the one on ``x``, as the report's ``_js`` measures it.

    ``model`` may be wrapped (see :func:`attention_model`); it is run in eval mode and left in its
    previous mode. A model without spatial attention maps is a one-line :class:`UserError`.
    """
    if x.shape != x_adv.shape:
        raise UserError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}")
    net = attention_model(model, name)
    with eval_mode(net):
        clean, adv = _maps(net, x, name), _maps(net, x_adv, name)
    return torch.stack([_js_distance(c.double().cpu(), a.double().cpu()) for c, a in zip(clean, adv)], dim=1)


def attention_shift(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """Per example (N, float64, CPU): the mean over attended layers of the JS distance (base 2) between
    the attention maps on ``x_adv`` and on ``x``; 0 where ``x_adv`` is ``x``. What a sweep records
    for ``attention-shift`` (and, for comparison, for any other attack) beside accuracy."""
    return attention_shift_per_layer(model, x, x_adv, name).mean(1)


@register_attack(AttackCfg(
    NAME, Norm.LINF, True, _PAPER,
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=False, still_robust_fast_path=False,
    defaults={"steps": 10, "rel_stepsize": 0.25, "random_start": True, "keep_label": True},
    randomized=True, objective=Objective.ATTENTION,
    description="moves the attention maps (JS distance to the clean maps) within eps; keep_label keeps the prediction",
))
def attention_shift_attack(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""Attention-shift attack, after the iterative attack of 'Interpretation of Neural Networks is
    Fragile' (Ghorbani et al., AAAI 2019, arXiv:1710.10547, Algorithm 1), on attention maps.

    Distance measure: Linf. Signed-gradient ascent, like ``pgd``, on the objective
    ``mean over attended layers of JS(maps(x_adv) || maps(x))`` (Jensen-Shannon distance, base 2,
    maps as distributions over positions: the report's measure), each step projected onto the
    eps-ball around x and onto [0, 1]. The clean maps are fixed (computed once, no gradient).

    ``keep_label`` (Ghorbani et al.'s choice): the steps are not constrained; instead every iterate
    (the random start and the result of each step) is checked, and per example the attack returns
    the iterate of largest shift among those whose prediction equals the clean prediction, the
    clean input (shift 0) counting as one. So the label is kept by construction, the output is
    never worse than x, and no penalty weight has to be tuned. Predictions are those of the model
    as received (what the sweep re-predicts with). With ``keep_label=false`` the same trajectory
    is walked and the iterate of largest shift is returned whatever its prediction: for the same
    seed its shift is per example at least that of ``keep_label=true``.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): number of steps. (Default: 10)
        rel_stepsize (float): step size as a fraction of eps, alpha = rel_stepsize * eps. (Default: 0.25)
        random_start (bool): start from x plus uniform noise in [-eps, eps], drawn from a
            ``torch.Generator`` seeded with ``seed`` (the global RNG is not used). Without it the
            walk starts at x, the objective's minimum, where its gradient is zero: an example
            whose shift is exactly 0 is not stepped, so the attack returns x. (Default: True)
        keep_label (bool): return, per example, the best iterate that keeps the clean prediction
            (see above); false: the best iterate. (Default: True)

    Returns: images within eps (Linf) of x and in [0, 1]. Deterministic given ``seed``. At eps 0,
    x. Raises a one-line UserError for a model without spatial attention maps.
    """
    net = attention_model(model)
    alpha = eps * params["rel_stepsize"]
    steps, random_start, keep_label = params["steps"], params["random_start"], params["keep_label"]

    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        if eps == 0 or not len(x):
            return x.clone()
        with torch.no_grad():
            clean_maps = _maps(net, x)
            clean_pred = model(x).argmax(1)
        adv = x.clone()
        if random_start:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(seed)
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            adv = (x + (2 * noise - 1) * eps).clamp_(0, 1)
        best, best_shift = x.clone(), torch.zeros(len(x), device=x.device)
        for t in range(steps + 1):
            last = t == steps
            current = adv.clone().requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                divergence = torch.stack([_js_divergence(a, c) for a, c in zip(_maps(net, current), clean_maps)], 1)
                shift = torch.sqrt(divergence + 1e-20).mean(1)  # the JS distance; the floor keeps sqrt's gradient finite
            with torch.no_grad():
                allowed = model(adv).argmax(1) == clean_pred if keep_label else torch.ones_like(clean_pred, dtype=torch.bool)
                better = allowed & (shift.detach() > best_shift)
                best[better] = adv[better]
                best_shift[better] = shift.detach()[better]
            if last:
                break
            (grad,) = torch.autograd.grad(shift.sum(), current)
            moving = (divergence.detach().sum(1) > 0).view(-1, *[1] * (x.ndim - 1))  # at x the gradient is 0
            step = torch.where(moving, alpha * grad.sign(), torch.zeros_like(grad))
            adv = torch.clamp(x + torch.clamp(adv + step - x, -eps, eps), 0, 1).detach()
        return best

    return perturb
