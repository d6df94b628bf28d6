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


def _unknown(value: object) -> bool:
    """A value a row did not record (NA or empty text): it matches every value."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value) or str(value).strip() == ""


def match_baselines(models: pd.DataFrame, key: Sequence[str], match: Sequence[str]) -> dict[tuple, list[str]]:
    """Per variant (its ``key`` values, e.g. model, dataset, n), the ``model`` names it can be compared
    with: ``architecture`` equal to its ``baseline`` and equal ``match`` values (those of ``match`` the
    frame has; a value unknown on either side matches, so a row that did not record its training data
    pairs as it did before it could)."""
    match = [c for c in match if c in models.columns]
    rows = models.drop_duplicates(list(key))
    records = rows.to_dict("records")

    def alike(variant: dict, other: dict) -> bool:
        return str(other["architecture"]) == str(variant["baseline"]) and all(
            _unknown(variant[c]) or _unknown(other[c]) or str(variant[c]) == str(other[c]) for c in match)
    return {tuple(v[k] for k in key): sorted({str(r["model"]) for r in records if alike(v, r)})
            for v, is_v in zip(records, is_variant(rows["baseline"])) if is_v}


__all__ = ["is_variant", "match_baselines"]
