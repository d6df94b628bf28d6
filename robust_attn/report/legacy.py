"""The one fallback path for results written by robust-attn 0.3: rows that do not describe themselves.

Since 0.4 a run writes, beside every result row, the facts a report needs about its model and attack
(``model_family``, ``baseline``, ``attention_maps``, ``training_threat_model``, ``model_args``,
``attack_kind``, ``ce_gradient``; in ``transfer.csv`` the same per end, ``source_*`` and ``target_*``, with
``trained_on`` and ``training_seed``), and each run log
start record carries the ``attack_catalog`` of every attack registered when it ran. A folder written by
0.3 has none of these: :mod:`robust_attn.results`' readers return them unknown (``UNKNOWN``; booleans
NA). The report calls the ``describe_*`` functions here right after reading, and they fill every unknown
value, row by row (a folder may mix 0.3 cells with new ones), from the rules 0.3's report used: the
registry's naming of architectures (a variant is ``FAMILY-att...``, ``FAMILY-se`` or ``FAMILY-cbam``;
model names read ``ARCH_SUFFIX`` in a transfer folder) and 0.3's attack catalog. Values a row recorded
are never touched, so nothing downstream knows whether a row was described by its run or here. Nothing
else in the report reads a name for a fact.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..results import MODEL_FACTS, STANDARD_TRAINING, TRANSFER_ENDS, TRANSFER_MODEL_FACTS, UNKNOWN

# The columns a 0.4 results.csv has and a 0.3 one lacks, and what each holds for a row the rules cannot place.
RESULT_DESCRIPTION: dict[str, Any] = {"model_family": "", "baseline": "", "attention_maps": "none",
                                      "training_threat_model": "standard", "model_args": UNKNOWN, "attack_kind": "",
                                      "ce_gradient": False}

# 0.3's attack registry as a run log's ``attack_catalog`` records it.
_CATALOG_FIELDS = ("kind", "norm", "eps_bounded", "uses_gradient", "ce_gradient", "objective")
LEGACY_CATALOG: dict[str, dict[str, Any]] = {
    name: dict(zip(_CATALOG_FIELDS, values)) for name, values in {
        "apgd-ce": ("iterative", "Linf", True, True, True, "misclassify"),
        "apgd-dlr": ("iterative", "Linf", True, True, False, "misclassify"),
        "attention-shift": ("iterative", "Linf", True, True, False, "attention"),
        "autoattack": ("iterative", "Linf", True, True, False, "misclassify"),
        "bim": ("iterative", "Linf", True, True, True, "misclassify"),
        "cw": ("minimal-perturbation", "L2", False, True, False, "misclassify"),
        "deepfool": ("minimal-perturbation", "L2", False, True, False, "misclassify"),
        "fgsm": ("single-step", "Linf", True, True, True, "misclassify"),
        "noise": ("noise", "Linf", True, False, False, "misclassify"),
        "noise-l2": ("noise", "L2", True, False, False, "misclassify"),
        "pgd": ("iterative", "Linf", True, True, True, "misclassify"),
        "pgd-l2": ("iterative", "L2", True, True, True, "misclassify"),
        "square": ("score-based", "Linf", True, False, False, "misclassify"),
    }.items()}

# How 0.3's registry named attention variants of a backbone: the paper's block (``vgg-att3-concat-pc``),
# squeeze-and-excitation (``resnet-se``) and CBAM (``vgg-cbam``); those with spatial maps, and which kind.
VARIANT_MARKERS = ("-att", "-se", "-cbam")
MAP_MARKERS = {"-att": "distribution", "-cbam": "gate"}


# ------------------------------------------------------------------ the name rules

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


def variant_family(architecture: str) -> str | None:
    """The backbone an attention variant's architecture belongs to (``vgg`` for ``vgg-att3-concat-pc``,
    ``resnet`` for ``resnet-se``), None for a backbone or a name outside that convention (a user's
    ``tiny-cnn`` is not a variant of ``tiny``)."""
    arch = str(architecture)
    hits = [i for i in (_marker_at(arch, m) for m in VARIANT_MARKERS) if i is not None]
    return (arch[:min(hits)] or None) if hits else None


def attention_maps(architecture: str) -> str:
    """``distribution`` (the paper's block), ``gate`` (CBAM) or ``none``, from the architecture's name."""
    arch = str(architecture)
    for marker, maps in MAP_MARKERS.items():
        if _marker_at(arch, marker) is not None:
            return maps
    return "none"


def split_name(name: str) -> tuple[str, str]:
    """``(architecture, suffix)`` of a 0.3 transfer model name ``ARCH_SUFFIX`` (suffix '' when there is no '_')."""
    arch, _, suffix = str(name).partition("_")
    return arch, suffix


def is_attention(name: str) -> bool:
    """A 0.3 transfer model name whose architecture part is an attention variant."""
    return variant_family(split_name(name)[0]) is not None


def baseline_name(name: str) -> str | None:
    """The name 0.3's transfer report paired an attention model with: ``FAMILY_SUFFIX``; None for other
    models and for a name without a suffix (no training data to match)."""
    arch, suffix = split_name(name)
    family = variant_family(arch)
    return f"{family}_{suffix}" if family and suffix else None


def describe_architecture(architecture: str) -> dict[str, str]:
    """The facts a 0.4 run records about a model, as 0.3's rules read them from its architecture."""
    arch = str(architecture)
    family = variant_family(arch)
    return {"model_family": family or arch, "baseline": family or "", "attention_maps": attention_maps(arch),
            "training_threat_model": STANDARD_TRAINING, "model_args": UNKNOWN}


# ------------------------------------------------------------------ filling frames and run records

def _catalog_value(attacks: Iterable[str], key: str, missing: Any) -> list[Any]:
    return [LEGACY_CATALOG.get(str(a), {}).get(key, missing) for a in attacks]


def _unknown(values: pd.Series) -> pd.Series:
    """Per value: not recorded (NA, or the empty text a reader gives a column its file lacks, ``UNKNOWN``)."""
    return values.isna() | (values.astype(str).str.strip() == UNKNOWN)


def _column(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]``, or an all-unknown column where the frame lacks it (a folder written by 0.3)."""
    return frame[column] if column in frame.columns else pd.Series(pd.NA, index=frame.index, dtype=object)


def _fill(frame: pd.DataFrame, column: str, where: pd.Series, values: Iterable[Any]) -> None:
    """Set ``column`` to ``values`` (one per row) in the rows ``where`` holds, leaving the other rows as they are."""
    filled = _column(frame, column).astype(object).copy()
    filled[where] = pd.Series(list(values), index=frame.index, dtype=object)[where]
    frame[column] = filled


def describe_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Result rows with every description column, each row described: rows that recorded their model's
    facts (a known ``model_family``) and their attack's (a known ``attack_kind``) as they are, the others
    filled by 0.3's rules, row by row, so a folder mixing 0.3 cells with new ones describes every row. An
    unknown ``baseline`` cannot be told from a backbone's empty one, so a row's model facts are unknown
    together, when its ``model_family`` is. An attack 0.3 did not know gets no kind (no sanity check
    compares it); an absent or empty ``objective`` (results older than that column) is read from the
    catalog too."""
    out = frame.copy()
    architectures = _column(out, "architecture").fillna("").astype(str)
    model_unknown = _unknown(_column(out, "model_family"))
    if model_unknown.any():
        described = [describe_architecture(a) for a in architectures]
        for column in MODEL_FACTS:
            _fill(out, column, model_unknown, (d[column] for d in described))
    attacks = out["attack"].astype(str)
    kind_unknown = _unknown(_column(out, "attack_kind"))
    _fill(out, "attack_kind", kind_unknown, _catalog_value(attacks, "kind", RESULT_DESCRIPTION["attack_kind"]))
    _fill(out, "ce_gradient", kind_unknown | _unknown(_column(out, "ce_gradient")),
          _catalog_value(attacks, "ce_gradient", RESULT_DESCRIPTION["ce_gradient"]))
    by_name = pd.Series(_catalog_value(attacks, "objective", "misclassify"), index=out.index, dtype="string")
    if "objective" not in out.columns:
        out["objective"] = by_name.astype(str)
    else:
        objective = out["objective"].astype("string").str.strip()
        missing = objective.isna() | (objective == "") | (objective.str.lower() == "nan")
        if missing.any():
            out["objective"] = objective.where(~missing, by_name).astype(str)
    for column in MODEL_FACTS:  # a 0.4 folder written before a column existed lacks it: unknown
        out[column] = _column(out, column).fillna(UNKNOWN).astype(str)
    out["attack_kind"] = out["attack_kind"].astype(str)
    out["ce_gradient"] = out["ce_gradient"].map(_truthy).astype(bool)
    return out


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def describe_transfer(cells: pd.DataFrame) -> pd.DataFrame:
    """Transfer cells with ``source_*``/``target_*`` model descriptions and ``attack_kind``/``ce_gradient``,
    each row described: an end whose ``architecture`` is unknown (a 0.3 row) gets every fact from 0.3's
    naming of transfer models, ``ARCH_SUFFIX`` (the suffix names training data and seed, so it stands in
    for ``trained_on``: ``vgg-att3-concat-pc_c10s_seed1`` pairs with ``vgg_c10s_seed1`` and no other; a
    name without a suffix matches nothing; ``training_seed`` and ``model_args`` stay unknown, matching
    anything); other unknown facts of a described end stay empty (an empty ``trained_on``,
    ``training_seed`` or ``model_args`` matches everything)."""
    out = cells.copy()
    for role in TRANSFER_ENDS:
        names = out[role].astype(str)
        written_by_0_3 = _unknown(_column(out, f"{role}_architecture"))
        architectures = [split_name(n)[0] for n in names]
        described = [describe_architecture(a) for a in architectures]
        for column in TRANSFER_MODEL_FACTS:
            if column == "architecture":
                values: list[Any] = architectures
            elif column == "trained_on":
                values = [split_name(n)[1] or n for n in names]
            elif column == "training_seed":  # 0.3 never recorded it: the suffix (trained_on) pairs replicas
                values = [UNKNOWN] * len(names)
            else:
                values = [d["model_family" if column == "family" else column] for d in described]
            _fill(out, f"{role}_{column}", written_by_0_3, values)
            out[f"{role}_{column}"] = out[f"{role}_{column}"].fillna("").astype(str)
    attacks = out["attack"].astype(str)
    kind_unknown = _unknown(_column(out, "attack_kind"))
    _fill(out, "attack_kind", kind_unknown, _catalog_value(attacks, "kind", ""))
    _fill(out, "ce_gradient", kind_unknown | _unknown(_column(out, "ce_gradient")),
          _catalog_value(attacks, "ce_gradient", False))
    out["attack_kind"] = out["attack_kind"].astype(str)
    out["ce_gradient"] = out["ce_gradient"].map(_truthy).astype(bool)
    return out


def describe_catalog(start: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A run log start record's ``attack_catalog``; 0.3's catalog for a record written before it existed."""
    catalog = start.get("attack_catalog")
    if isinstance(catalog, Mapping):
        return {str(k): dict(v) for k, v in catalog.items() if isinstance(v, Mapping)}
    return {k: dict(v) for k, v in LEGACY_CATALOG.items()}


__all__ = ["LEGACY_CATALOG", "RESULT_DESCRIPTION", "baseline_name", "describe_catalog", "describe_results",
           "describe_transfer", "is_attention", "split_name", "variant_family"]
