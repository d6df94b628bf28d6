"""The statistics every report page uses on paired per-image outcomes (scipy / statsmodels; the
report only lays them out)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mcnemar_exact(only_first: int, only_second: int, alternative: str = "two-sided") -> float:
    """Exact McNemar test: a binomial test of the discordant pairs against 1/2 (1.0 without any).
    ``alternative='greater'``: the first kind is more frequent."""
    from scipy.stats import binomtest

    total = only_first + only_second
    return 1.0 if total == 0 else float(binomtest(only_first, total, 0.5, alternative=alternative).pvalue)


def discordant(first: np.ndarray, second: np.ndarray) -> tuple[int, int]:
    """Paired boolean outcomes: how many are true under ``first`` only, and under ``second`` only."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    return int((first & ~second).sum()), int((~first & second).sum())


def holm(pvalues: Sequence[float], alpha: float) -> tuple[list[bool], list[float]]:
    """Holm's step-down over one family of tests at family-wise ``alpha``: which reject, and the
    adjusted p-values (in the order given)."""
    if not len(pvalues):
        return [], []
    from statsmodels.stats.multitest import multipletests

    reject, adjusted, _, _ = multipletests(np.asarray(pvalues, float), alpha=alpha, method="holm")
    return [bool(r) for r in reject], [float(p) for p in adjusted]


def p_text(p: float) -> str:
    """A p-value as a sentence reads it: '= 0.031', '< 1e-4'."""
    return f"= {p:.2g}" if p >= 1e-4 else "< 1e-4"


__all__ = ["discordant", "holm", "mcnemar_exact", "p_text"]
