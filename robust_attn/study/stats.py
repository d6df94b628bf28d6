"""Across-seed statistics: what a study concludes about architectures, with the uncertainty that
training brings.

The unit of replication is the training run (seed), not the test image: a model-level McNemar
test says whether two *fixed* weight sets differ on these images, not whether the
*architectures* differ. So every architecture-level number here is a mean over seeds with a
95% t-interval across seeds, and every comparison is the difference of the two arms' means
with Welch's interval (the arms are independent trainings; seed k of one architecture has no
special relation to seed k of another). Verdicts are read off that interval. One number per
curve, the normalised area under accuracy-vs-eps, gives one verdict per attack instead of one per
eps; those verdicts also carry Holm-adjusted p-values over the study's comparisons. The
within-seed McNemar view stays beside it (:func:`within_seed`).

Scipy and statsmodels compute; this module only arranges their output in tidy frames.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

from ..study_files import AUC, EFFECT_COLUMNS, METRICS, PER_SEED_COLUMNS, STUDY_COLUMNS, WITHIN_SEED_COLUMNS

CONFIDENCE = 0.95
_CURVE = ["attack", "attack_params", "metric"]


class Verdict(StrEnum):
    MORE = "more robust"
    LESS = "less robust"
    NONE = "no detectable difference"
    TOO_FEW = "too few seeds for a verdict"


def auc(eps: Sequence[float], values: Sequence[float]) -> float:
    """Normalised area under a value-vs-eps curve: the trapezoid-rule area divided by the eps range
    (the curve's average height over the range, the end points half-weighted), in the values' own
    units. Eps 0 is included, so clean accuracy counts in it. A one-point grid gives its value."""
    from scipy.integrate import trapezoid

    eps, values = np.asarray(eps, dtype=float), np.asarray(values, dtype=float)
    order = np.argsort(eps)
    eps, values = eps[order], values[order]
    span = eps[-1] - eps[0]
    return float(values[0]) if span == 0 else float(trapezoid(values, eps) / span)


def per_seed(results: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """One row per member x attack x metric x eps, plus one ``auc`` row per curve.

    ``results``: the study sweep's rows; ``members``: architecture, seed, model (the sweep's name).
    """
    # results carry their own ``architecture`` and ``seed`` (the sweep's): the member's come from ``members``
    rows = results.drop(columns=["architecture", "seed"]).merge(members[["architecture", "seed", "model"]],
                                                                on="model", how="inner")
    long = rows.melt(id_vars=["architecture", "seed", "model", "attack", "attack_params", "eps", "eps_label",
                              "clean_accuracy"], value_vars=list(METRICS), var_name="metric", value_name="value")
    long["summary"] = "eps"
    keys = ["architecture", "seed", "model", *_CURVE]
    areas = (long.groupby(keys, sort=False)
             .apply(lambda g: pd.Series({"value": auc(g["eps"], g["value"]),
                                         "clean_accuracy": g["clean_accuracy"].iloc[0]}), include_groups=False)
             .reset_index())
    areas["summary"], areas["eps"], areas["eps_label"] = AUC, math.nan, AUC
    out = pd.concat([long, areas], ignore_index=True)[PER_SEED_COLUMNS]
    return out.sort_values(["architecture", "attack", "metric", "summary", "eps", "seed"],
                           ignore_index=True, na_position="last")


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, std, low, high): the t-interval for the mean across seeds; NaN bounds under 2 seeds."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    if std == 0:
        return mean, 0.0, mean, mean
    low, high = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return mean, std, float(low), float(high)


def _key_columns() -> list[str]:
    return [*_CURVE, "summary", "eps_label"]


def study_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per architecture x attack x metric x eps (and auc): seeds, mean, std and 95% interval."""
    rows = []
    for (arch, *key), g in seeds.groupby(["architecture", *_key_columns()], sort=False):
        mean, std, low, high = mean_interval(g["value"])
        rows.append({"architecture": arch, **dict(zip(_key_columns(), key)), "eps": g["eps"].iloc[0],
                     "n_seeds": len(g), "mean": mean, "std": std, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


MIN_SEEDS = 3  # per arm: with 2, Welch's df is about 1 and the interval spans hundreds of points


def verdict(n: int, n_baseline: int, low: float, high: float) -> Verdict:
    """Read a verdict off the interval of the difference (attention minus baseline)."""
    if n < MIN_SEEDS or n_baseline < MIN_SEEDS or math.isnan(low) or math.isnan(high):
        return Verdict.TOO_FEW
    if low > 0:
        return Verdict.MORE
    if high < 0:
        return Verdict.LESS
    return Verdict.NONE


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float | str]:
    """Difference of means a - b with Welch's t interval and test; no test under 2 seeds per arm."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return {"difference": diff, "ci_low": math.nan, "ci_high": math.nan, "test": "none",
                "statistic": math.nan, "df": math.nan, "p_value": math.nan}
    if a.std() == 0 and b.std() == 0:  # no observed spread is not zero variance: t is undefined, no test
        return {"difference": diff, "ci_low": math.nan, "ci_high": math.nan, "test": "none",
                "statistic": math.nan, "df": math.nan, "p_value": math.nan}
    res = stats.ttest_ind(a, b, equal_var=False)
    low, high = res.confidence_interval(confidence)
    return {"difference": diff, "ci_low": float(low), "ci_high": float(high), "test": "welch-t",
            "statistic": float(res.statistic), "df": float(res.df), "p_value": float(res.pvalue)}


def effects(seeds: pd.DataFrame, baselines: Mapping[str, str]) -> pd.DataFrame:
    """Each attention architecture against its baseline, per attack x metric x eps and per curve (auc)."""
    rows = []
    for arch, base in baselines.items():
        mine, theirs = seeds[seeds["architecture"] == arch], seeds[seeds["architecture"] == base]
        baseline_curves = dict(iter(theirs.groupby(_key_columns(), sort=False)))
        for key, g in mine.groupby(_key_columns(), sort=False):
            other = baseline_curves.get(key)
            if other is None:
                continue
            test = welch(g["value"], other["value"])
            rows.append({"architecture": arch, "baseline": base, **dict(zip(_key_columns(), key)),
                         "eps": g["eps"].iloc[0], "n_seeds": len(g), "n_seeds_baseline": len(other),
                         "mean": float(g["value"].mean()), "baseline_mean": float(other["value"].mean()), **test,
                         "verdict": verdict(len(g), len(other), test["ci_low"], test["ci_high"]).value})
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    frame["p_holm"] = math.nan
    frame = holm(frame)
    # A curve's verdict must also survive Holm over the study's curves (Welch's p < 0.05 is the 95%
    # interval excluding 0; the same test, adjusted): otherwise two p = 0.03 curves would both read
    # "more robust" while Holm says neither is. Per-eps verdicts stay unadjusted (reports say so).
    weak = (frame["summary"] == AUC) & frame["verdict"].isin([Verdict.MORE, Verdict.LESS]) & ~(frame["p_holm"] < 0.05)
    frame.loc[weak, "verdict"] = Verdict.NONE.value
    return frame


def holm(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p-values over the curve-level (auc) comparisons of each metric."""
    from statsmodels.stats.multitest import multipletests

    out = frame.copy()
    for metric in out["metric"].unique():
        mask = (out["summary"] == AUC) & (out["metric"] == metric) & out["p_value"].notna()
        if mask.any():
            out.loc[mask, "p_holm"] = multipletests(out.loc[mask, "p_value"], method="holm")[1]
    return out


def mcnemar_p(correct: np.ndarray, baseline_correct: np.ndarray) -> float:
    """Exact McNemar p-value on paired per-example outcomes (same images, two models)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct, dtype=bool), np.asarray(baseline_correct, dtype=bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    return float(mcnemar(table, exact=True).pvalue)


def within_seed(examples: pd.DataFrame, members: pd.DataFrame, baselines: Mapping[str, str]) -> pd.DataFrame:
    """Per seed, each attention member against its baseline's member of the same seed: per-eps
    accuracy on the same images and the exact McNemar p (the fixed-weights view)."""
    names = {(r.architecture, r.seed): r.model for r in members.itertuples()}
    rows = []
    by_model = {m: g for m, g in examples.groupby("model", sort=False)}
    for arch, base in baselines.items():
        for seed in sorted({s for a, s in names if a == arch}):
            mine, theirs = names.get((arch, seed)), names.get((base, seed))
            if mine not in by_model or theirs not in by_model:
                continue
            paired = by_model[mine].merge(by_model[theirs], on=["attack", "attack_params", "eps_label", "index"],
                                          suffixes=("", "_base"))
            for (attack, params, label), g in paired.groupby(["attack", "attack_params", "eps_label"], sort=False):
                a, b = g["robust"].to_numpy(bool), g["robust_base"].to_numpy(bool)
                rows.append({"architecture": arch, "baseline": base, "seed": seed, "attack": attack,
                             "attack_params": params, "metric": "accuracy", "eps": g["eps"].iloc[0],
                             "eps_label": label, "accuracy": a.mean(), "baseline_accuracy": b.mean(),
                             "difference": a.mean() - b.mean(), "mcnemar_p": mcnemar_p(a, b)})
    frame = pd.DataFrame(rows, columns=WITHIN_SEED_COLUMNS)
    return frame.sort_values(["architecture", "attack", "seed", "eps"], ignore_index=True)
