"""Attacks whose engine is torchattacks (Kim, arXiv:2010.01950), one small builder each.

Common to all: images are N x C x H x W floats in pixel space [0, 1], labels N int64, the
model returns logits (normalisation is inside it). eps is in raw units (8/255 for Linf, e.g.
0.5 for L2). Step sizes are given as ``rel_stepsize``, a fraction of eps, so one default works
across a whole eps grid.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchattacks
from torch import nn

from .registry import AttackCfg, Norm, Perturb, register_attack

_TORCHATTACKS = "torchattacks 3.5 (Kim 2020, arXiv:2010.01950)"


@register_attack(AttackCfg(
    "fgsm", Norm.LINF, True,
    paper="Goodfellow, Shlens, Szegedy, Explaining and Harnessing Adversarial Examples, ICLR 2015",
    description="one signed-gradient step of size eps",
))
def fgsm(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.FGSM(model, eps=eps)


@register_attack(AttackCfg(
    "bim", Norm.LINF, True,
    paper="Kurakin, Goodfellow, Bengio, Adversarial Examples in the Physical World, ICLR-W 2017",
    defaults={"steps": 10, "rel_stepsize": 0.25},
    description="iterative FGSM from the clean image",
))
def bim(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.BIM(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"])


class _EarlyStopPGD(torchattacks.PGD):
    """torchattacks' PGD that stops stepping a point once the model misclassifies it, keeping the
    adversarial example it reached.

    Same random start (same RNG draws), step and projection as ``torchattacks.PGD``; the only
    change is that points already broken are not attacked further. That can only make the attack
    stronger (plain PGD returns its last iterate, which may have walked back to a correct
    prediction) and saves most of the gradient steps on points that break early.
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
            adv[active[still_correct]] = stepped[still_correct]
            active = active[still_correct]
            if not len(active):
                break
        return adv


@register_attack(AttackCfg(
    "pgd", Norm.LINF, True,
    paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    defaults={"steps": 10, "rel_stepsize": 0.25, "random_start": True, "early_stop": True},
    randomized=True,
    description="projected gradient descent with a uniform random start; early_stop keeps the first adversarial iterate",
))
def pgd(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    cls = _EarlyStopPGD if params["early_stop"] else torchattacks.PGD
    return cls(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"], random_start=params["random_start"])


@register_attack(AttackCfg(
    "pgd-l2", Norm.L2, True,
    paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    defaults={"steps": 10, "rel_stepsize": 0.2, "random_start": True},
    randomized=True,
    description="L2 projected gradient descent",
))
def pgd_l2(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.PGDL2(model, eps=eps, alpha=eps * params["rel_stepsize"], steps=params["steps"],
                              random_start=params["random_start"])


@register_attack(AttackCfg(
    "cw", Norm.L2, False,
    paper="Carlini, Wagner, Towards Evaluating the Robustness of Neural Networks, IEEE S&P 2017",
    defaults={"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01},
    description="minimal-perturbation L2 attack; reported as accuracy under an L2 budget",
))
def cw(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.CW(model, c=params["c"], kappa=params["kappa"], steps=params["steps"], lr=params["lr"])


@register_attack(AttackCfg(
    "deepfool", Norm.L2, False,
    paper="Moosavi-Dezfooli, Fawzi, Frossard, DeepFool, CVPR 2016",
    defaults={"steps": 50, "overshoot": 0.02},
    description="minimal-perturbation L2 attack; reported as accuracy under an L2 budget",
))
def deepfool(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.DeepFool(model, steps=params["steps"], overshoot=params["overshoot"])


def _apgd(loss: str):
    def build(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
        return torchattacks.APGD(model, norm="Linf", eps=eps, steps=params["steps"], n_restarts=params["restarts"],
                                 seed=seed, loss=loss)

    return build


_APGD_PAPER = "Croce, Hein, Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse Parameter-free Attacks, ICML 2020"
register_attack(AttackCfg("apgd-ce", Norm.LINF, True, _APGD_PAPER, {"steps": 100, "restarts": 1}, randomized=True,
                          description="auto-PGD on the cross-entropy loss"))(_apgd("ce"))
register_attack(AttackCfg("apgd-dlr", Norm.LINF, True, _APGD_PAPER, {"steps": 100, "restarts": 1}, randomized=True,
                          description="auto-PGD on the difference-of-logits-ratio loss"))(_apgd("dlr"))


@register_attack(AttackCfg(
    "autoattack", Norm.LINF, True, _APGD_PAPER, randomized=True,
    description="AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square)",
))
def autoattack(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=model.num_classes, seed=seed)


@register_attack(AttackCfg(
    "square", Norm.LINF, True,
    paper="Andriushchenko et al., Square Attack: a query-efficient black-box adversarial attack via random search, ECCV 2020",
    defaults={"n_queries": 5000, "restarts": 1, "p_init": 0.8},
    randomized=True,
    description="score-based black-box random search",
))
def square(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    return torchattacks.Square(model, norm="Linf", eps=eps, n_queries=params["n_queries"], n_restarts=params["restarts"],
                               p_init=params["p_init"], seed=seed)
