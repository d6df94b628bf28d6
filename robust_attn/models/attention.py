"""The paper's attention block (Jetley et al. 2018, section 3).

Given local features ``l`` (N x C_l x H x W: one C_l-dim vector l_i per spatial position) and the
global feature ``g`` (N x C_g), it computes compatibility scores c_i, attention a = softmax(c) over
all positions, and the attended descriptor g_a = sum_i a_i l_i.

Where C_l < C_g the paper maps l to g's space with a learned 1x1 projection P (no bias). P is
linear, so instead of projecting every position we use the identities

    <u, P l_i + g> = <P^T u, l_i> + <u, g>       (pc)
    <P l_i, g>     = <l_i, P^T g>                 (dp)
    sum_i a_i P l_i = P sum_i a_i l_i             (g_a)

which compute the same function at a fraction of the cost on the large early layers.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .registry import Compatibility


class Attended(NamedTuple):
    """Output of one attention block."""

    descriptor: torch.Tensor  # g_a, N x C_g
    attention: torch.Tensor  # a, N x 1 x H x W, sums to 1 over H x W
    compatibility: torch.Tensor  # c, N x 1 x H x W (raw scores before the softmax)


class AttentionBlock(nn.Module):
    """Compatibility + softmax + attention-weighted pooling for one attended layer."""

    def __init__(self, local_channels: int, global_channels: int, compatibility: Compatibility):
        super().__init__()
        self.compatibility_fn = Compatibility(compatibility)
        self.local_channels = local_channels
        self.global_channels = global_channels
        # The paper's projection of l onto g's dimension, a 1x1 conv without bias.
        self.project = (
            nn.Conv2d(local_channels, global_channels, 1, bias=False) if local_channels != global_channels else None
        )
        # pc: u is a learned 1x1 conv to one channel applied to l_i + g; the bias would cancel in the softmax.
        self.u = nn.Conv2d(global_channels, 1, 1, bias=False) if self.compatibility_fn is Compatibility.PC else None

    def _projection_matrix(self) -> torch.Tensor | None:
        if self.project is None:
            return None
        return self.project.weight.view(self.global_channels, self.local_channels)

    def compatibility(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        """c_i for every position: N x H x W."""
        p = self._projection_matrix()
        if self.u is not None:  # pc: <u, P l_i + g>
            u = self.u.weight.view(self.global_channels)
            u_local = u if p is None else p.t() @ u
            return torch.einsum("nchw,c->nhw", local, u_local) + (global_ @ u)[:, None, None]
        g_local = global_ if p is None else global_ @ p  # dp: <l_i, P^T g>
        return torch.einsum("nchw,nc->nhw", local, g_local)

    def attend(self, local: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """g_a = sum_i a_i (P) l_i, with ``attention`` N x H x W summing to 1."""
        pooled = torch.einsum("nhw,nchw->nc", attention, local)
        p = self._projection_matrix()
        return pooled if p is None else pooled @ p.t()

    def forward(self, local: torch.Tensor, global_: torch.Tensor) -> Attended:
        c = self.compatibility(local, global_)
        a = torch.softmax(c.flatten(1), dim=1).view_as(c)
        return Attended(self.attend(local, a), a.unsqueeze(1), c.unsqueeze(1))
