"""Across-seed statistics: what a study concludes about architectures, with the uncertainty that
training brings.

The unit of replication is the training run (seed), not the test image: a model-level McNemar
test says whether two *fixed* weight sets differ on these images, not whether the
*architectures* differ. So every architecture-level number here is a mean over seeds with a
95% t-interval across seeds, and every comparison is the difference of the two arms' means
with Welch's interval (the arms are independent trainings; seed k of one architecture has no
special relation to seed k of another). One number per curve, the normalised area under
accuracy-vs-eps, gives one verdict per attack and metric instead of one per eps. A study reports
many comparisons, so a verdict word is a claim only if it survives the family it belongs to
(:data:`~robust_attn.study_files.VERDICT_RULE`, applied by :func:`decide`): read off unadjusted
intervals, an architecture compared with itself over 5 seeds gets some per-eps "more/less robust"
in about a quarter of simulated studies with the shipped seeds' spread (``tests/test_verdicts.py``),
under the rule in under 5%. The within-seed McNemar view stays beside it (:func:`within_seed`).

Scipy and statsmodels compute; this module only arranges their output in tidy frames.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..results import CELL
from ..study_files import (
    ALPHA,
    AUC,
    EFFECT_COLUMNS,
    METRICS,
    MIN_SEEDS,
    PER_SEED_COLUMNS,
    STUDY_COLUMNS,
    WITHIN_SEED_COLUMNS,
    Verdict,
)

CONFIDENCE = 1 - ALPHA
_CURVE = ["attack", "attack_params", "metric"]
# One compared curve: a comparison (architecture against its baseline) on one attack curve and metric.
COMPARED_CURVE = ["architecture", "baseline", *_CURVE]
# Two members' outcomes on one image: every part of a cell's identity but the model, and the image.
PAIRED = [*(k for k in CELL if k != "model"), "index"]


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


def verdict(testable: bool, difference: float, p_adjusted: float) -> Verdict:
    """The word for one comparison (attention minus baseline): none without a test on at least
    MIN_SEEDS seeds per arm (``testable``, see :func:`tested`); a direction only where the p-value
    adjusted over its family is below ALPHA (NaN: not in a family, so no word). Welch's p < 0.05 is
    its 95% interval excluding 0, so the unadjusted interval never contradicts a word."""
    if not testable:
        return Verdict.TOO_FEW
    if math.isnan(p_adjusted):
        return Verdict.UNTESTED
    if p_adjusted < ALPHA:
        return Verdict.MORE if difference > 0 else Verdict.LESS
    return Verdict.NONE


WELCH_COLUMNS = ["difference", "ci_low", "ci_high", "test", "statistic", "df", "p_value"]


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float | str]:
    """Difference of means a - b with Welch's t interval and test; no test under 2 seeds per arm."""
    return welch_many([a], [b], confidence).iloc[0].to_dict()


def welch_many(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
               confidence: float = CONFIDENCE) -> pd.DataFrame:
    """:func:`welch` for many pairs of samples at once (WELCH_COLUMNS, one row per pair, in order):
    scipy tests every pair with the same seed counts in one vectorised call, which keeps a study's
    dozens of comparisons (and the simulations that check the verdict rule) fast. No test under 2
    seeds per arm, nor where neither arm shows any spread (no observed spread is not zero variance:
    t is undefined)."""
    from scipy import stats

    numbers = {c: np.full(len(a), math.nan) for c in ("ci_low", "ci_high", "statistic", "df", "p_value")}
    test = np.full(len(a), "none", dtype=object)
    shapes: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(zip(a, b)):
        shapes.setdefault((len(x), len(y)), []).append(i)
    for (n, m), rows in shapes.items():
        if n < 2 or m < 2:
            continue
        x, y = np.array([a[i] for i in rows], dtype=float), np.array([b[i] for i in rows], dtype=float)
        spread = (x.std(axis=1) > 0) | (y.std(axis=1) > 0)
        if not spread.any():
            continue
        res = stats.ttest_ind(x[spread], y[spread], axis=1, equal_var=False)
        low, high = res.confidence_interval(confidence)
        at = np.asarray(rows)[spread]
        for column, value in (("ci_low", low), ("ci_high", high), ("statistic", res.statistic), ("df", res.df),
                              ("p_value", res.pvalue)):
            numbers[column][at] = value
        test[at] = "welch-t"
    difference = [float(np.mean(x) - np.mean(y)) for x, y in zip(a, b)]
    return pd.DataFrame({"difference": difference, **numbers, "test": test}, columns=WELCH_COLUMNS)


def effects(seeds: pd.DataFrame, baselines: Mapping[str, str]) -> pd.DataFrame:
    """Each attention architecture against its baseline, per attack x metric x eps and per curve (auc):
    Welch's difference and test (:func:`comparisons`), then the adjusted p and the verdict words
    (:func:`decide`)."""
    return decide(comparisons(seeds, baselines))


def _samples(seeds: pd.DataFrame, architecture: str) -> dict[tuple, tuple[float, np.ndarray]]:
    """One architecture's per-seed values per key (in the order keys first appear): (eps, values)."""
    mine = seeds[seeds["architecture"] == architecture]
    eps, values = mine["eps"].to_numpy(float), mine["value"].to_numpy(float)
    groups = sorted(mine.groupby(_key_columns(), sort=False).indices.items(), key=lambda kv: kv[1][0])
    return {key: (float(eps[rows[0]]), values[rows]) for key, rows in groups}


