"""A results folder's run log, ``runs.jsonl``: one line when a command starts writing to the folder and
one when it ends. Append-only: a crashed run is the one with a start line and no end line. Read it with
:func:`robust_attn.results.read_runs`."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..results import RUNS_FILE


class RunLog:
    """``OUT/runs.jsonl``: a start record (what the run writes: its command line, settings, checkpoints,
    planned cells) and an end record (status, wall time) per command."""

    def __init__(self, out: Path):
        self.path = out / RUNS_FILE

    def _append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def start(self, record: Mapping[str, Any]) -> str:
        run_id = hashlib.sha256(f"{time.time_ns()}:{os.getpid()}".encode()).hexdigest()[:12]
        self._append({"event": "start", "run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record})
        return run_id

    def end(self, run_id: str, status: str, wall_seconds: float) -> None:
        self._append({"event": "end", "run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "status": status, "wall_seconds": round(wall_seconds, 2)})


@contextlib.contextmanager
def logged(out: Path | None, record: Mapping[str, Any]) -> Iterator[None]:
    """The start record now, the end record when the block leaves: ``finished``, ``interrupted``
    (Ctrl-C) or ``failed``. ``out`` None (no folder, or a rank that does not write): nothing is logged."""
    if out is None:
        yield
        return
    run_log = RunLog(out)
    run_id = run_log.start(record)
    started, status = time.time(), "failed"
    try:
        yield
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        run_log.end(run_id, status, time.time() - started)
