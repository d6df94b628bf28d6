"""Architectures: the registry plus the modules that register into it."""
from . import vgg  # noqa: F401  (registers the VGG entries)
from .attention import AttentionBlock, Attended
from .registry import Combine, Compatibility, ModelCfg, create_model, get_model_cfg, list_models, register_model
from .wrapper import AttentionOutput, ModelWrapper, Normalize

__all__ = [
    "AttentionBlock", "Attended", "AttentionOutput", "Combine", "Compatibility", "ModelCfg", "ModelWrapper",
    "Normalize", "create_model", "get_model_cfg", "list_models", "register_model",
]
