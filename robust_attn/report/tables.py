"""The report's tables: the summary (per-eps accuracy with the worst-case envelope beside it, per
attack and across attacks), attention models against their baselines, and their HTML forms.

Two numbers per cell, named as in results.csv:

* ``accuracy``: the attack run at that eps alone (what torchattacks, foolbox and the paper report);
* ``worst_case_accuracy``: robust to the attack at every eps' <= eps of the grid (an envelope).

The worst case across attacks (AutoAttack's per-point worst case) counts a point robust at eps
only if it is robust under every attack of that norm that ran on the model at that eps: its
``accuracy`` is the AND of the attacks' per-eps outcomes, its ``worst_case_accuracy`` the AND of their
envelopes. It needs per-example outcomes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..results import wilson_interval
from .kit.labels import CURVE, MODEL, eps_key
from .kit.pairing import match_baselines
from .kit.stats import discordant, mcnemar_exact

ACROSS = "across attacks"
SUMMARY_COLUMNS = ["source", "model", "architecture", "width", "trained_on", "training_threat_model", "dataset", "n",
                   "attack", "attack_params",
                   "attack_label", "norm", "eps", "eps_label", "clean_accuracy", "n_correct", "accuracy", "ci_low",
                   "ci_high", "worst_case_n_correct", "worst_case_accuracy", "worst_case_ci_low", "worst_case_ci_high",
                   "accuracy_method"]


def across_attacks(frame: pd.DataFrame, examples: pd.DataFrame | None) -> pd.DataFrame:
    """Rows (SUMMARY_COLUMNS) of the worst case over the attacks of one norm on one model, at every eps
    where two or more attack curves have complete per-example outcomes."""
    if examples is None or examples.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    outcomes = {}
    for key, g in examples.groupby([*CURVE, "eps_label"], sort=False):
        g = g.sort_values("index")
        if len(g) == int(key[2]) and g["index"].is_unique:
            outcomes[tuple(map(str, key))] = (g["robust"].to_numpy().astype(bool),
                                              g["worst_case_robust"].to_numpy().astype(bool))
    rows = []
    keyed = frame.assign(eps_k=frame["eps"].map(eps_key))
    for (model, dataset, n, norm), group in keyed.groupby([*MODEL, "norm"], sort=True):
        have = [r for r in group.itertuples()
                if tuple(map(str, (r.model, r.dataset, r.n, r.attack, r.attack_params, r.eps_label))) in outcomes]
        first = group.iloc[0]
        by_eps: dict[float, list] = {}
        for r in have:
            by_eps.setdefault(r.eps_k, []).append(r)
        for cells in (by_eps[e] for e in sorted(by_eps)):
            if len(cells) < 2:
                continue
            # labelled by the attacks that ran at this eps: a grid point where fewer ran is another curve
            label = "worst case over " + "+".join(sorted(c.attack_label for c in cells))
            per_eps = np.logical_and.reduce([outcomes[_key(c)][0] for c in cells])
            worst = np.logical_and.reduce([outcomes[_key(c)][1] for c in cells])
            k, w, total = int(per_eps.sum()), int(worst.sum()), int(n)
            lo, hi = wilson_interval(k, total)
            wlo, whi = wilson_interval(w, total)
            rows.append({"source": ACROSS, "model": model, "architecture": first.architecture, "width": first.width,
                         "trained_on": first.trained_on, "training_threat_model": first.training_threat_model,
                         "dataset": dataset, "n": total, "attack": label,
                         "attack_params": "", "attack_label": label, "norm": norm, "eps": cells[0].eps,
                         "eps_label": cells[0].eps_label, "clean_accuracy": first.clean_accuracy, "n_correct": k,
                         "accuracy": k / total, "ci_low": lo, "ci_high": hi, "worst_case_n_correct": w,
                         "worst_case_accuracy": w / total, "worst_case_ci_low": wlo, "worst_case_ci_high": whi,
                         "accuracy_method": "per-point worst case"})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _key(r) -> tuple[str, ...]:
    return tuple(map(str, (r.model, r.dataset, r.n, r.attack, r.attack_params, r.eps_label)))


def summary_table(frame: pd.DataFrame, across: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy summary: one row per (model, attack or worst case across attacks, eps), both numbers with
    their Wilson 95% intervals, numeric columns."""
    own = frame.assign(source="attack")[SUMMARY_COLUMNS]
    parts = [own] + ([across[SUMMARY_COLUMNS]] if across is not None and len(across) else [])
    out = pd.concat(parts, ignore_index=True)
    out["_across"] = out["source"] == ACROSS
    out = out.sort_values(["model", "dataset", "n", "norm", "_across", "attack_label", "eps"], kind="stable")
    return out.drop(columns="_across").reset_index(drop=True)


