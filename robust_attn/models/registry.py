"""Model registry in the style of timm: ``@register_model``, ``list_models``, ``create_model``.

Each entry pairs a frozen :class:`ModelCfg` (what the architecture is, where it comes from)
with a builder. ``create_model`` wraps the network in :class:`~robust_attn.models.wrapper.ModelWrapper`
so that normalisation lives inside the model and attacks work on [0, 1] pixels.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from torch import nn

from ..errors import UserError, require_int
from ..registry import Registry


class Combine(StrEnum):
    """How several attended descriptors g_a feed the classifier (paper, section 3.3)."""

    CONCAT = "concat"  # concatenate every g_a, one linear classifier
    INDEP = "indep"  # one linear classifier per g_a, logits averaged


class Compatibility(StrEnum):
    """The compatibility function c_i = C(l_i, g) (paper, section 3.2)."""

    PC = "pc"  # parametrised: <u, l_i + g>
    DP = "dp"  # dot product: <l_i, g>


@dataclass(frozen=True)
class ModelCfg:
    """What an architecture is; everything a builder needs besides width and class count."""

    name: str
    family: str
    attention_layers: tuple[int, ...] = ()
    combine: Combine | None = None
    compatibility: Compatibility | None = None
    input_multiple: int = 32
    paper: str = "Jetley et al., Learn To Pay Attention, ICLR 2018, arXiv:1804.02391"

    @property
    def has_attention(self) -> bool:
        return bool(self.attention_layers)


Builder = Callable[..., nn.Module]
_REGISTRY: Registry[ModelCfg, Builder] = Registry("model")


def register_model(cfg: ModelCfg) -> Callable[[Builder], Builder]:
    """Register ``builder(cfg, width=, num_classes=, in_channels=) -> nn.Module`` under ``cfg.name``."""
    return _REGISTRY.register(cfg.name, cfg)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return _REGISTRY.names(pattern)


def get_model_cfg(name: str) -> ModelCfg:
    return _REGISTRY.cfg(name)


def validate_width(width: float) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise UserError(f"width must be a positive number, got {width!r}")
    return float(width)


def scale_channels(channels: int, width: float) -> int:
    """Channel count at ``width`` (at least 1), so every layer shrinks by the same factor."""
    return max(1, int(round(channels * width)))


def create_model(
    name: str,
    width: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build a registered architecture wrapped with its input normalisation.

    ``mean``/``std`` default to 0/1 per channel (no normalisation); checkpoints record the
    dataset's statistics and pass them here when reloading.
    """
    from .wrapper import ModelWrapper

    cfg = get_model_cfg(name)
    width = validate_width(width)
    require_int("num_classes", num_classes, 2)
    require_int("in_channels", in_channels, 1)
    mean = tuple(float(m) for m in (mean if mean is not None else [0.0] * in_channels))
    std = tuple(float(s) for s in (std if std is not None else [1.0] * in_channels))
    if len(mean) != in_channels or len(std) != in_channels or any(s <= 0 for s in std):
        raise UserError(f"mean/std need {in_channels} entries with std > 0, got {mean} / {std}")
    net = _REGISTRY.builder(name)(cfg, width=width, num_classes=num_classes, in_channels=in_channels)
    return ModelWrapper(net, cfg=cfg, width=width, num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
