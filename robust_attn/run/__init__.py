"""The run framework every experiment shares (sweep, transfer, and the next kind): a run checks its
request before any work, owns its results folder (lock, stale-file cleanup), logs its start and end to
``runs.jsonl``, keeps finished cells in a keyed store (settings hash with the versions), and describes
the models and attacks in its rows from the registries. An experiment writes only its own loop.

inputs.py (the request: attacks, grid, checkpoints, evaluation images), folder.py (the folder and its
lock), log.py (the run log), store.py (the keyed cell store), record.py (the start record, versions),
identity.py (what rows say about models and attacks). The files themselves and their readers are
:mod:`robust_attn.results`.
"""
from .folder import LOCK_FILE, locked, out_lock, results_folder
from .identity import AttackFacts, ModelFacts, attack_catalog, attack_facts, model_facts
from .inputs import (
    AttackSpec, EvalData, Models, ModelSpec, Request, check_grid_norms, check_request, evaluation_data, load_models,
    needs_gradient, resolve_attacks,
)
from .log import RunLog, logged
from .record import start_record, versions
from .store import KeyedStore, cell_key, describe_setting

__all__ = [
    "LOCK_FILE", "AttackFacts", "AttackSpec", "EvalData", "KeyedStore", "ModelFacts", "ModelSpec", "Models", "Request",
    "RunLog", "attack_catalog", "attack_facts", "cell_key", "check_grid_norms", "check_request", "describe_setting",
    "evaluation_data", "load_models", "locked", "logged", "model_facts", "needs_gradient", "out_lock",
    "resolve_attacks", "results_folder", "start_record", "versions",
]
