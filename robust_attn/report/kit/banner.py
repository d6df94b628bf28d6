"""The banner every report page opens with: whether its numbers can be trusted, in one glance.

A page's sanity checks (each with a ``name``, a ``status`` whose value is PASS, FAIL or NOT TESTED, a
``detail`` with the numbers and, for a FAIL, what it ``suggests``) are counted and the ones that did not
pass are named, each with its numbers: a failing check says what failed, an untested one what would
test it. Incomplete folders and the page's notes go under it, folded, so the first screen stays the answer.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PASS, FAIL, NOT_TESTED = "PASS", "FAIL", "NOT TESTED"


def _status(check: Any) -> str:
    return str(getattr(check.status, "value", check.status))


def sanity_banner(checks: Iterable[Any], *, incomplete: Sequence[Any] = (), notes: Sequence[str] = (),
                  next_attacks: dict[str, Any] | None = None, scope: str = "") -> dict[str, Any]:
    """The ``banner`` context of ``templates/banner.html.j2``: the checks by status, and ``state`` (``fail``
    when a check failed or a folder is incomplete, ``partial`` when some check could not be made, else
    ``ok``) that colours it. ``scope`` says whose checks these are (``"of the member sweeps"``)."""
    checks = list(checks)
    failed = [c for c in checks if _status(c) == FAIL]
    untested = [c for c in checks if _status(c) == NOT_TESTED]
    passed = [c for c in checks if _status(c) == PASS]
    state = "fail" if failed or incomplete else "partial" if untested or not checks else "ok"
    return {"banner": {"state": state, "total": len(checks), "passed": passed, "failed": failed,
                       "untested": untested, "incomplete": list(incomplete), "notes": list(notes),
                       "next_attacks": next_attacks, "scope": scope}}


__all__ = ["sanity_banner"]