DIFF_COLUMNS = ["model", "baseline", "attack", "attack_params", "attack_label", "attack_kind", "norm", "eps", "eps_label",
                "accuracy",
                "baseline_accuracy", "difference", "mcnemar_p", "worst_case_accuracy", "baseline_worst_case_accuracy",
                "dataset", "n"]


# What makes a model the baseline of a variant model besides its architecture (the variant's recorded
# ``baseline``): the same width, training data, model arguments (a depth-8 variant is no match for a
# depth-20 backbone; a row that did not record them, as 0.3's, matches any), training threat model and
# evaluation. No training seed: seed replicas of a backbone are deliberately ambiguous on this page.
BASELINE_MATCH = ["width", "trained_on", "model_args", "dataset", "n"]


def baseline_candidates(frame: pd.DataFrame) -> dict[tuple, list[str]]:
    """Per variant model as evaluated (model, dataset, n), the models it can be compared with: those whose
    architecture is its recorded ``baseline``, at the same BASELINE_MATCH and training threat model (see
    :mod:`.kit.pairing`). More than one (a folder holding seed replicas of the backbone) means no single
    baseline: the report compares none of them rather than an arbitrary one."""
    return match_baselines(frame, MODEL, [*BASELINE_MATCH, "training_threat_model"])


def ambiguous_baselines(frame: pd.DataFrame) -> dict[tuple, list[str]]:
    """The variant models (model, dataset, n) with more than one candidate baseline."""
    return {k: v for k, v in baseline_candidates(frame).items() if len(v) > 1}


def attention_vs_baseline(frame: pd.DataFrame, examples: pd.DataFrame | None, attention: set[str]) -> pd.DataFrame:
    """Per variant model (attention, SE, CBAM: any model whose rows record a baseline architecture), attack
    (with its parameters) and eps: per-eps accuracy minus its baseline model's (same width, training and
    evaluation data, see :func:`baseline_candidates`), with the exact
    McNemar p-value on the paired per-eps outcomes of the same images when per-example results exist.
    A variant with several candidate baselines (:func:`ambiguous_baselines`) gets no rows. ``attention``
    is kept for callers; every variant is compared."""
    correct = {} if examples is None else {
        tuple(map(str, key)): pd.Series(g["robust"].to_numpy().astype(bool), index=g["index"].to_numpy())
        for key, g in examples.groupby([*CURVE, "eps_label"], sort=False)
    }
    baselines = {k: v[0] for k, v in baseline_candidates(frame).items() if len(v) == 1}
    keyed = frame.assign(eps_k=frame["eps"].map(eps_key))
    cells = {k: g.iloc[0] for k, g in keyed.groupby(["model", "dataset", "n", "attack", "attack_params", "eps_k"])}
    rows = []
    for r in keyed.itertuples():
        baseline = baselines.get((r.model, r.dataset, r.n))
        b = None if baseline is None else cells.get((baseline, r.dataset, r.n, r.attack, r.attack_params, r.eps_k))
        if b is None:
            continue
        p = float("nan")
        att = correct.get(tuple(map(str, (r.model, r.dataset, r.n, r.attack, r.attack_params, r.eps_label))))
        bas = correct.get(tuple(map(str, (b.model, b.dataset, b.n, r.attack, r.attack_params, b.eps_label))))
        if att is not None and bas is not None:
            paired = pd.concat({"att": att, "base": bas}, axis=1, join="inner")
            if len(paired) == r.n:
                p = mcnemar_exact(*discordant(paired["base"].to_numpy(), paired["att"].to_numpy()))
        rows.append({"model": r.model, "baseline": b.model, "attack": r.attack, "attack_params": r.attack_params,
                     "attack_label": r.attack_label, "attack_kind": r.attack_kind, "norm": r.norm, "eps": r.eps,
                     "eps_label": r.eps_label,
                     "accuracy": r.accuracy, "baseline_accuracy": b.accuracy, "difference": r.accuracy - b.accuracy,
                     "mcnemar_p": p, "worst_case_accuracy": r.worst_case_accuracy,
                     "baseline_worst_case_accuracy": b.worst_case_accuracy, "dataset": r.dataset, "n": r.n})
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)


