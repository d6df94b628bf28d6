r"""Attacks whose engine is torchattacks (Kim, arXiv:2010.01950), one small builder each.

Common to all builders ``build(model, eps, params, seed) -> perturb``:

- ``perturb(images, labels) -> adv_images``: images N x C x H x W floats in pixel space [0, 1]
  (the model normalises inside), labels N int64 in [0, num_classes); the output has the shape of
  the images and lies in [0, 1].
- eps is in raw units (8/255 for Linf, e.g. 0.5 for L2). Step sizes are given as ``rel_stepsize``,
  a fraction of eps, so one default works across a whole eps grid.
- Builders are stateless: each call builds a fresh attack; randomness comes from the generator
  that :func:`~robust_attn.attacks.create_attack` seeds, and from ``seed`` where torchattacks
  takes one. Failures raise (:class:`~robust_attn.errors.UserError` for the user's mistakes).
- Untargeted: an attack succeeds on a point when the model's prediction differs from its label.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchattacks
from torch import nn

from ..errors import UserError
from .registry import AttackCfg, AttackKind, Norm, Perturb, register_attack

_TORCHATTACKS = "torchattacks 3.5 (Kim 2020, arXiv:2010.01950)"


@register_attack(AttackCfg(
    "fgsm", Norm.LINF, True,
    paper="Goodfellow, Shlens, Szegedy, Explaining and Harnessing Adversarial Examples, ICLR 2015",
    kind=AttackKind.SINGLE_STEP, uses_gradient=True, ce_gradient=True, still_robust_fast_path=False,
    description="one signed-gradient step of size eps",
))
def fgsm(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""FGSM in the paper 'Explaining and Harnessing Adversarial Examples' [arXiv:1412.6572].

    Distance measure: Linf. ``x_adv = clip_[0,1](x + eps * sign(grad_x CE(model(x), y)))``.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        (no parameters)

    Returns: the one-step adversarial images (torchattacks.FGSM), deterministic. At eps 0, x.
    """
    return torchattacks.FGSM(model, eps=eps)


