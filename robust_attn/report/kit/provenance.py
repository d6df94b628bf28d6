"""Where a page's numbers come from: the package version and git commit that built the page, and the
runs (from their run logs) that wrote the folders it reads."""
from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ... import __version__
from .inputs import Run


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def page_header(command: str | None) -> dict[str, Any]:
    """What every page says about its own making: package version, git commit, the report command."""
    return {"version": __version__, "git_commit": git_commit(), "command": command}


def versions_text(value: Any) -> str:
    """A run's recorded library versions as 'torch 2.5, numpy 2.1'."""
    return ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else ""


def human(value: Any, unset: str | None = None) -> str:
    """A recorded setting as a reader reads it: on/off for a flag, ``unset`` (or 'default') for None,
    lists joined, numbers as written."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return unset or "default"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


# What an unset (None) run setting means, per setting: the same for every kind of run.
UNSET = {"n": "all images", "threads": "torch's default", "data_dir": "the embedded images"}


def settings_text(settings: dict[str, Any], keys: Sequence[str] | None = None,
                  unset: Mapping[str, str | None] = UNSET) -> str:
    """A run's settings as 'n all images, seed 0, amp off': ``keys`` in that order where given, else every
    scalar one; ``unset`` says per key what None means for it (see :func:`human`)."""
    if keys is not None:
        return ", ".join(f"{k.replace('_', ' ')} {human(settings[k], unset.get(k))}" for k in keys if k in settings)
    return ", ".join(f"{k.replace('_', ' ')} {human(v, unset.get(k))}" for k, v in settings.items()
                     if k != "versions" and (v is None or isinstance(v, (str, int, float, bool))))


def run_rows(runs: Iterable[Run], settings_keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per run for a page's provenance table, oldest first."""
    return [{"run_id": r.run_id, "time": r.time, "command": r.command, "status": r.status, "ok": r.finished,
             "wall_seconds": r.wall_seconds, "planned": len(r.planned), "missing": len(r.missing),
             "settings": settings_text(r.settings, None if settings_keys is None else list(settings_keys)),
             "versions": versions_text(r.settings.get("versions")),
             "eps": ", ".join(map(str, r.settings.get("eps_labels") or [])),
             "models": ", ".join(str(c.get("name")) for c in r.checkpoints)}
            for r in sorted(runs, key=lambda r: str(r.time or ""))]


__all__ = ["UNSET", "git_commit", "human", "page_header", "run_rows", "settings_text", "versions_text"]
