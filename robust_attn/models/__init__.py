"""Architectures: the registry plus the modules that register into it.

Imports run one way (config <- arguments <- registry, config <- wrapper <- registry <- vgg <- resnet,
config <- attention <- vgg, resnet; config <- gates <- vgg, resnet): no two modules here import each
other. A family is one module that builds its backbone on :class:`AttentionClassifier` (the paper's
head) and registers its configs; options particular to it are model arguments (:mod:`.arguments`).
"""
from . import resnet, transformer, vgg  # noqa: F401  (register the VGG, ResNet and transformer entries)
from .arguments import parse_model_args, resolve_model_args
from .attention import AttentionBlock, Attended, AttentionClassifier, Features, HeadOutput
from .config import AttentionMaps, Combine, Compatibility, Gate, ModelCfg
from .registry import check_model_args, create_model, get_model_cfg, list_models, register_model
from .wrapper import AttentionOutput, ModelWrapper, Normalize

__all__ = [
    "AttentionBlock", "AttentionClassifier", "Attended", "AttentionMaps", "AttentionOutput", "Combine", "Compatibility",
    "Features", "Gate", "HeadOutput", "ModelCfg", "ModelWrapper", "Normalize", "check_model_args", "create_model",
    "get_model_cfg", "list_models", "parse_model_args", "register_model", "resolve_model_args",
]