@register_attack(AttackCfg(
    "bim", Norm.LINF, True,
    paper="Kurakin, Goodfellow, Bengio, Adversarial Examples in the Physical World, ICLR-W 2017",
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=True, still_robust_fast_path=True,
    defaults={"steps": 10, "rel_stepsize": 0.25},
    description="iterative FGSM from the clean image",
))
def bim(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""BIM (iterative FGSM) in the paper 'Adversarial Examples in the Physical World' [arXiv:1607.02533].

    Distance measure: Linf. Signed-gradient steps on the cross-entropy from the clean image, each
    followed by projection onto the eps-ball and [0, 1].

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): number of steps. (Default: 10)
        rel_stepsize (float): step size as a fraction of eps, alpha = rel_stepsize * eps. (Default: 0.25)

    Returns: the last iterate (torchattacks.BIM), deterministic. At eps 0, x.
    """
    return torchattacks.BIM(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"])


class _EarlyStopPGD(torchattacks.PGD):
    """torchattacks' PGD that stops stepping a point once the model misclassifies it, keeping the
    adversarial example it reached, or once its iterate no longer changes.

    Same random start (same RNG draws), step and projection as ``torchattacks.PGD``; the changes:

    - points already broken are not attacked further. That can only make the attack stronger
      (plain PGD returns its last iterate, which may have walked back to a correct prediction)
      and saves most of the gradient steps on points that break early;
    - a point whose step left its iterate unchanged is at a fixed point of the deterministic step
      (at eps 0 the projection returns x at once; a zero gradient does not move it), so every
      further step would return the same iterate: it is not stepped again. PGD at eps 0 costs one
      forward and backward pass.
    """

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        adv = images.clone()
        if self.random_start:
            adv = torch.clamp(adv + torch.empty_like(adv).uniform_(-self.eps, self.eps), min=0, max=1).detach()
        active = torch.arange(len(images), device=images.device)
        for _ in range(self.steps):
            x = adv[active].clone().requires_grad_(True)
            logits = self.get_logits(x)
            still_correct = logits.argmax(1) == labels[active]
            (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits, labels[active]), x)
            stepped = x.detach() + self.alpha * grad.sign()
            delta = torch.clamp(stepped - images[active], min=-self.eps, max=self.eps)
            stepped = torch.clamp(images[active] + delta, min=0, max=1)
            moved = (stepped != x.detach()).flatten(1).any(1)
            adv[active[still_correct]] = stepped[still_correct]
            active = active[still_correct & moved]
            if not len(active):
                break
        return adv


@register_attack(AttackCfg(
    "pgd", Norm.LINF, True,
    paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=True, still_robust_fast_path=True,
    defaults={"steps": 10, "rel_stepsize": 0.25, "random_start": True, "early_stop": True},
    randomized=True,
    description="projected gradient descent with a uniform random start; early_stop keeps the first adversarial iterate",
))
def pgd(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""PGD in the paper 'Towards Deep Learning Models Resistant to Adversarial Attacks' [arXiv:1706.06083].

    Distance measure: Linf. Signed-gradient ascent on the cross-entropy, projected onto the
    eps-ball and [0, 1] after every step, from a uniformly random start in the ball.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): number of steps. (Default: 10)
        rel_stepsize (float): step size as a fraction of eps, alpha = rel_stepsize * eps. (Default: 0.25)
        random_start (bool): start from x plus uniform noise in [-eps, eps]. (Default: True)
        early_stop (bool): stop stepping a point once it is misclassified (keeping that iterate)
            or once a step leaves it unchanged. False is exactly torchattacks.PGD. (Default: True)

    Returns: early_stop: the first misclassified iterate, else the last; without early_stop, the
    last iterate. Random start drawn from the seeded generator. At eps 0, x (in one step with early_stop).
    """
    cls = _EarlyStopPGD if params["early_stop"] else torchattacks.PGD
    return cls(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"], random_start=params["random_start"])


class _PGDL2(torchattacks.PGDL2):
    """torchattacks' PGDL2, the same draws and steps, with a projection that is defined when the
    perturbation is 0 (torchattacks divides eps by the perturbation's norm, 0/0 = NaN at eps 0 or
    when a zero gradient meets a zero start). Identical output wherever torchattacks' is finite."""

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        loss = nn.CrossEntropyLoss()
        adv_images = images.clone().detach()
        batch_size = len(images)
        if self.random_start:
            delta = torch.empty_like(adv_images).normal_()
            n = delta.reshape(batch_size, -1).norm(p=2, dim=1).view(batch_size, 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)
            delta *= r / n * self.eps
            adv_images = torch.clamp(adv_images + delta, min=0, max=1).detach()
        for _ in range(self.steps):
            adv_images.requires_grad = True
            cost = loss(self.get_logits(adv_images), labels)
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]
            grad_norms = torch.norm(grad.reshape(batch_size, -1), p=2, dim=1) + self.eps_for_division
            grad = grad / grad_norms.view(batch_size, 1, 1, 1)
            adv_images = adv_images.detach() + self.alpha * grad
            delta = adv_images - images
            delta_norms = torch.norm(delta.reshape(batch_size, -1), p=2, dim=1)
            # = min(eps / norm, 1) where the norm is > 0, and 1 (delta is 0) where it is 0.
            factor = torch.where(delta_norms > self.eps, self.eps / delta_norms, torch.ones_like(delta_norms))
            delta = delta * factor.view(-1, 1, 1, 1)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()
        return adv_images


_EOT = ("expectation over transformation (Athalye, Carlini, Wagner, Obfuscated Gradients Give a False Sense of "
        "Security, ICML 2018)")


