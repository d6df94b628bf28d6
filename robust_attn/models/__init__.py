"""Architectures: the registry plus the modules that register into it.

Imports run one way (config <- wrapper <- registry <- vgg <- resnet, config <- attention <- vgg,
config <- gates <- vgg): no two modules here import each other.
"""
from . import resnet, vgg  # noqa: F401  (register the VGG and ResNet entries)
from .attention import AttentionBlock, Attended
from .config import AttentionMaps, Combine, Compatibility, Gate, ModelCfg
from .registry import create_model, get_model_cfg, list_models, register_model
from .wrapper import AttentionOutput, ModelWrapper, Normalize

__all__ = [
    "AttentionBlock", "Attended", "AttentionMaps", "AttentionOutput", "Combine", "Compatibility", "Gate", "ModelCfg", "ModelWrapper",
    "Normalize", "create_model", "get_model_cfg", "list_models", "register_model",
]
