"""Common corruptions: the 15 of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019), with their parameters.

``corrupt(name, images, severity, seed)`` applies one to float N x C x H x W images in [0, 1], exactly as
the reference code generated CIFAR-10-C (github.com/hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py,
commit 8190fe3), with randomness drawn per image from the seed.

Every module of this package is imported here, so a corruption is one function that registers itself with
``@register_corruption``: no other file names it. :func:`list_corruptions` lists them in Hendrycks &
Dietterich's order (noise, blur, weather, digital), whatever the order of the imports.
"""
import importlib
import pkgutil

from .registry import (
    HD_ORDER, MIN_SIZE, REFERENCE, SEVERITIES, CorruptionCfg, CorruptionGroup, check_severity, corrupt, corrupt_uint8,
    get_corruption_cfg, list_corruptions, register_corruption,
)

__all__ = [
    "HD_ORDER", "MIN_SIZE", "REFERENCE", "SEVERITIES", "CorruptionCfg", "CorruptionGroup", "check_severity", "corrupt",
    "corrupt_uint8", "get_corruption_cfg", "list_corruptions", "register_corruption",
]

for _module in pkgutil.iter_modules(__path__):  # register every entry, whatever its file is called
    importlib.import_module(f"{__name__}.{_module.name}")
