"""Which model a variant is compared with: decided from what the rows record, never from a name.

A variant is a model whose rows name a ``baseline`` architecture (the registry's ``ModelCfg.baseline``,
written by the run); its baseline model is the model of the same frame whose ``architecture`` is that
name and which agrees with it on the ``match`` columns (width, training data and threat model,
evaluation set...). More than one such model (seed replicas of the backbone) means no single baseline:
a page compares none of them rather than an arbitrary one.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def is_variant(baseline: pd.Series) -> pd.Series:
    """Per row: does the model name a baseline architecture (an attention, SE or CBAM variant)?"""
    text = baseline.astype("string").fillna("").str.strip()
    return (text != "") & (text.str.lower() != "nan")


def match_baselines(models: pd.DataFrame, key: Sequence[str], match: Sequence[str]) -> dict[tuple, list[str]]:
    """Per variant (its ``key`` values, e.g. model, dataset, n), the ``model`` names it can be compared
    with: ``architecture`` equal to its ``baseline`` and equal ``match`` values (those of ``match`` the
    frame has)."""
    match = [c for c in match if c in models.columns]
    rows = models.drop_duplicates(list(key))
    variant = is_variant(rows["baseline"])
    by_arch: dict[tuple, list[str]] = {}
    for r in rows.to_dict("records"):
        by_arch.setdefault((str(r["architecture"]), *(str(r[c]) for c in match)), []).append(str(r["model"]))
    return {tuple(r[k] for k in key): sorted(set(by_arch.get((str(r["baseline"]), *(str(r[c]) for c in match)), [])))
            for r in rows[variant].to_dict("records")}


__all__ = ["is_variant", "match_baselines"]
