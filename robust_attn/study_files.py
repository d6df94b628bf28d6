"""The files a study writes, declared once: the study code writes them, the study report reads them
(it imports this module and nothing of the study package), as ``results.py`` is for sweeps."""
from __future__ import annotations

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
