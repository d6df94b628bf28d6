"""Random-noise baselines: the perturbation every real attack must beat at the same budget."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .registry import AttackCfg, Norm, Perturb, register_attack

_PAPER = "Carlini et al., On Evaluating Adversarial Robustness, arXiv:1902.06705 (random-noise baseline)"


@register_attack(AttackCfg("noise", Norm.LINF, True, _PAPER, randomized=True,
                           description="uniformly random sign noise of Linf norm eps"))
def noise(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sign = torch.randint(0, 2, x.shape, device=x.device).to(x.dtype).mul_(2).sub_(1)
        return (x + eps * sign).clamp_(0, 1)

    return perturb


@register_attack(AttackCfg("noise-l2", Norm.L2, True, _PAPER, randomized=True,
                           description="a uniformly random direction of L2 norm eps"))
def noise_l2(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        direction = torch.randn_like(x)
        direction /= direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x + eps * direction).clamp_(0, 1)

    return perturb