@register_attack(AttackCfg(
    "eot-pgd", Norm.LINF, True,
    paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018, with " + _EOT,
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=True, still_robust_fast_path=False,
    defaults={"steps": 10, "rel_stepsize": 0.25, "eot_iter": 20, "random_start": True},
    randomized=True,
    description="PGD on the gradient averaged over eot_iter forward passes: for models whose forward is random",
))
def eot_pgd(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""PGD with expectation over transformation (EOT) [arXiv:1706.06083, arXiv:1802.00420].

    Distance measure: Linf. PGD whose every step follows the cross-entropy gradient averaged over
    ``eot_iter`` forward passes, so a model with a random forward (dropout left on, input noise, a
    stochastic defence) is attacked on its expected loss rather than on one random draw; plain PGD on
    such a model overstates its robustness. On a deterministic model it is PGD at ``eot_iter`` times
    the cost.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): number of steps. (Default: 10)
        rel_stepsize (float): step size as a fraction of eps, alpha = rel_stepsize * eps. (Default: 0.25)
        eot_iter (int): forward passes averaged per gradient. (Default: 20, AutoAttack's rand version)
        random_start (bool): start from x plus uniform noise in [-eps, eps]. (Default: True)

    Returns: the last iterate (torchattacks.EOTPGD). Random start drawn from the seeded generator. At eps 0, x.
    """
    return torchattacks.EOTPGD(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"],
                               eot_iter=params["eot_iter"], random_start=params["random_start"])


@register_attack(AttackCfg(
    "pgd-l2", Norm.L2, True,
    paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=True, still_robust_fast_path=False,
    defaults={"steps": 10, "rel_stepsize": 0.2, "random_start": True},
    randomized=True,
    description="L2 projected gradient descent",
))
def pgd_l2(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""L2 PGD in the paper 'Towards Deep Learning Models Resistant to Adversarial Attacks' [arXiv:1706.06083].

    Distance measure: L2. Steps along the L2-normalised cross-entropy gradient, projected onto the
    L2 eps-ball and [0, 1], from a random start inside the ball.

    Arguments:
        eps (float): L2 budget in pixel units, e.g. 0.5.
        steps (int): number of steps. (Default: 10)
        rel_stepsize (float): step size as a fraction of eps, alpha = rel_stepsize * eps. (Default: 0.2)
        random_start (bool): start from a random direction scaled by a uniform fraction of eps. (Default: True)

    Returns: the last iterate (torchattacks.PGDL2, with a projection that is defined at a zero
    perturbation). Random start drawn from the seeded generator. At eps 0, x.
    """
    return _PGDL2(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"],
                  random_start=params["random_start"])


_APGD_PAPER = ("Croce, Hein, Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse "
               "Parameter-free Attacks, ICML 2020")


def _apgd(loss: str):
    def build(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
        return torchattacks.APGD(model, norm="Linf", eps=eps, steps=params["steps"], n_restarts=params["restarts"],
                                 seed=seed, loss=loss, eot_iter=params["eot_iter"])

    build.__name__ = build.__qualname__ = f"apgd_{loss}"
    build.__doc__ = rf"""APGD-{loss.upper()} in the paper 'Reliable Evaluation of Adversarial Robustness with an
    Ensemble of Diverse Parameter-free Attacks' [arXiv:2003.01690].

    Distance measure: Linf. Auto-PGD: PGD with momentum and a step size halved whenever progress
    stalls (no step size to tune), on the {'cross-entropy loss' if loss == 'ce' else
    'difference-of-logits-ratio loss (invariant to shifting and scaling the logits, so a saturated softmax does not stop it)'},
    from a random start.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): iterations per restart. (Default: 100, the paper's)
        restarts (int): random restarts; the best is kept. (Default: 1)
        eot_iter (int): forward passes averaged per gradient, for models whose forward is random (expectation
            over transformation). (Default: 1)

    Returns: the best iterate found (torchattacks.APGD, loss={loss!r}), per point; x for a point
    clean-misclassified. Random start seeded from ``seed``. At eps 0, x.
    """
    return build


register_attack(AttackCfg(
    "apgd-ce", Norm.LINF, True, _APGD_PAPER,
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=True, still_robust_fast_path=False,
    defaults={"steps": 100, "restarts": 1, "eot_iter": 1}, randomized=True,
    description="auto-PGD on the cross-entropy loss",
))(_apgd("ce"))
register_attack(AttackCfg(
    "apgd-dlr", Norm.LINF, True, _APGD_PAPER,
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=False, still_robust_fast_path=False,
    defaults={"steps": 100, "restarts": 1, "eot_iter": 1}, randomized=True,
    description="auto-PGD on the difference-of-logits-ratio loss",
))(_apgd("dlr"))


@register_attack(AttackCfg(
    "autoattack", Norm.LINF, True, _APGD_PAPER,
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=False, still_robust_fast_path=False,
    defaults={"steps": 10, "n_queries": 5000},
    randomized=True,
    description="AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square)",
))
def autoattack(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""AutoAttack (standard version) in the paper 'Reliable Evaluation of Adversarial Robustness with
    an Ensemble of Diverse Parameter-free Attacks' [arXiv:2003.01690].

    Distance measure: Linf. Four attacks in turn, each on the points the previous ones left
    robust: APGD-CE, APGD-T (targeted DLR loss, every other class), FAB-T (targeted minimal
    perturbation) and Square (score-based, no gradient). The DLR, FAB and Square stages do not
    depend on the cross-entropy gradient's scale.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): iterations of each APGD, APGD-T and FAB run. (Default: 10, torchattacks'
            AutoAttack; the reference implementation uses 100)
        n_queries (int): queries of the Square stage. (Default: 5000)

    Returns: per point, the first stage's adversarial example that the model misclassifies, else
    the input. With the defaults this is exactly ``torchattacks.AutoAttack(version='standard')``.
    Stages seeded from ``seed``. At eps 0, x.
    """
    n_classes = getattr(model, "num_classes", None)
    if not isinstance(n_classes, int) or n_classes < 2:
        raise UserError("autoattack needs a classifier with an integer num_classes attribute >= 2")
    common: dict[str, Any] = {"norm": "Linf", "eps": eps, "seed": seed, "verbose": False, "n_restarts": 1}
    steps = params["steps"]
    return torchattacks.MultiAttack([
        torchattacks.APGD(model, loss="ce", steps=steps, **common),
        torchattacks.APGDT(model, n_classes=n_classes, steps=steps, **common),
        torchattacks.FAB(model, multi_targeted=True, n_classes=n_classes, steps=steps, **common),
        torchattacks.Square(model, n_queries=params["n_queries"], **common),
    ])


@register_attack(AttackCfg(
    "autoattack-rand", Norm.LINF, True, _APGD_PAPER + ", rand version, with " + _EOT,
    kind=AttackKind.ITERATIVE, uses_gradient=True, ce_gradient=False, still_robust_fast_path=False,
    defaults={"steps": 10, "eot_iter": 20},
    randomized=True,
    description="AutoAttack for randomised defences (APGD-CE, APGD-DLR, each with EOT)",
))
def autoattack_rand(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""AutoAttack, rand version, in the paper 'Reliable Evaluation of Adversarial Robustness with an
    Ensemble of Diverse Parameter-free Attacks' [arXiv:2003.01690]: the evaluation it prescribes for
    defences whose forward pass is random.

    Distance measure: Linf. APGD-CE, then APGD-DLR on the points it left robust, each following the
    gradient averaged over ``eot_iter`` forward passes (expectation over transformation).

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        steps (int): iterations of each APGD run. (Default: 10, torchattacks' AutoAttack)
        eot_iter (int): forward passes averaged per gradient. (Default: 20, the reference's)

    Returns: per point, the first stage's adversarial example that the model misclassifies, else the
    input. With the defaults this is exactly ``torchattacks.AutoAttack(version='rand')``. Stages
    seeded from ``seed``. At eps 0, x.
    """
    common: dict[str, Any] = {"norm": "Linf", "eps": eps, "seed": seed, "verbose": False, "n_restarts": 1,
                              "steps": params["steps"], "eot_iter": params["eot_iter"]}
    return torchattacks.MultiAttack([torchattacks.APGD(model, loss="ce", **common),
                                     torchattacks.APGD(model, loss="dlr", **common)])


@register_attack(AttackCfg(
    "square", Norm.LINF, True,
    paper="Andriushchenko et al., Square Attack: a query-efficient black-box adversarial attack via random search, ECCV 2020",
    kind=AttackKind.SCORE_BASED, uses_gradient=False, ce_gradient=False, still_robust_fast_path=False,
    defaults={"n_queries": 5000, "restarts": 1, "p_init": 0.8},
    randomized=True,
    description="score-based black-box random search",
))
def square(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""Square Attack in the paper 'Square Attack: a query-efficient black-box adversarial attack via
    random search' [arXiv:1912.00049].

    Distance measure: Linf. Random search over square-shaped updates at the vertices of the
    eps-ball, accepting an update when the margin loss on the model's scores decreases; uses no
    gradient.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        n_queries (int): model queries per point and restart. (Default: 5000)
        restarts (int): random restarts. (Default: 1)
        p_init (float): initial fraction of pixels a square covers, in (0, 1]. (Default: 0.8)

    Returns: the best point found (torchattacks.Square), x for a point clean-misclassified.
    Seeded from ``seed``. At eps 0, x.
    """
    return torchattacks.Square(model, norm="Linf", eps=eps, n_queries=params["n_queries"], n_restarts=params["restarts"],
                               p_init=params["p_init"], seed=seed)
