"""The files a study writes, declared once: the study code writes them, the study report reads them
(it imports this module and nothing of the study package), as ``results.py`` is for sweeps. The
verdict words and the rule that gives them live here too, so the tables, the report and the README
say the same thing in the same words."""
from __future__ import annotations

from enum import StrEnum

SWEEP_DIR = "sweep"  # the member sweep: an ordinary sweep results folder
CHECKPOINTS_DIR = "checkpoints"  # what the study trained
MEMBERS_FILE = "members.csv"
PER_SEED_FILE = "per_seed.csv"
STUDY_FILE = "study.csv"
EFFECTS_FILE = "effects.csv"
WITHIN_SEED_FILE = "within_seed.csv"
PROVENANCE_FILE = "provenance.json"

AUC = "auc"  # the ``summary`` (and ``eps_label``) of a curve's normalised area; per-eps rows say "eps"
METRICS = ("accuracy", "worst_case_accuracy")

MEMBER_COLUMNS = ["architecture", "seed", "model", "checkpoint", "checkpoint_sha256", "clean_accuracy", "trained"]
PER_SEED_COLUMNS = ["architecture", "seed", "model", "attack", "attack_params", "metric", "summary", "eps",
                    "eps_label", "value", "clean_accuracy"]
STUDY_COLUMNS = ["architecture", "attack", "attack_params", "metric", "summary", "eps", "eps_label", "n_seeds",
                 "mean", "std", "ci_low", "ci_high"]
EFFECT_COLUMNS = ["architecture", "baseline", "attack", "attack_params", "metric", "summary", "eps", "eps_label",
                  "n_seeds", "n_seeds_baseline", "mean", "baseline_mean", "difference", "ci_low", "ci_high", "test",
                  "statistic", "df", "p_value", "p_holm", "verdict"]
WITHIN_SEED_COLUMNS = ["architecture", "baseline", "seed", "attack", "attack_params", "metric", "eps", "eps_label",
                       "accuracy", "baseline_accuracy", "difference", "mcnemar_p"]


class Verdict(StrEnum):
    """The words a study may use about an architecture against its baseline."""

    MORE = "more robust"
    LESS = "less robust"
    NONE = "no detectable difference"
    TOO_FEW = "too few seeds for a verdict"
    UNTESTED = "not tested: its curve has no verdict"  # a per-eps row outside every family: a number, no word


ALPHA = 0.05  # family-wise error rate of the verdict words (and 1 - the intervals' confidence)
# Per arm: with 2 seeds Welch's df is about 1 and the interval spans hundreds of points.
MIN_SEEDS = 3
# The family and the correction, in one sentence: the study code applies it (robust_attn.study.stats.decide),
# the report prints it, the README quotes it (tests hold all three to these words).
VERDICT_RULE = (
    f"A verdict word needs Holm-adjusted p < {ALPHA:g} within one family per level: a curve's verdict is adjusted "
    f"over all of the study's tested curves (every comparison x attack x metric with at least {MIN_SEEDS} seeds per "
    "arm), and a per-eps verdict is given only on a curve whose verdict holds, adjusted over the per-eps "
    "comparisons of those curves, so that when the architectures do not differ the chance of any \"more robust\" "
    f"or \"less robust\" in the whole study is at most {ALPHA:.0%}."
)