def comparisons(seeds: pd.DataFrame, baselines: Mapping[str, str]) -> pd.DataFrame:
    """EFFECT_COLUMNS rows with the unadjusted Welch test of every key both arms have; ``p_holm`` and
    ``verdict`` are left for :func:`decide`."""
    rows, mine_values, their_values = [], [], []
    for arch, base in baselines.items():
        theirs = _samples(seeds, base)
        for key, (eps, a) in _samples(seeds, arch).items():
            if key not in theirs:
                continue
            b = theirs[key][1]
            rows.append({"architecture": arch, "baseline": base, **dict(zip(_key_columns(), key)), "eps": eps,
                         "n_seeds": len(a), "n_seeds_baseline": len(b), "mean": float(a.mean()),
                         "baseline_mean": float(b.mean()), "p_holm": math.nan, "verdict": ""})
            mine_values.append(a)
            their_values.append(b)
    tests = welch_many(mine_values, their_values)
    return pd.concat([pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c not in WELCH_COLUMNS]), tests],
                     axis=1)[EFFECT_COLUMNS]


def tested(frame: pd.DataFrame) -> pd.Series:
    """Rows that can carry a verdict word: a Welch test on at least MIN_SEEDS seeds per arm."""
    return (frame["n_seeds"] >= MIN_SEEDS) & (frame["n_seeds_baseline"] >= MIN_SEEDS) & frame["p_value"].notna()


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values over one family (statsmodels), in the same order."""
    from statsmodels.stats.multitest import multipletests

    p_values = np.asarray(p_values, dtype=float)
    return multipletests(p_values, method="holm")[1] if len(p_values) else p_values


def decide(frame: pd.DataFrame) -> pd.DataFrame:
    """``p_holm`` and ``verdict`` by VERDICT_RULE, a hierarchy of two Holm families: the curves (auc
    rows) of the whole study, then the per-eps rows of the curves whose verdict holds. Holm over
    every curve and not per metric: two curves at p = 0.017 among four do not make two verdicts.
    Per-eps rows of a curve without a verdict keep their unadjusted p as a number and get no word;
    so under no difference at all, a per-eps word needs a false curve verdict first, and the
    study's family-wise rate stays that of the curves."""
    p_value = frame["p_value"].to_numpy(float)
    p_holm = np.full(len(frame), math.nan)
    testable = tested(frame).to_numpy()
    curve = (frame["summary"] == AUC).to_numpy()
    first = curve & testable
    p_holm[first] = holm(p_value[first])
    curves = pd.MultiIndex.from_frame(frame[COMPARED_CURVE])
    second = ~curve & testable & curves.isin(curves[first & (p_holm < ALPHA)])
    p_holm[second] = holm(p_value[second])
    words = [verdict(t, d, p).value for t, d, p in zip(testable, frame["difference"], p_holm)]
    return frame.assign(p_holm=p_holm, verdict=words)


def mcnemar_p(correct: np.ndarray, baseline_correct: np.ndarray) -> float:
    """Exact McNemar p-value on paired per-example outcomes (same images, two models)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct, dtype=bool), np.asarray(baseline_correct, dtype=bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    return float(mcnemar(table, exact=True).pvalue)


def within_seed(examples: pd.DataFrame, members: pd.DataFrame, baselines: Mapping[str, str]) -> pd.DataFrame:
    """Per seed, each attention member against its baseline's member of the same seed: per-eps
    accuracy on the same images and the exact McNemar p (the fixed-weights view).

    ``examples``: the per-example rows of the cells to compare, and only those (a results folder
    may hold the same model under the same attack on another ``n`` or dataset: pass the asking
    command's cells). Two members are paired on the whole cell identity but the model and on the
    image index, one row each side, every image of the cell present; anything else is an error,
    never a silently wider join."""
    names = {(r.architecture, r.seed): r.model for r in members.itertuples()}
    rows = []
    by_model = {m: g for m, g in examples.groupby("model", sort=False)}
    for arch, base in baselines.items():
        for seed in sorted({s for a, s in names if a == arch}):
            mine, theirs = names.get((arch, seed)), names.get((base, seed))
            if mine not in by_model or theirs not in by_model:
                continue
            paired = by_model[mine].merge(by_model[theirs], on=PAIRED, suffixes=("", "_base"), validate="one_to_one")
            for key, g in paired.groupby(PAIRED[:-1], sort=False):
                cell = dict(zip(PAIRED[:-1], key))
                if len(g) != int(cell["n"]):
                    raise ValueError(f"{mine} and {theirs} share {len(g)} of the {cell['n']} images of "
                                     f"{cell['attack']} at eps {cell['eps_label']}")
                a, b = g["robust"].to_numpy(bool), g["robust_base"].to_numpy(bool)
                rows.append({"architecture": arch, "baseline": base, "seed": seed, "attack": cell["attack"],
                             "attack_params": cell["attack_params"], "metric": "accuracy", "eps": g["eps"].iloc[0],
                             "eps_label": cell["eps_label"], "accuracy": a.mean(), "baseline_accuracy": b.mean(),
                             "difference": a.mean() - b.mean(), "mcnemar_p": mcnemar_p(a, b)})
    frame = pd.DataFrame(rows, columns=WITHIN_SEED_COLUMNS)
    return frame.sort_values(["architecture", "attack", "seed", "eps"], ignore_index=True)
