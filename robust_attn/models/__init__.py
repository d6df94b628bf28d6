"""Architectures: the registry plus the modules that register into it.

Imports run one way (config <- wrapper <- registry <- vgg, config <- attention <- vgg): no two
modules here import each other.
"""
from . import vgg  # noqa: F401  (registers the VGG entries)
from .attention import AttentionBlock, Attended
from .config import Combine, Compatibility, ModelCfg
from .registry import create_model, get_model_cfg, list_models, register_model
from .wrapper import AttentionOutput, ModelWrapper, Normalize

__all__ = [
    "AttentionBlock", "Attended", "AttentionOutput", "Combine", "Compatibility", "ModelCfg", "ModelWrapper",
    "Normalize", "create_model", "get_model_cfg", "list_models", "register_model",
]
