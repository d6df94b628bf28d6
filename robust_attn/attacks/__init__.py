"""Attacks: the registry, eps grids, and the registered entries.

Every module of this package is imported here, so an attack is one file that registers itself with
``@register_attack``: no other file names it (the sweep, results and report take what it declares).
"""
import importlib
import pkgutil

from .grids import EpsGrid, EpsUnit, parse_eps_grid
from .layout import StandardLayout
from .registry import (
    CORRUPTIONS, AttackCfg, AttackKind, Norm, Objective, check_images, create_attack, eval_mode, expand_attack_names,
    get_attack_cfg, grid_name, is_corruption, list_attacks, listed_twice, params_json, parse_attack_args, register_attack, resolve_params, seeded,
)

__all__ = [
    "CORRUPTIONS", "expand_attack_names", "grid_name", "is_corruption", "listed_twice",
    "AttackCfg", "AttackKind", "EpsGrid", "EpsUnit", "Norm", "Objective", "StandardLayout", "check_images",
    "create_attack", "eval_mode", "get_attack_cfg", "list_attacks", "params_json", "parse_attack_args", "parse_eps_grid", "register_attack",
    "resolve_params", "seeded",
]

for _module in pkgutil.iter_modules(__path__):  # register every entry, whatever its file is called
    importlib.import_module(f"{__name__}.{_module.name}")
