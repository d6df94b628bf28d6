"""CIFAR pre-activation ResNets (He et al. 2016, "Identity Mappings") with the paper's attention
(Jetley et al. 2018, RN-att), and SE / CBAM variants.

Backbone (He et al. 2016b, CIFAR layout): a 3x3 stem conv to 16 channels, three stages of blocks at
32x32, 16x16 and 8x8 (the first block of stages 2 and 3 has stride 2), a final BatchNorm-ReLU and
global average pooling. Widths are 16, 32, 64 (times 4 at the output of bottleneck blocks), all
scaled by ``width``. ``depth`` picks the blocks:

* depth < 164: basic blocks (BN-ReLU-conv3x3, twice), (depth - 2) / 6 per stage: 20, 32, 44, 56, 110;
* depth >= 164: bottleneck blocks (BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 to 4x),
  (depth - 2) / 9 per stage: 164 (the paper's ResNet-164), 1001.

``depth`` is the family's one model argument (``create_model("resnet", depth=56)``,
``--model-arg depth=56``). The default depth is 20 (CPU scale, like the CLI's default width 0.125); ``depth=164`` at ``width=1``
is the paper's network. A shortcut that changes shape is a 1x1 conv (stride 2) of the pre-activated
input, as in He et al.'s code.

Choices where Jetley et al. leave details open (documented here and in the README):

* Attended layers are stages: ``att2`` attends the outputs of stages 2 and 3 (16x16 and 8x8), as the
  paper's RN-att2 attends the last two levels; ``att3`` adds stage 1 (32x32). A stage's output is the
  residual stream after its last block (before any BatchNorm-ReLU).
* The global feature g is the backbone's own pooled feature: global average pooling of
  BN-ReLU(stage 3 output), dimension C_3 (no extra dense layer, unlike the VGG's). The baseline
  classifies g; attention variants classify only the attended descriptors g_a (concat or indep), as
  for the VGG. With ``pc`` g cancels in the softmax (see :mod:`.attention`): only the final
  BatchNorm feeds g alone, and it gets no gradient.
* Local features narrower than g (stages 1 and 2) are mapped to g's dimension by the paper's 1x1
  projection, inside :class:`~robust_attn.models.attention.AttentionBlock`; the head is the VGG's,
  :class:`~robust_attn.models.attention.AttentionClassifier`.
* SE / CBAM (timm's modules, see :mod:`.gates`) gate the residual branch of every block before the
  addition, as in Hu et al. and Woo et al. CBAM's spatial maps are reported one per stage: the
  spatial gate of the stage's last block (N x 1 x H x W, values in [0, 1]), so ``attention_layers``
  are stages (1, 2, 3) and the maps sit at the resolutions of the paper's att3 maps.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..errors import UserError
from .attention import AttentionClassifier, Features
from .config import (
    HE_2016_PREACT,
    HU_2018_SE,
    JETLEY_2018,
    WOO_2018_CBAM,
    Combine,
    Compatibility,
    Gate,
    ModelCfg,
    scale_channels,
)
from .gates import GateBlock
from .registry import register_model

DEFAULT_DEPTH = 20
BOTTLENECK_FROM = 164
_STAGE_WIDTHS = (16, 32, 64)
_ATTENTION_STAGES = {"att2": (2, 3), "att3": (1, 2, 3)}
_MODEL_ARGS = {"depth": DEFAULT_DEPTH}
_RN_ATT = f"{JETLEY_2018} (RN-att), on the pre-activation ResNet of {HE_2016_PREACT}"

_CFGS: tuple[ModelCfg, ...] = (
    ModelCfg(name="resnet", family="resnet", input_multiple=4, paper=HE_2016_PREACT, model_args=_MODEL_ARGS,
             layer_unit="stage"),
    *(
        ModelCfg(name=f"resnet-{att}-{combine.value}-{compat.value}", family="resnet", baseline="resnet",
                 attention_layers=stages,
                 combine=combine, compatibility=compat, input_multiple=4, paper=_RN_ATT,
                 model_args=_MODEL_ARGS, layer_unit="stage")
        for att, stages in _ATTENTION_STAGES.items()
        for combine in Combine
        for compat in (Compatibility.PC, Compatibility.DP)
    ),
    ModelCfg(name="resnet-se", family="resnet", baseline="resnet", input_multiple=4, gate=Gate.SE,
             gated_layers=(1, 2, 3),
             paper=f"{HU_2018_SE}, on the pre-activation ResNet of {HE_2016_PREACT} (not in Jetley et al.)",
             model_args=_MODEL_ARGS, layer_unit="stage"),
    ModelCfg(name="resnet-cbam", family="resnet", baseline="resnet", attention_layers=(1, 2, 3), input_multiple=4,
             gate=Gate.CBAM,
             gated_layers=(1, 2, 3),
             paper=f"{WOO_2018_CBAM}, on the pre-activation ResNet of {HE_2016_PREACT} (not in Jetley et al.)",
             model_args=_MODEL_ARGS, layer_unit="stage"),
)


class Layout(NamedTuple):
    bottleneck: bool
    blocks_per_stage: int


def resnet_layout(depth: object) -> Layout:
    """Basic blocks for depth 6n + 2 below 164, bottlenecks for 9n + 2 from 164; else a one-line UserError."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise UserError(f"depth must be an integer, got {depth!r}")
    bottleneck = depth >= BOTTLENECK_FROM
    per_block = 9 if bottleneck else 6
    if depth < 8 or (depth - 2) % per_block:
        raise UserError(f"ResNet depth must be 6n + 2 (basic blocks, e.g. 20, 56, 110) below {BOTTLENECK_FROM} "
                        f"or 9n + 2 (bottleneck, e.g. 164) from it, got {depth}")
    return Layout(bottleneck, (depth - 2) // per_block)


class BlockOut(NamedTuple):
    x: torch.Tensor
    gate_map: torch.Tensor | None
    scores: torch.Tensor | None


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))


