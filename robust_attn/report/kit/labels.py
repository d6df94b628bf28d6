"""How every page keys and names what it shows: the keys of a curve, attack labels,
eps keys, and what an attack's recorded kind and objective say about a row.

Facts about attacks come from the columns a run writes into each row (``attack_kind``, ``objective``;
see :mod:`..legacy` for folders written before them), never from an attack's name.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

# One accuracy curve: a model on one evaluation set under one attack with one set of parameters.
# Two runs of an attack with different parameters are two curves, never one overwriting the other.
CURVE = ["model", "dataset", "n", "attack", "attack_params"]
# A model as evaluated (the curves of all attacks on it share the clean pass).
MODEL = ["model", "dataset", "n"]

# The values of the attack registry's AttackKind the report's checks read (written into every row).
SINGLE_STEP = "single-step"
ITERATIVE = "iterative"
NOISE = "noise"
# An attack that aims at the attention maps, not the label (the registry's ``objective="attention"``).
ATTENTION_OBJECTIVE = "attention"
# A common corruption: a natural shift on a severity grid that maximises nothing (``objective="natural"``).
NATURAL_OBJECTIVE = "natural"


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, type(None))) else f"{v:g}" if isinstance(v, float) else str(v)


def attack_labels(pairs: Iterable[tuple[str, str]],
                  defaults: Mapping[str, Mapping[str, Any]] | None = None) -> dict[tuple[str, str], str]:
    """A display label per (attack, attack_params JSON): the name, plus the parameters that tell
    runs of one attack apart, e.g. ``pgd (steps=20)``.

    Shown are the parameters whose values differ among the runs of that attack in the report and,
    where ``defaults`` knows the attack's registered defaults (a run log that records them), those
    that differ from the defaults. One run with default (or unknown) parameters is just the name.
    """
    by_attack: dict[str, list[str]] = {}
    for attack, params in dict.fromkeys(pairs):
        by_attack.setdefault(attack, []).append(params)
    labels = {}
    for attack, variants in by_attack.items():
        parsed = {p: _params(p) for p in variants}
        keys = sorted({k for d in parsed.values() for k in d})
        varying = {k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in parsed.values()}) > 1}
        base = dict((defaults or {}).get(attack, {}))
        for p, d in parsed.items():
            shown = [k for k in keys if k in d and (k in varying or (k in base and d[k] != base[k]))]
            extra = ", ".join(f"{k}={_value(d.get(k))}" for k in shown)
            labels[(attack, p)] = f"{attack} ({extra})" if extra else attack
    return labels


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text.strip() else {}
    except json.JSONDecodeError:
        return {"params": text}
    return value if isinstance(value, dict) else {"params": value}


def with_labels(frame: pd.DataFrame, defaults: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """``frame`` with an ``attack_label`` column."""
    labels = attack_labels(zip(frame["attack"], frame["attack_params"]), defaults)
    return frame.assign(attack_label=[labels[(a, p)] for a, p in zip(frame["attack"], frame["attack_params"])])


def eps_key(eps: float) -> float:
    """eps values from different grids compared as equal when they agree to 9 decimals."""
    return round(float(eps), 9)


def attention_objective(frame: pd.DataFrame) -> pd.Series:
    """Per row: does the attack aim at the attention maps rather than the label (``objective`` column
    ``attention``)? Such attacks keep labels by design: label-attack expectations (accuracy falls with
    eps, noise is weaker, large eps breaks everything) do not apply to them."""
    if "objective" not in frame.columns:
        return pd.Series(False, index=frame.index)
    objective = frame["objective"].astype("string").str.strip().str.lower()
    return (objective == ATTENTION_OBJECTIVE).fillna(False).astype(bool)


def natural_objective(frame: pd.DataFrame) -> pd.Series:
    """Per row: is it a common corruption's cell (``objective`` natural)? Its grid is a severity, not an eps:
    no label-attack expectation and no budget applies to it; severity 0 is the clean pass."""
    if "objective" not in frame.columns:
        return pd.Series(False, index=frame.index)
    objective = frame["objective"].astype("string").str.strip().str.lower()
    return (objective == NATURAL_OBJECTIVE).fillna(False).astype(bool)


def of_kind(frame: pd.DataFrame, kind: str) -> pd.Series:
    """Per row: is the attack of this recorded ``attack_kind``?"""
    return frame["attack_kind"].astype(str) == kind


__all__ = ["ATTENTION_OBJECTIVE", "NATURAL_OBJECTIVE", "CURVE", "ITERATIVE", "MODEL", "NOISE", "SINGLE_STEP", "attack_labels",
           "attention_objective", "eps_key", "natural_objective", "of_kind", "with_labels"]
