"""The eps-ball test every part shares: the sweep refuses a cell whose attack left the ball, the
transfer loop refuses such a crafted example, and the report's budget check fails it. One
definition, so that the three never disagree (they did, on a NaN norm).

Nothing here imports the sweep or the report: both import it, as both import ``results``.
"""
from __future__ import annotations

import math

# Float slack: x + eps * sign(g) and a projection both round in float32.
BUDGET_REL_SLACK = 1e-5
BUDGET_ABS_SLACK = 1e-6


def exceeds_budget(max_perturbation: float, eps: float) -> bool:
    """Whether a perturbation norm lies outside the eps-ball beyond float rounding. A norm that is
    not a finite number (NaN, inf) cannot be shown to lie inside it, so it exceeds the budget."""
    return not math.isfinite(max_perturbation) or max_perturbation > eps * (1 + BUDGET_REL_SLACK) + BUDGET_ABS_SLACK


__all__ = ["BUDGET_ABS_SLACK", "BUDGET_REL_SLACK", "exceeds_budget"]