class PreActBlock(nn.Module):
    """Pre-activation basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 to 4x) block, optionally gated."""

    def __init__(self, cin: int, planes: int, stride: int, bottleneck: bool, gate: Gate | None):
        super().__init__()
        cout = planes * 4 if bottleneck else planes
        self.pre = _bn_relu(cin)
        if bottleneck:
            self.residual = nn.Sequential(
                nn.Conv2d(cin, planes, 1, bias=False), _bn_relu(planes),
                nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False), _bn_relu(planes),
                nn.Conv2d(planes, cout, 1, bias=False),
            )
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False), _bn_relu(planes),
                nn.Conv2d(planes, cout, 3, padding=1, bias=False),
            )
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None
        self.gate = GateBlock(gate, cout) if gate is not None else None
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> BlockOut:
        pre = self.pre(x)
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.residual(pre)
        if self.gate is None:
            return BlockOut(out + shortcut, None, None)
        gated = self.gate(out)  # SE / CBAM on the residual branch, before the addition
        return BlockOut(gated.features + shortcut, gated.gate_map, gated.scores)


class PreActResNet(AttentionClassifier):
    """Pre-activation CIFAR ResNet with zero or more of the paper's attention blocks on stage outputs,
    or SE / CBAM gates in every block; one class for all, so every variant shares the backbone code."""

    def __init__(self, cfg: ModelCfg, width: float, num_classes: int, in_channels: int, depth: int):
        super().__init__()
        self.cfg = cfg
        self.depth = depth
        layout = resnet_layout(depth)
        widths = [scale_channels(c, width) for c in _STAGE_WIDTHS]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        cin, stage_channels = widths[0], []
        self.stages = nn.ModuleList()
        for s, planes in enumerate(widths):
            blocks = nn.ModuleList()
            for b in range(layout.blocks_per_stage):
                block = PreActBlock(cin, planes, 2 if (s > 0 and b == 0) else 1, layout.bottleneck, cfg.gate)
                blocks.append(block)
                cin = block.out_channels
            self.stages.append(blocks)
            stage_channels.append(cin)
        # g: global average pooling of the final BN-ReLU, as the backbone classifies.
        self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        g_dim = cin
        self.build_head(cfg, [stage_channels[s - 1] for s in cfg.attention_layers], g_dim, num_classes)
        in_gates = {id(m) for g in self.modules() if isinstance(g, GateBlock) for m in g.modules()}
        for m in self.modules():  # timm initialises its gates itself; u and P keep PyTorch's default
            if isinstance(m, nn.Conv2d) and id(m) not in in_gates and not _in_attention(self, m):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def global_layer(self) -> nn.Module:
        """The module whose output is g: the final BN-ReLU and global average pooling."""
        return self.final

    def forward_features(self, x: torch.Tensor) -> Features:
        x = self.stem(x)
        local, gate_maps, gate_scores = [], [], []
        for s, blocks in enumerate(self.stages, start=1):
            out = BlockOut(x, None, None)
            for block in blocks:
                out = block(out.x)
            x = out.x
            if s in self.cfg.attention_layers:
                if self.cfg.compatibility is not None:
                    local.append(x)
                else:  # CBAM: the spatial gate of the stage's last block
                    gate_maps.append(out.gate_map)
                    gate_scores.append(out.scores)
        g = self.final(x)
        return Features(tuple(local), g, tuple(gate_maps), tuple(gate_scores))


def _in_attention(net: PreActResNet, module: nn.Module) -> bool:
    return any(module is m for m in net.attention.modules())


def _build_resnet(cfg: ModelCfg, *, width: float, num_classes: int, in_channels: int,
                  depth: int = DEFAULT_DEPTH) -> PreActResNet:
    return PreActResNet(cfg, width=width, num_classes=num_classes, in_channels=in_channels, depth=depth)


for _cfg in _CFGS:
    register_model(_cfg)(_build_resnet)
