"""The attention modules most CNNs carry, from timm: squeeze-and-excitation and CBAM.

* SE (Hu et al., CVPR 2018; ``timm.layers.SEModule``): x * sigmoid(W2 ReLU(W1 avgpool(x))), one
  gate per channel; no spatial map.
* CBAM (Woo et al., ECCV 2018; ``timm.layers.CbamModule``): the channel gate (average- and
  max-pooled descriptors through a shared MLP), then a spatial gate sigmoid(BN(conv7x7([mean_c x,
  max_c x]))) in [0, 1] per position.

timm's modules are used as they are; the one thing they lack is handing out the spatial gate, so
:class:`GateBlock` records the output (and input, the raw scores) of CBAM's final sigmoid with a
forward hook registered for the duration of one call (no state is kept between calls, and copies
of the model behave alike).

Both use reduction ratio 16 with the hidden width rounded to a multiple of 8 (at least 8; timm's SE
default), so at our small widths SE and CBAM have the same hidden width and differ only by CBAM's
max-pooled branch and its spatial gate.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .config import Gate

REDUCTION = 1.0 / 16
DIVISOR = 8


class Gated(NamedTuple):
    features: torch.Tensor  # the gated features, same shape as the input
    gate_map: torch.Tensor | None  # CBAM's spatial gate, N x 1 x H x W in [0, 1]; None for SE
    scores: torch.Tensor | None  # CBAM's spatial scores before the sigmoid, N x 1 x H x W; None for SE


class GateBlock(nn.Module):
    """timm's SE or CBAM module on ``channels`` features, returning its spatial gate too."""

    def __init__(self, kind: Gate | str, channels: int):
        super().__init__()
        self.kind = Gate(kind)
        # imported here: importing timm takes 2 s, which every command would pay for the registry alone
        from timm.layers.cbam import CbamModule
        from timm.layers.squeeze_excite import SEModule

        if self.kind is Gate.SE:
            self.module: nn.Module = SEModule(channels, rd_ratio=REDUCTION, rd_divisor=DIVISOR)
        else:
            self.module = CbamModule(channels, rd_ratio=REDUCTION, rd_divisor=DIVISOR)

    def forward(self, x: torch.Tensor) -> Gated:
        if self.kind is Gate.SE:
            return Gated(self.module(x), None, None)
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        handle = self.module.spatial.gate.register_forward_hook(lambda _m, inputs, output: seen.append((inputs[0], output)))
        try:
            out = self.module(x)
        finally:
            handle.remove()
        scores, gate = seen[-1]
        return Gated(out, gate, scores)
