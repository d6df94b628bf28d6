"""The sweep engine: many models x attacks x eps grids, per-eps accuracy and the worst-case
envelope per cell, resumable results folders.

engine.py (the sweep and its rows), walks.py (one model under one attack over the grid, fast paths),
store.py (its cells in the run's keyed store), panels.py (the attention artifacts the report shows).
The request, folder, lock and run log are the run framework's (:mod:`robust_attn.run`).
"""
from ..results import EXAMPLES_FILE, RESULTS_FILE, RUNS_FILE
from .engine import CellEvent, run_sweep
from ..run import LOCK_FILE, AttackSpec, resolve_attacks
from .store import CELLS_DIR
from .walks import predict

__all__ = ["CELLS_DIR", "EXAMPLES_FILE", "LOCK_FILE", "RESULTS_FILE", "RUNS_FILE", "AttackSpec", "CellEvent",
           "predict", "resolve_attacks", "run_sweep"]
