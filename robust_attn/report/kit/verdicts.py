"""Verdict words for a page's paired per-eps comparisons: did attention change robustness, and where?

A sweep (and a transfer) evaluates one trained model per architecture, so its verdict is about those
weights on these images: a variant against its baseline model at each eps, an exact McNemar test on the
paired per-image outcomes (the sweep page's :func:`..tables.attention_vs_baseline`, the transfer page's
asymmetry rows). The words are the study's (:class:`~robust_attn.study_files.Verdict`) under the same kind
of multiplicity control: one Holm family over every such per-eps comparison on the page (eps > 0; eps 0 is
clean accuracy, not robustness), at a family-wise ``ALPHA``, so that when no variant differs from its
baseline the chance of any "more robust" or "less robust" anywhere on the page is at most 5%. Whether the
architectures differ, beyond one training seed each, is a study's question.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...study_files import ALPHA, Verdict
from .labels import NOISE
from .stats import holm

SWEEP_VERDICT_RULE = (
    f"A verdict word needs a Holm-adjusted p < {ALPHA:g} in one family: every per-eps comparison (eps > 0, under "
    "an attack: random noise has no verdict) of a variant with its baseline model on this page, each an exact McNemar test on the paired per-image outcomes, so "
    f"that when no variant differs from its baseline the chance of any \"more robust\" or \"less robust\" on the page "
    f"is at most {ALPHA:.0%}. These are the weights evaluated here, one training seed per architecture: whether the "
    "architectures differ is what a study (several seeds) answers."
)


def decide(diffs: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """``diffs`` (one row per comparison and eps: ``eps``, ``difference``, ``mcnemar_p``) with ``p_holm`` and
    ``verdict``: the family is every row with eps > 0 and a McNemar p whose attack is not random noise (an
    ``attack_kind`` of ``noise``); rows outside it (eps 0, no per-image outcomes, noise) get no word
    (``Verdict.UNTESTED``)."""
    frame = diffs.reset_index(drop=True)
    p = pd.to_numeric(frame["mcnemar_p"], errors="coerce").to_numpy(dtype=float)
    tested = np.isfinite(p) & (frame["eps"].astype(float).to_numpy() > 0)
    if "attack_kind" in frame.columns:  # random noise is a baseline for the attacks, not adversarial robustness
        tested &= (frame["attack_kind"].astype(str) != NOISE).to_numpy()
    p_holm = np.full(len(frame), math.nan)
    reject = np.zeros(len(frame), dtype=bool)
    if tested.any():
        rejected, adjusted = holm(list(p[tested]), alpha)
        p_holm[tested], reject[tested] = adjusted, rejected
    words = [Verdict.UNTESTED if not t else Verdict.NONE if not r else Verdict.MORE if d > 0 else Verdict.LESS
             for t, r, d in zip(tested, reject, frame["difference"].astype(float))]
    return frame.assign(p_holm=p_holm, verdict=[w.value for w in words])


@dataclass(frozen=True)
class Finding:
    """One variant's verdict on one curve: where it differs from its baseline, and the largest difference."""

    model: str
    verdict: Verdict
    eps: str  # the eps labels where the verdict holds, as ranges of the grid ("1/255-3/255, 5/255")
    largest: float  # the largest difference (accuracy points, signed) among them
    largest_at: str


@dataclass(frozen=True)
class Answer:
    """The verdict sentence of one evaluation set, backbone (baseline model) and attack."""

    dataset: str
    n: int
    baseline: str
    architecture: str
    attack: str
    findings: tuple[Finding, ...]  # the variants with a verdict word, "more" before "less"
    no_difference: tuple[str, ...]  # the variants tested without a verdict word
    untested: tuple[str, ...]  # the variants without per-image outcomes (no test)


def eps_ranges(shown: Sequence[str], grid: Sequence[str]) -> str:
    """``shown`` eps labels written as runs of consecutive ``grid`` points: '1/255-3/255, 6/255'."""
    position = {label: i for i, label in enumerate(grid)}
    runs: list[list[str]] = []
    for label in sorted(shown, key=position.__getitem__):
        if runs and position[label] == position[runs[-1][-1]] + 1:
            runs[-1].append(label)
        else:
            runs.append([label])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def findings(rows: pd.DataFrame, model: str, grid: Sequence[str]) -> list[Finding]:
    """``model``'s verdict words among ``rows`` (one comparison's :func:`decide` rows on one curve): per word,
    "more robust" before "less robust", the eps where it holds as ranges of ``grid`` and the largest
    difference among them."""
    out = []
    for word in (Verdict.MORE, Verdict.LESS):
        hit = rows[rows["verdict"] == word.value]
        if len(hit):
            top = hit.loc[hit["difference"].abs().idxmax()]
            out.append(Finding(model, word, eps_ranges([str(e) for e in hit["eps_label"]], grid),
                               float(top["difference"]), str(top["eps_label"])))
    return out


def answers(decided: pd.DataFrame, architectures: dict[str, str]) -> list[Answer]:
    """One :class:`Answer` per (dataset, n, baseline model, attack) of ``decided`` (:func:`decide`'s rows);
    ``architectures``: model -> architecture (the backbone's name in the sentence)."""
    out = []
    for (dataset, n, baseline, attack), rows in decided.groupby(["dataset", "n", "baseline", "attack_label"], sort=True):
        grid = [str(e) for e in rows.sort_values("eps").drop_duplicates("eps_label")["eps_label"]]
        found, none, untested = [], [], []
        for model, r in rows.groupby("model", sort=True):
            if set(r["verdict"]) <= {Verdict.UNTESTED.value}:
                untested.append(str(model))
                continue
            words = findings(r, str(model), grid)
            found += words
            if not words:
                none.append(str(model))
        out.append(Answer(str(dataset), int(n), str(baseline), architectures.get(str(baseline), str(baseline)),
                          str(attack), tuple(found), tuple(none), tuple(untested)))
    return out


__all__ = ["SWEEP_VERDICT_RULE", "Answer", "Finding", "answers", "decide", "eps_ranges", "findings"]
