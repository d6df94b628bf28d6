"""Attacks: the registry, eps grids, and the registered entries."""
from . import attention_shift, foolbox_, noise, torchattacks_  # noqa: F401  (register the entries)
from .grids import EpsGrid, EpsUnit, parse_eps_grid
from .layout import StandardLayout
from .registry import (
    AttackCfg, AttackKind, Norm, Objective, check_images, create_attack, eval_mode, get_attack_cfg, list_attacks, params_json,
    parse_attack_args, register_attack, resolve_params, seeded,
)

__all__ = [
    "AttackCfg", "AttackKind", "EpsGrid", "EpsUnit", "Norm", "Objective", "StandardLayout", "check_images", "create_attack", "eval_mode",
    "get_attack_cfg", "list_attacks", "params_json", "parse_attack_args", "parse_eps_grid", "register_attack",
    "resolve_params", "seeded",
]
