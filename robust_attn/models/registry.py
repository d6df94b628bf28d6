"""Model registry in the style of timm: ``@register_model``, ``list_models``, ``create_model``.

Each entry pairs a frozen :class:`~robust_attn.models.config.ModelCfg` (what the architecture
is, where it comes from) with a builder. ``create_model`` wraps the network in
:class:`~robust_attn.models.wrapper.ModelWrapper` so that normalisation lives inside the model
and attacks work on [0, 1] pixels. The config types live in :mod:`.config`, which both this
module and the wrapper import, so the two do not import each other. Options particular to an
architecture (a ResNet's depth) are model arguments (see :mod:`.arguments`): declared in its config,
passed to ``create_model`` as keywords, handed to the builder.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError, require_int
from ..registry import Registry
from .arguments import check_declaration, resolve_model_args
from .config import Combine, Compatibility, ModelCfg, scale_channels, validate_width
from .wrapper import ModelWrapper

# Re-exported for code that imported the config types from here before they moved to .config.
__all__ = [
    "Builder", "Combine", "Compatibility", "ModelCfg", "check_model_args", "create_model", "get_model_cfg",
    "list_models", "register_model", "scale_channels", "validate_width",
]

Builder = Callable[..., nn.Module]
_REGISTRY: Registry[ModelCfg, Builder] = Registry("model", entry_points="robust_attn.models")


def register_model(cfg: ModelCfg) -> Callable[[Builder], Builder]:
    """Register ``builder(cfg, width=, num_classes=, in_channels=, **model_args) -> nn.Module`` under
    ``cfg.name``; the builder gets every argument ``cfg.model_args`` declares, defaults filled in."""
    check_declaration(cfg)
    return _REGISTRY.register(cfg.name, cfg)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return _REGISTRY.names(pattern)


def get_model_cfg(name: str) -> ModelCfg:
    """The config registered under ``name``; an unknown name is a :class:`UserError` with close matches."""
    return _REGISTRY.cfg(name)


def create_model(
    name: str,
    width: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **model_args: Any,
) -> ModelWrapper:
    """Build a registered architecture wrapped with its input normalisation.

    ``mean``/``std`` default to 0/1 per channel (no normalisation); checkpoints record the
    dataset's statistics and pass them here when reloading. ``model_args`` are the architecture's own
    options (``depth=56`` for a ResNet): each must be one its config declares, and a ``None`` or
    missing one takes the declared default; an unknown one is a one-line :class:`UserError` naming
    the accepted ones.
    """
    cfg = get_model_cfg(name)
    width = validate_width(width)
    args = resolve_model_args(cfg, model_args)
    require_int("num_classes", num_classes, 2)
    require_int("in_channels", in_channels, 1)
    mean = tuple(float(m) for m in (mean if mean is not None else [0.0] * in_channels))
    std = tuple(float(s) for s in (std if std is not None else [1.0] * in_channels))
    if len(mean) != in_channels or len(std) != in_channels or any(s <= 0 for s in std):
        raise UserError(f"mean/std need {in_channels} entries with std > 0, got {mean} / {std}")
    net = _REGISTRY.builder(name)(cfg, width=width, num_classes=num_classes, in_channels=in_channels, **args)
    return ModelWrapper(net, cfg=cfg, width=width, num_classes=num_classes, in_channels=in_channels, mean=mean, std=std,
                        model_args=args)


def check_model_args(name: str, model_args: Mapping[str, Any], width: float = 1.0) -> dict[str, Any]:
    """The resolved model arguments of ``name`` (defaults filled in) once its builder has accepted them.

    The builder is the one place that knows which values it can build (a ResNet's depth must be
    6n + 2 or 9n + 2), so this builds the network on the meta device: no memory, no initialisation
    cost, and a one-line :class:`UserError` before any data is loaded or training starts.
    """
    with torch.device("meta"):
        return dict(create_model(name, width=width, **model_args).model_args)
