"""Random-noise baselines: the perturbation every real attack must beat at the same budget."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .registry import AttackCfg, AttackKind, Norm, Perturb, register_attack

_PAPER = "Carlini et al., On Evaluating Adversarial Robustness, arXiv:1902.06705 (random-noise baseline)"


@register_attack(AttackCfg("noise", Norm.LINF, True, _PAPER,
                           kind=AttackKind.NOISE, uses_gradient=False, ce_gradient=False,
                           still_robust_fast_path=False, randomized=True,
                           description="uniformly random sign noise of Linf norm eps"))
def noise(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""Random sign noise, the Linf baseline of 'On Evaluating Adversarial Robustness' [arXiv:1902.06705].

    Distance measure: Linf. ``x_adv = clip_[0,1](x + eps * s)`` with s uniformly random in
    {-1, +1} per pixel; does not query the model. Every attack should beat it at the same eps.

    Arguments:
        eps (float): Linf budget in pixel units, e.g. 8/255.
        (no parameters)

    Returns: the noisy images, drawn from the seeded generator in standard (NCHW) order. At eps 0, x.
    """
    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sign = torch.randint(0, 2, x.shape, device=x.device).to(x.dtype).mul_(2).sub_(1)
        return (x + eps * sign).clamp_(0, 1)

    return perturb


@register_attack(AttackCfg("noise-l2", Norm.L2, True, _PAPER,
                           kind=AttackKind.NOISE, uses_gradient=False, ce_gradient=False,
                           still_robust_fast_path=False, randomized=True,
                           description="a uniformly random direction of L2 norm eps"))
def noise_l2(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
    r"""Random L2 noise, the L2 baseline of 'On Evaluating Adversarial Robustness' [arXiv:1902.06705].

    Distance measure: L2. ``x_adv = clip_[0,1](x + eps * d / ||d||_2)`` with d standard normal
    (a uniformly random direction); does not query the model. Clipping to [0, 1] can only shorten
    the perturbation.

    Arguments:
        eps (float): L2 budget in pixel units, e.g. 0.5.
        (no parameters)

    Returns: the noisy images, drawn from the seeded generator in standard (NCHW) order whatever
    the memory layout of x. At eps 0, x.
    """
    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        direction = torch.randn(x.shape, dtype=x.dtype, device=x.device)
        direction /= direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x + eps * direction).clamp_(0, 1)

    return perturb
