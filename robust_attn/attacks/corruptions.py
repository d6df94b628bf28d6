"""Common corruptions as threats of the sweep: every corruption of :mod:`robust_attn.corruptions` registered
beside the attacks, so ``--attack fog`` or ``--attack corruptions`` runs on the same grid, rows and reports.

A corruption's grid value is its severity (1-5; 0 is the clean images), not an eps: its entry says so
(``kind`` corruption, ``norm`` none, ``objective`` natural), and the sweep reads the grid as severities.
The images a corruption makes depend on the image, the severity and the seed only (never on the model
or the batch), so the sweep computes them once per evaluation set and caches them
(:mod:`robust_attn.corruptions.cache`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..corruptions import corrupt, get_corruption_cfg, list_corruptions
from .registry import AttackCfg, AttackKind, Norm, Objective, Perturb, register_attack

_PAPER = ("Hendrycks & Dietterich, Benchmarking Neural Network Robustness to Common Corruptions and Perturbations, "
          "ICLR 2019 (CIFAR-10-C parameters)")


def _builder(name: str):
    def build(model: nn.Module, eps: float, params: Mapping[str, Any], seed: int) -> Perturb:
        r"""A common corruption at severity ``eps`` (an integer 0-5; 0: the clean images).

        Does not query the model. ``perturb(x, y)`` returns ``x`` corrupted as CIFAR-10-C is, in [0, 1],
        from ``seed``: the same image, severity and seed give the same corrupted image.
        """
        if eps != int(eps) or not 0 <= eps <= 5:
            raise UserError(f"{name}: severity must be an integer from 1 to 5 (0: the clean images), got {eps!r}")
        severity = int(eps)

        def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return corrupt(name, x, severity, seed)

        return perturb

    return build


for _name in list_corruptions():
    _cfg = get_corruption_cfg(_name)
    register_attack(AttackCfg(
        _name, Norm.NONE, False, _PAPER, kind=AttackKind.CORRUPTION, uses_gradient=False, ce_gradient=False,
        still_robust_fast_path=False, randomized=_cfg.random, description=f"{_cfg.group} corruption: {_cfg.description}",
        objective=Objective.NATURAL, group=str(_cfg.group),
    ))(_builder(_name))
