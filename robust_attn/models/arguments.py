"""Model arguments: the options particular to one architecture (a ResNet's ``depth``), the timm way.

An architecture declares them with their defaults in :attr:`ModelCfg.model_args`; ``create_model``
takes them as keywords and hands them to the builder. Everything between the user and the builder
(command line, study files, training, checkpoints) carries them as one generic mapping, so a new
family's options need no new parameter anywhere. A declared default's type is the argument's type:
values from Python or TOML must have it (an ``int`` argument refuses ``20.0``, ``True`` and
``"20"``); text from the command line (``--model-arg depth=56``) is parsed to it.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..key_values import parse_bool
from .config import ModelCfg

# ``create_model``'s own parameters (and the metadata keys that name a model): no model argument may take these names.
RESERVED = frozenset({"name", "architecture", "width", "num_classes", "in_channels", "mean", "std", "model_args"})

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def unknown_model_arg(cfg: ModelCfg, key: str) -> UserError:
    """The one-line error for an argument ``cfg`` does not declare, naming the ones it does (and a close match)."""
    accepted = sorted(cfg.model_args)
    if not accepted:
        return UserError(f"{cfg.name} takes no {key} (it has no model arguments)")
    close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UserError(f"{cfg.name} takes no {key}{hint} (its model arguments: {', '.join(accepted)})")


def _typed(cfg: ModelCfg, key: str, value: Any) -> Any:
    """``value`` if it has the declared default's type (an int is a valid float), else a one-line error."""
    kind = type(cfg.model_args[key])
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise UserError(f"{cfg.name}: {key} must be {_TYPE_WORDS.get(kind, kind.__name__)}, got {value!r}")


def resolve_model_args(cfg: ModelCfg, given: Mapping[str, Any]) -> dict[str, Any]:
    """The declared defaults with ``given`` applied and type-checked, in declaration order. A ``None``
    value means the default (as in timm), so callers can pass an unset option through unchanged."""
    args = dict(cfg.model_args)
    for key, value in given.items():
        if value is None:
            continue
        if key not in cfg.model_args:
            raise unknown_model_arg(cfg, key)
        args[key] = _typed(cfg, key, value)
    return args


def _from_text(cfg: ModelCfg, key: str, text: str) -> Any:
    kind = type(cfg.model_args[key])
    try:
        return parse_bool(text) if kind is bool else kind(text)
    except ValueError:
        pass
    raise UserError(f"{cfg.name}: {key} must be {_TYPE_WORDS.get(kind, kind.__name__)}, got {text!r}")


def parse_model_args(cfg: ModelCfg, text: Mapping[str, str]) -> dict[str, Any]:
    """Command-line values (``{"depth": "56"}``) typed as ``cfg`` declares them; an unknown name is an error."""
    for key in text:
        if key not in cfg.model_args:
            raise unknown_model_arg(cfg, key)
    return {key: _from_text(cfg, key, value) for key, value in text.items()}


def check_declaration(cfg: ModelCfg) -> None:
    """Refuse (at registration) a declaration whose names clash with ``create_model``'s own parameters
    or whose defaults are not plain values a checkpoint can record."""
    for key, default in cfg.model_args.items():
        if key in RESERVED or not key.isidentifier():
            raise ValueError(f"{cfg.name}: {key!r} cannot be a model argument (reserved: {', '.join(sorted(RESERVED))})")
        if type(default) not in _TYPE_WORDS:
            raise ValueError(f"{cfg.name}: model argument {key!r} needs a bool, int, float or str default, got {default!r}")
