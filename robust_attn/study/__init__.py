"""Studies: architecture-level answers across training seeds.

spec.py (the study file), members.py (find or train one checkpoint per architecture x seed),
stats.py (across-seed statistics and verdicts, computed by scipy / statsmodels), run.py (the
whole study: train, sweep, tables).
"""
from .members import Member, TrainingEvent
from .run import (
                  EFFECTS_FILE,
                  MEMBERS_FILE,
                  PER_SEED_FILE,
                  PROVENANCE_FILE,
                  STUDY_FILE,
                  SWEEP_DIR,
                  WITHIN_SEED_FILE,
                  StudyResult,
                  run_study,
)
from .spec import StudySpec, load_study
from .stats import Verdict

__all__ = ["EFFECTS_FILE", "MEMBERS_FILE", "PER_SEED_FILE", "PROVENANCE_FILE", "STUDY_FILE", "SWEEP_DIR",
           "WITHIN_SEED_FILE", "Member", "StudyResult", "StudySpec", "TrainingEvent", "Verdict", "load_study",
           "run_study"]
