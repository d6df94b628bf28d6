r"""Minimal-perturbation attacks whose engine is foolbox 3 (Rauber et al., JOSS 2020): Carlini-Wagner
L2 with its search over the constant c, and DeepFool L2 as the paper defines it.

Same builder conventions as :mod:`robust_attn.attacks.torchattacks_`: images N x C x H x W in
pixel space [0, 1], labels N int64, ``perturb(images, labels) -> adv_images`` of the images' shape
in [0, 1]; stateless (each call builds a fresh attack), deterministic, untargeted. Both ignore eps:
they return the smallest adversarial example they find, and the sweep reads that at each budget
(a point is broken at eps when the perturbation's L2 norm is <= eps). Where an attack finds no
adversarial example, the point comes back unperturbed (the sweep records an attack failure).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .registry import AttackCfg, AttackKind, Norm, Perturb, register_attack

if TYPE_CHECKING:
    import foolbox

# foolbox (and eagerpy, scipy.ndimage) is imported when a foolbox attack is built, not with the
# registry: the CLI starts faster and commands that run no foolbox attack never load it.


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _fmodel(model: nn.Module) -> foolbox.PyTorchModel:
    import foolbox

    # device: the model's own (foolbox would pick cuda:0 when available and move the model there).
    return foolbox.PyTorchModel(model, bounds=(0, 1), device=_device_of(model))


def _adversarial_or_x(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      found: torch.Tensor | None = None) -> torch.Tensor:
    """``x_adv`` where it was ``found``, is finite and the model misclassifies it, ``x`` elsewhere."""
    finite = torch.isfinite(x_adv).flatten(1).all(1)
    x_adv = torch.where(finite.view(-1, *[1] * (x.ndim - 1)), x_adv, x)
    with torch.no_grad():
        keep = (model(x_adv).argmax(1) != y) & finite
    if found is not None:
        keep &= found
    return torch.where(keep.view(-1, *[1] * (x.ndim - 1)), x_adv, x)


@register_attack(AttackCfg(
    "cw", Norm.L2, False,
    paper="Carlini, Wagner, Towards Evaluating the Robustness of Neural Networks, IEEE S&P 2017",
    kind=AttackKind.MINIMAL_PERTURBATION, uses_gradient=True, ce_gradient=False, still_robust_fast_path=False,
    defaults={"binary_search_steps": 5, "steps": 100, "stepsize": 0.01, "confidence": 0.0, "initial_const": 0.01,
              "abort_early": True},
    description="minimal-perturbation L2 attack with a binary search over c (foolbox); reported as accuracy "
                "under an L2 budget",
))
def cw(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""Carlini-Wagner L2 in the paper 'Towards Evaluating the Robustness of Neural Networks' [arXiv:1608.04644].

    Distance measure: L2, minimal perturbation (eps is ignored; the sweep reads the result at each
    budget). Minimises ``||x' - x||_2^2 + c * max(0, z_y - max_{j != y} z_j + confidence)`` over
    x' = (tanh(w) + 1) / 2 (so x' stays in [0, 1]) with Adam, for each c of a search: c grows
    tenfold from ``initial_const`` until an adversarial example is found, then bisects between the
    largest failing and the smallest succeeding c. The smallest adversarial example seen over the
    whole search is kept. The loss is on logit margins, so a saturated softmax does not stop it.
    Engine: ``foolbox.attacks.L2CarliniWagnerAttack`` (foolbox 3.3).

    Arguments:
        binary_search_steps (int): values of c tried per point. (Default: 5)
        steps (int): Adam steps per value of c. (Default: 100)
        stepsize (float): Adam's step size, in tanh space. (Default: 0.01)
        confidence (float): logit margin required beyond the decision boundary (kappa). (Default: 0)
        initial_const (float): first value of c. (Default: 0.01)
        abort_early (bool): end a value of c's optimisation once the loss stops decreasing (checked
            every tenth of ``steps``). (Default: True)

    Returns: the smallest adversarial example found per point, or x itself where the search found
    none. Deterministic.
    """
    import foolbox

    attack = foolbox.attacks.L2CarliniWagnerAttack(
        binary_search_steps=params["binary_search_steps"], steps=params["steps"], stepsize=params["stepsize"],
        confidence=params["confidence"], initial_const=params["initial_const"], abort_early=params["abort_early"],
    )
    fmodel = _fmodel(model)

    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not len(x):
            return x.clone()
        raw, _, _ = attack(fmodel, x, y, epsilons=None)
        # foolbox leaves all-zero images where it found no adversarial example; a found one is
        # tanh-mapped and never exactly 0 in every pixel.
        found = raw.flatten(1).ne(0).any(1) | x.flatten(1).eq(0).all(1)
        return _adversarial_or_x(model, x, raw.detach(), y, found)

    return perturb


@register_attack(AttackCfg(
    "deepfool", Norm.L2, False,
    paper="Moosavi-Dezfooli, Fawzi, Frossard, DeepFool, CVPR 2016",
    kind=AttackKind.MINIMAL_PERTURBATION, uses_gradient=True, ce_gradient=False, still_robust_fast_path=False,
    defaults={"steps": 50, "overshoot": 0.02},
    description="minimal-perturbation L2 attack (foolbox); reported as accuracy under an L2 budget",
))
def deepfool(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""DeepFool in the paper 'DeepFool: a simple and accurate method to fool deep neural networks' [arXiv:1511.04599].

    Distance measure: L2, minimal perturbation (eps is ignored; the sweep reads the result at each
    budget). Each step linearises the logit differences z_k - z_y of every other class k (one
    backward pass per class, batched) and adds the step to the nearest linearised boundary to the
    total perturbation r; the iterate is ``clip_[0,1](x + (1 + overshoot) * r)``, as in the paper,
    so the overshoot carries the iterate across the boundary. A point stops once it is
    misclassified. Uses logit gradients, not the cross-entropy's, so a saturated softmax does not
    stop it. Engine: ``foolbox.attacks.L2DeepFoolAttack`` (foolbox 3.3, loss 'logits', all classes).

    torchattacks' DeepFool scales each step by 1 + overshoot instead of the total: its iterates
    approach the boundary geometrically without crossing it (measured on vgg_c10s, first 200
    images: 8 of 156 points never broken, 7 with 200 steps, 1 still with overshoot 0.2).

    Arguments:
        steps (int): maximum number of linearisation steps. (Default: 50)
        overshoot (float): the iterate is x + (1 + overshoot) * r. (Default: 0.02)

    Returns: the adversarial example found per point, or x itself for a point the attack did not
    misclassify within ``steps``. Deterministic.
    """
    import foolbox

    attack = foolbox.attacks.L2DeepFoolAttack(steps=params["steps"], overshoot=params["overshoot"], candidates=None,
                                              loss="logits")
    fmodel = _fmodel(model)

    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not len(x):
            return x.clone()
        raw, _, _ = attack(fmodel, x, y, epsilons=None)
        return _adversarial_or_x(model, x, raw.detach(), y)

    return perturb
