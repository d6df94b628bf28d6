"""The paper's CIFAR VGG-16 and its attention variants (Jetley et al. 2018, section 4).

Layout like timm's: a config table, the module, a private builder, registered entry points.

The backbone is VGG-16 with BatchNorm, adapted as in the paper: the first two max-pools are
dropped so that layer 7 keeps the input resolution (32x32 for CIFAR), and two extra 512 conv
layers each followed by 2x2 max-pooling bring the map to 1x1; a dense layer then yields the
global feature g. The baseline classifies g; attention variants classify only the attended
descriptors g_a of layers 7, 10 and 13 (att3), 10 and 13 (att2) or 13 (att1).

g reaches an attention variant's logits only through the attention maps, so how much it matters
depends on the compatibility: not at all for the paper's ``pc`` (its <u, g> term cancels in the
softmax, and layers 14, 15 and the dense layer get no gradient from the loss), through <l_i, g> for the
paper's ``dp``, and through a ReLU for ``add`` (Oktay et al. 2018, registered as not the paper's;
see :mod:`.attention`).

``vgg-se`` and ``vgg-cbam`` (not in Jetley et al.) put timm's SE or CBAM module (see :mod:`.gates`)
after conv layers 2, 4, 7, 10 and 13, the ends of VGG-16's five conv blocks (after the ReLU, before
any pooling), and classify g like the baseline. CBAM's spatial gates of those five layers (N x 1 x
H x W in [0, 1]; 32, 32, 32, 16 and 8 pixels square at 32x32 inputs) are its attention maps.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionClassifier, Features
from .config import (
    HU_2018_SE,
    JETLEY_2018,
    OKTAY_2018_ADDITIVE,
    WOO_2018_CBAM,
    Combine,
    Compatibility,
    Gate,
    ModelCfg,
    scale_channels,
)
from .gates import GateBlock
from .registry import register_model

# (output channels at width 1, max-pool after this conv layer) for conv layers 1..15.
_VGG_LAYERS: tuple[tuple[int, bool], ...] = (
    (64, False), (64, False),
    (128, False), (128, False),
    (256, False), (256, False), (256, True),  # layer 7: end of the 3x256 block, full resolution
    (512, False), (512, False), (512, True),  # layer 10
    (512, False), (512, False), (512, True),  # layer 13
    (512, True),
    (512, True),
)
_GLOBAL_CHANNELS = 512

_ATTENTION_LAYERS = {"att1": (13,), "att2": (10, 13), "att3": (7, 10, 13)}

_CFGS: tuple[ModelCfg, ...] = (ModelCfg(name="vgg", family="vgg"),) + tuple(
    ModelCfg(
        name=f"vgg-{depth}-{combine.value}-{compat.value}",
        family="vgg",
        baseline="vgg",
        attention_layers=layers,
        combine=combine,
        compatibility=compat,
        paper=JETLEY_2018 if compat.in_paper else OKTAY_2018_ADDITIVE,
    )
    for depth, layers in _ATTENTION_LAYERS.items()
    for combine in Combine
    for compat in Compatibility
)
_GATED_LAYERS = (2, 4, 7, 10, 13)  # the ends of VGG-16's five conv blocks
_GATE_CFGS: tuple[ModelCfg, ...] = (
    ModelCfg(name="vgg-se", family="vgg", baseline="vgg", gate=Gate.SE, gated_layers=_GATED_LAYERS,
             paper=f"{HU_2018_SE}, on the VGG backbone of {JETLEY_2018} (not in Jetley et al.)"),
    ModelCfg(name="vgg-cbam", family="vgg", baseline="vgg", attention_layers=_GATED_LAYERS, gate=Gate.CBAM,
             gated_layers=_GATED_LAYERS,
             paper=f"{WOO_2018_CBAM}, on the VGG backbone of {JETLEY_2018} (not in Jetley et al.)"),
)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VGGAttention(AttentionClassifier):
    """VGG-16 backbone with zero or more attention blocks; one class for baseline and variants,
    so both share their backbone code exactly."""

    def __init__(self, cfg: ModelCfg, width: float, num_classes: int, in_channels: int):
        super().__init__()
        self.cfg = cfg
        channels = [scale_channels(c, width) for c, _ in _VGG_LAYERS]
        self.pool_after = frozenset(i + 1 for i, (_, pool) in enumerate(_VGG_LAYERS) if pool)
        self.layers = nn.ModuleList(_conv_bn_relu(cin, cout) for cin, cout in zip([in_channels, *channels], channels))
        self.pool = nn.MaxPool2d(2)
        g_dim = scale_channels(_GLOBAL_CHANNELS, width)
        # The paper's dense layer producing g; average pooling first makes any input size
        # that is a multiple of 32 work (at 32x32 the map is already 1x1).
        self.dense = nn.Linear(channels[-1], g_dim)
        # Every block reads g; for the paper's pc its term cancels in the softmax (see .attention).
        self.build_head(cfg, [channels[layer - 1] for layer in cfg.attention_layers], g_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # SE / CBAM gates (timm initialises them); created last and only when configured, so the other
        # entries build, draw their random initialisation and name their weights exactly as before.
        self.gates = nn.ModuleDict(
            {str(layer): GateBlock(cfg.gate, channels[layer - 1]) for layer in cfg.gated_layers}
        ) if cfg.gate is not None else None

    @property
    def global_layer(self) -> nn.Module:
        """The module whose output is g: the dense layer."""
        return self.dense

    def forward_features(self, x: torch.Tensor) -> Features:
        local, gate_maps, gate_scores = [], [], []
        for index, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if self.gates is not None and str(index) in self.gates:
                x, gate_map, scores = self.gates[str(index)](x)
                if gate_map is not None:
                    gate_maps.append(gate_map)
                    gate_scores.append(scores)
            elif index in self.cfg.attention_layers:
                local.append(x)
            if index in self.pool_after:
                x = self.pool(x)
        g = self.dense(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return Features(tuple(local), g, tuple(gate_maps), tuple(gate_scores))


def _build_vgg(cfg: ModelCfg, *, width: float, num_classes: int, in_channels: int) -> VGGAttention:
    return VGGAttention(cfg, width=width, num_classes=num_classes, in_channels=in_channels)


for _cfg in _CFGS + _GATE_CFGS:
    register_model(_cfg)(_build_vgg)