def shown_models(diffs: pd.DataFrame) -> pd.DataFrame:
    """``diffs`` with each model named as the page shows it: ``model (dataset, n=N)`` where the rows
    span several evaluations (one model on two ``n`` is two comparisons), else the bare name."""
    if diffs[["dataset", "n"]].drop_duplicates().shape[0] <= 1:
        return diffs
    return diffs.assign(model=[f"{m} ({d}, n={n})" for m, d, n in zip(diffs["model"], diffs["dataset"], diffs["n"])])


# What makes numbers comparable in one summary table (where "best" means something): one evaluation set
# (a CIFAR-10 model is never "best" against a Fashion-MNIST one) and one training threat model.
COMPARABLE = ["dataset", "n", "training_threat_model"]


def html_tables(summary: pd.DataFrame, attention: set[str]) -> list[dict[str, Any]]:
    """Per attack label (per-attack curves first, then the worst cases across attacks) and per COMPARABLE
    group (evaluation set, training threat model): rows of models, per eps the per-eps accuracy with its
    interval (best per eps within the table flagged) and the worst case beside it."""
    tables = []
    order = summary.drop_duplicates("attack_label")[["attack_label", "source", "norm"]]
    order = order.sort_values(["source", "norm", "attack_label"], key=lambda c: c.map({"attack": 0}).fillna(1)
                              if c.name == "source" else c, kind="stable")
    groups = summary[COMPARABLE].astype(str).drop_duplicates()
    several_threats = summary["training_threat_model"].astype(str).nunique() > 1
    for label, source in zip(order["attack_label"], order["source"]):
        of_label = summary[summary["attack_label"] == label]
        for dataset, n, threat in groups.itertuples(index=False):
            rows = of_label[(of_label["dataset"].astype(str) == dataset) & (of_label["n"].astype(str) == n)
                            & (of_label["training_threat_model"].astype(str) == threat)].sort_values("eps")
            if rows.empty:
                continue
            labels = rows.drop_duplicates("eps_label")["eps_label"].tolist()
            best = rows.groupby("eps_label")["accuracy"].max()
            body = []
            for model, r in rows.groupby("model", sort=True):
                by = {x.eps_label: x for x in r.itertuples()}
                cells = []
                for lab in labels:
                    x = by.get(lab)
                    cells.append(None if x is None else {
                        "text": f"{100 * x.accuracy:.1f}", "ci": f"[{100 * x.ci_low:.1f}, {100 * x.ci_high:.1f}]",
                        "worst": f"{100 * x.worst_case_accuracy:.1f}",
                        "same": bool(np.isclose(x.accuracy, x.worst_case_accuracy)),
                        "best": len(r) > 0 and rows["model"].nunique() > 1 and bool(np.isclose(x.accuracy, best[lab]))})
                body.append({"model": model, "attention": model in attention, "cells": cells})
            where = f"{dataset}, n={n}" + (f", trained {threat}" if several_threats else "")
            tables.append({"attack": label, "where": where, "across": source == ACROSS, "labels": labels, "rows": body,
                           "methods": sorted(set(rows["accuracy_method"]))})
    return tables
