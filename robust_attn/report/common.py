"""What every part of a report shares: the keys that identify a curve, attack labels, which models
are attention models, file-name slugs.

The report reads results folders only; nothing here imports the attack or sweep code.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

# One accuracy curve: a model on one evaluation set under one attack with one set of parameters.
# Two runs of an attack with different parameters are two curves, never one overwriting the other.
CURVE = ["model", "dataset", "n", "attack", "attack_params"]
# A model as evaluated (the curves of all attacks on it share the clean pass).
MODEL = ["model", "dataset", "n"]

SINGLE_STEP = ("fgsm",)
ITERATIVE_LINF = ("bim", "pgd", "apgd-ce", "apgd-dlr", "autoattack")
NOISE = {"Linf": "noise", "L2": "noise-l2"}
# The registered attacks whose strength does not depend on the scale of the cross-entropy gradient
# (the registry's ``ce_gradient=False`` attacks, random noise aside; a test keeps the two in step).
# The report names them when a check suggests gradient masking; it does not import the registry.
NON_CE_GRADIENT_ATTACKS = ("apgd-dlr", "square", "autoattack", "cw", "deepfool")


def slug(text: str) -> str:
    """A file-name-safe form of a user-controlled name (no path separators, no dots at the start)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "unnamed"


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
            shown = [k for k in keys if k in varying or (k in base and d.get(k) != base[k])]
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


# How the registry names attention variants of a backbone: the paper's block (``vgg-att3-concat-pc``),
# squeeze-and-excitation (``resnet-se``) and CBAM (``vgg-cbam``).
VARIANT_MARKERS = ("-att", "-se", "-cbam")
MAP_MARKERS = ("-att", "-cbam")  # those with spatial attention maps


def variant_family(architecture: str) -> str | None:
    """The backbone an attention variant's architecture belongs to (``vgg`` for ``vgg-att3-concat-pc``,
    ``resnet`` for ``resnet-se``), None for a backbone or a name outside that convention (a user's
    ``tiny-cnn`` is not a variant of ``tiny``). Results carry architectures, not registry entries:
    reports decide from the name."""
    arch = str(architecture)
    hits = [i for i in (_marker_at(arch, m) for m in VARIANT_MARKERS) if i is not None]
    if not hits:
        return None
    return arch[:min(hits)] or None


def _marker_at(arch: str, marker: str) -> int | None:
    """Where ``marker`` starts a dash-separated part of ``arch`` (``-se`` in ``resnet-se`` but not in
    ``resnet-sep``; ``-att`` also as the start of ``-att2``)."""
    i = arch.find(marker)
    while i >= 0:
        end = i + len(marker)
        if marker == "-att" or end == len(arch) or arch[end] == "-":
            return i
        i = arch.find(marker, i + 1)
    return None


def variant_models(frame: pd.DataFrame) -> set[str]:
    """Models whose architecture is an attention variant of a backbone (see :func:`variant_family`):
    the paper's block, SE and CBAM, maps or not."""
    return {m for m, a in zip(frame["model"], frame["architecture"]) if variant_family(a) is not None}


def attention_models(frame: pd.DataFrame, with_artifacts: Iterable[str] = ()) -> set[str]:
    """Models with spatial attention maps: those the sweep saved attention artifacts for (it does so
    for every model with maps, under every eps-bounded attack but noise) and, for sweeps that ran no
    such attack, those whose architecture names a mechanism with maps (the paper's ``-att...``, CBAM's
    ``-cbam``; squeeze-and-excitation's ``-se`` gates channels only). Decided from the results alone:
    no model registry, no checkpoint."""
    named = {m for m, a in zip(frame["model"], frame["architecture"].astype(str))
             if any(_marker_at(a, marker) is not None for marker in MAP_MARKERS)}
    return named | (set(with_artifacts) & set(frame["model"]))


def eps_key(eps: float) -> float:
    """eps values from different grids compared as equal when they agree to 9 decimals."""
    return round(float(eps), 9)


# An attack that aims at the attention maps, not the label (the registry's ``objective="attention"``).
ATTENTION_OBJECTIVE = "attention"
ATTENTION_ATTACKS = ("attention-shift",)  # by name, for results written before the ``objective`` column


def attention_objective(frame: pd.DataFrame) -> pd.Series:
    """Per row: does the attack aim at the attention maps rather than the label? From the results'
    ``objective`` column where a row has one (value ``attention``), else by the attack's name
    (``attention-shift``). Such attacks keep labels by design: label-attack expectations (accuracy
    falls with eps, noise is weaker, large eps breaks everything) do not apply to them."""
    by_name = frame["attack"].astype(str).isin(ATTENTION_ATTACKS)
    if "objective" not in frame.columns:
        return by_name
    objective = frame["objective"].astype("string").str.strip().str.lower()
    known = objective.notna() & (objective != "") & (objective != "nan")
    return (objective == ATTENTION_OBJECTIVE).fillna(False).astype(bool).where(known, by_name)


def absent(value: Any) -> bool:
    """None or NaN: a number that could not be computed (an interval with one seed, a test without pairs)."""
    return value is None or bool(pd.isna(value))


def render_page(template: str, context: Mapping[str, Any], missing_integer: str = "n/a", **extra: Any) -> str:
    """A page of the study or transfer report from its context: Jinja2, autoescaped (model names and
    commands are user-controlled), with the number filters both pages use."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("robust_attn.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "n/a" if absent(v) else f"{100 * v:.1f}"
    env.filters["points"] = lambda v: "n/a" if absent(v) else f"{100 * v:+.1f}"
    env.filters["pval"] = lambda v: "n/a" if absent(v) else (f"{v:.2g}" if v >= 1e-4 else "< 1e-4")
    env.filters["integer"] = lambda v: missing_integer if absent(v) else str(int(v))
    return env.get_template(template).render(**context, **extra)
