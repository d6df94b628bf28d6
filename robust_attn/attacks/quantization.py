"""Adversarial images as a file would store them: rounded to 8 (PNG, JPEG's input) or 16 bits per channel.

An attack's output is a float image; saved as a PNG it is rounded to 256 levels, and a perturbation
that only worked between two levels is gone (foolbox's tracker has the reports: predictions change
when adversarial examples are saved and reloaded). A sweep with ``--quantize 8`` scores the rounded
images, so its accuracy is the accuracy a reader of the saved examples would measure.

Rounding to the nearest level can move a pixel up to half a level further from the clean image than
the attack did, out of the eps-ball. Where it does, the image's perturbation is rounded toward the clean
image instead (each pixel's offset shrinks or stays, so no norm grows): the budget still holds, and the
sweep measures the perturbation again after rounding.
"""
from __future__ import annotations

import torch

from ..budget import exceeds_budget
from .registry import Norm

BITS = (8, 16)


def quantize(x: torch.Tensor, x_adv: torch.Tensor, bits: int, eps: float | None, norm: Norm) -> torch.Tensor:
    """``x_adv`` on the grid of ``2**bits - 1`` levels per channel: nearest level, or toward the clean
    image ``x`` for every image whose rounded perturbation would exceed ``eps`` (None: no budget, as for
    minimal-perturbation attacks). Clean images read from 8-bit files lie on both grids (k/255 =
    257k/65535), so the rounded perturbation of such an image is a whole number of levels."""
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    levels = float(2 ** bits - 1)
    scaled, clean = x_adv.double() * levels, x.double() * levels
    nearest = torch.round(scaled)
    if eps is not None:
        toward = torch.round(clean) + torch.trunc(scaled - torch.round(clean))
        delta = (nearest - clean).div(levels).flatten(1)
        size = delta.abs().amax(1) if norm is Norm.LINF else delta.norm(dim=1)
        over = torch.tensor([exceeds_budget(float(s), eps) for s in size], device=x.device)
        nearest = torch.where(over.view(-1, *[1] * (x.ndim - 1)), toward, nearest)
    return nearest.clamp_(0, levels).div_(levels).to(x_adv.dtype)
