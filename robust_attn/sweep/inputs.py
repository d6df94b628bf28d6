"""The sweep's inputs now live in :mod:`robust_attn.run.inputs` (every run checks them the same way).

Kept as an alias of that module for the callers outside this branch (``study.spec``, tests) until they
import it from there.
"""
from ..run.inputs import (  # noqa: F401
    AttackSpec, EvalData, Models, ModelSpec, Request, check_grid_norms, check_request, evaluation_data, fits,
    load_models, needs_gradient, resolve_attacks, slug,
)
