"""Normalisation inside the model, so every attack sees and perturbs [0, 1] pixels."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from .config import ModelCfg


class Normalize(nn.Module):
    """(x - mean) / std per channel, as a layer."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean_", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std_", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean_) / self.std_


class AttentionOutput(NamedTuple):
    logits: torch.Tensor
    # a per attended layer, N x 1 x H x W: the paper's softmax maps (sum 1 over positions) or, for
    # CBAM (cfg.gate), its spatial gates in [0, 1]; empty for models without spatial maps (SE too)
    attention_maps: tuple[torch.Tensor, ...]
    compatibility: tuple[torch.Tensor, ...]  # c per attended layer (CBAM: the gate's pre-sigmoid scores)


class ModelWrapper(nn.Module):
    """A classifier on [0, 1] images: ``forward`` returns logits only, so attack libraries treat
    it like any classifier; ``forward_with_attention`` also returns the attention maps.

    The normalisation buffers sit in a submodule rather than as ``mean``/``std`` attributes,
    because torchattacks would otherwise detect them and normalise a second time.

    ``model_args`` are the architecture's own options as built (defaults filled in); each also reads
    as an attribute (``model.depth`` for a ResNet), as 0.3's wrapper had ``depth``.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        cfg: ModelCfg,
        width: float,
        num_classes: int,
        in_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        model_args: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.width = width
        self.model_args: dict[str, Any] = dict(model_args or {})
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.normalization = (tuple(mean), tuple(std))
        self.normalize = Normalize(mean, std)
        self.net = net

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # parameters, buffers and submodules
        except AttributeError:
            model_args = self.__dict__.get("model_args", {})
            if name in model_args:
                return model_args[name]
            raise

    def check_input(self, x: torch.Tensor) -> None:
        multiple = self.cfg.input_multiple
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % multiple or x.shape[3] % multiple:
            raise ValueError(
                f"{self.cfg.name} expects N x {self.in_channels} x H x W with H, W multiples of {multiple}, "
                f"got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def forward_with_attention(self, x: torch.Tensor) -> AttentionOutput:
        self.check_input(x)
        out = self.net.forward_head(self.net.forward_features(self.normalize(x)))
        return AttentionOutput(out.logits, out.attention_maps, out.compatibility)
