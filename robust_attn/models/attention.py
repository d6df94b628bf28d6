"""The paper's attention block (Jetley et al. 2018, section 3), plus one borrowed variant.

Given local features ``l`` (N x C_l x H x W: one C_l-dim vector l_i per spatial position) and the
global feature ``g`` (N x C_g), it computes compatibility scores c_i, attention a = softmax(c) over
all positions, and the attended descriptor g_a = sum_i a_i l_i.

Which compatibilities let g steer the attention:

* ``pc`` (the paper's): c_i = <u, l_i + g> = <u, l_i> + <u, g>. The second term is the same at
  every position of an image and cancels in the softmax, so a, g_a and the logits depend on the
  local features alone; g does not enter the attention, and the layers that only feed g (VGG
  layers 14, 15 and the dense layer) get no gradient beyond rounding. The formula is the
  paper's, so it is kept as written; the raw scores c still carry the per-image offset <u, g>.
* ``dp`` (the paper's): c_i = <l_i, g>; g weights each position differently.
* ``add`` (NOT the paper's; Oktay et al., "Attention U-Net", MIDL 2018): c_i =
  <u, ReLU(W_l l_i + W_g g + b)>. The ReLU makes the g term position-dependent (it decides which
  hidden units are active at each position), so g does steer the attention. We keep the softmax
  over positions (Oktay et al. use a sigmoid gate) so that a sums to 1 and g_a is a weighted
  average, as in the paper's heads, and the maps are comparable across compatibilities.

Where C_l < C_g the paper maps l to g's space with a learned 1x1 projection P (no bias). P is
linear, so instead of projecting every position we use the identities

    <u, P l_i + g> = <P^T u, l_i> + <u, g>       (pc)
    <P l_i, g>     = <l_i, P^T g>                 (dp)
    sum_i a_i P l_i = P sum_i a_i l_i             (g_a, every compatibility)

which compute the same function at a fraction of the cost on the large early layers. ``add`` reads
l_i directly through its own W_l, so it needs P only for g_a.

:class:`AttentionClassifier` is the paper's head, shared by every backbone (VGG, ResNet, the next
family): one block per attended layer, and a classifier on the attended descriptors g_a alone
(concatenated, or one classifier per g_a with the logits averaged), or on g for a backbone without
blocks.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .config import Combine, Compatibility, ModelCfg


class Features(NamedTuple):
    """What a backbone hands the head."""

    local_features: tuple[torch.Tensor, ...]  # the attended layers' outputs, N x C_l x H x W
    global_feature: torch.Tensor  # g, N x C_g
    gate_maps: tuple[torch.Tensor, ...] = ()  # CBAM's spatial gates, N x 1 x H x W in [0, 1]
    gate_scores: tuple[torch.Tensor, ...] = ()  # the same before the sigmoid


class HeadOutput(NamedTuple):
    logits: torch.Tensor
    attention_maps: tuple[torch.Tensor, ...]  # a per attended layer, N x 1 x H x W
    compatibility: tuple[torch.Tensor, ...]  # c per attended layer, N x 1 x H x W


class Attended(NamedTuple):
    """Output of one attention block."""

    descriptor: torch.Tensor  # g_a, N x C_g
    attention: torch.Tensor  # a, N x 1 x H x W, sums to 1 over H x W
    compatibility: torch.Tensor  # c, N x 1 x H x W (raw scores before the softmax)


class AttentionBlock(nn.Module):
    """Compatibility + softmax + attention-weighted pooling for one attended layer.

    ``intermediate_channels`` is the hidden width of ``add``'s W_l and W_g (ignored otherwise). It
    defaults to ``local_channels``: the ReLU rules out the projection shortcut above, so W_l runs
    at every position, and C_l keeps it a square 1x1 conv costing at most a ninth of the 3x3 conv
    that produced l; on VGG layers 10 and 13 it equals g's dimension anyway, so only layer 7
    (C_l = C_g / 2) is narrower.
    """

    def __init__(
        self,
        local_channels: int,
        global_channels: int,
        compatibility: Compatibility | str,
        intermediate_channels: int | None = None,
    ):
        super().__init__()
        self.compatibility_fn = Compatibility(compatibility)
        self.local_channels = local_channels
        self.global_channels = global_channels
        # The paper's projection of l onto g's dimension, a 1x1 conv without bias.
        self.project = (
            nn.Conv2d(local_channels, global_channels, 1, bias=False) if local_channels != global_channels else None
        )
        self.u: nn.Conv2d | None = None
        self.w_local: nn.Conv2d | None = None
        self.w_global: nn.Linear | None = None
        if self.compatibility_fn is Compatibility.PC:
            # u is a learned 1x1 conv to one channel applied to P l_i + g; a bias would cancel in the softmax.
            self.u = nn.Conv2d(global_channels, 1, 1, bias=False)
        elif self.compatibility_fn is Compatibility.ADD:
            hidden = local_channels if intermediate_channels is None else intermediate_channels
            if hidden < 1:
                raise ValueError(f"intermediate_channels must be >= 1, got {hidden}")
            # One bias, in W_g: a second one in W_l would be redundant, and u's would cancel in the softmax.
            self.w_local = nn.Conv2d(local_channels, hidden, 1, bias=False)
            self.w_global = nn.Linear(global_channels, hidden)
            self.u = nn.Conv2d(hidden, 1, 1, bias=False)

    def _projection_matrix(self) -> torch.Tensor | None:
        if self.project is None:
            return None
        return self.project.weight.view(self.global_channels, self.local_channels)

    def compatibility(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        """c_i for every position: N x H x W."""
        if self.compatibility_fn is Compatibility.ADD:  # <u, ReLU(W_l l_i + W_g g + b)>
            assert self.w_local is not None and self.w_global is not None and self.u is not None
            hidden = torch.relu(self.w_local(local) + self.w_global(global_)[:, :, None, None])
            return self.u(hidden)[:, 0]
        p = self._projection_matrix()
        if self.compatibility_fn is Compatibility.PC:  # <u, P l_i + g>; the <u, g> term cancels in the softmax
            assert self.u is not None
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


class AttentionClassifier(nn.Module):
    """Base of the networks classified by the paper's head; a backbone subclasses it, calls
    :meth:`build_head` in its ``__init__`` and implements ``forward_features``.

    The head's modules are the network's own ``attention`` and ``classifier`` attributes (not a
    submodule), so the weights keep the names every shipped checkpoint has.
    """

    attention: nn.ModuleList
    classifier: nn.Module

    def build_head(self, cfg: ModelCfg, local_channels: Sequence[int], global_channels: int, num_classes: int) -> None:
        """One attention block per attended layer (``local_channels``: their widths) when ``cfg`` has a
        compatibility (CBAM's maps come from its gates, not from blocks), then the classifier."""
        self.attention = nn.ModuleList(
            AttentionBlock(channels, global_channels, cfg.compatibility) for channels in local_channels
        ) if cfg.compatibility is not None else nn.ModuleList()
        n_att = len(self.attention)
        if n_att == 0:
            self.classifier = nn.Linear(global_channels, num_classes)
        elif cfg.combine is Combine.CONCAT:
            self.classifier = nn.Linear(global_channels * n_att, num_classes)
        else:
            self.classifier = nn.ModuleList(nn.Linear(global_channels, num_classes) for _ in range(n_att))

    def forward_features(self, x: torch.Tensor) -> Features:
        raise NotImplementedError

    def forward_head(self, features: Features) -> HeadOutput:
        if not self.attention:  # backbones, SE and CBAM classify g; CBAM's maps are its spatial gates
            return HeadOutput(self.classifier(features.global_feature), features.gate_maps, features.gate_scores)
        outs = [block(l, features.global_feature) for block, l in zip(self.attention, features.local_features)]
        # Classification uses the g_a alone: g reaches the logits only through the attention maps.
        descriptors = [o.descriptor for o in outs]
        if isinstance(self.classifier, nn.ModuleList):
            logits = torch.stack([fc(d) for fc, d in zip(self.classifier, descriptors)]).mean(0)
        else:
            logits = self.classifier(torch.cat(descriptors, dim=1))
        return HeadOutput(logits, tuple(o.attention for o in outs), tuple(o.compatibility for o in outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)).logits
