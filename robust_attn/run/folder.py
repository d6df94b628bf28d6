"""A run's results folder: created (or refused) before any work, one writer at a time, and what a
killed writer left half-written removed before the next one writes."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..distributed import Ranks
from ..errors import UserError
from ..files import ensure_dir, remove_stale_temporaries

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def results_folder(out: str | os.PathLike | None, ranks: Ranks) -> Path | None:
    """``out`` as a writable folder (the writing rank creates it; a path that cannot be one is a
    :class:`UserError`); None when the run keeps nothing."""
    if out is None:
        return None
    return ensure_dir(out, "--out") if ranks.is_writer else Path(out)


@contextlib.contextmanager
def out_lock(out: Path, subfolders: Sequence[str] = ()) -> Iterator[None]:
    """One writer per results folder: an OS file lock (released by the kernel if the process dies,
    taken atomically, whatever pid the process has); a second run on a busy folder is refused. Once
    held, the temporaries of interrupted writes in ``out`` and its ``subfolders`` are removed: no other
    writer can have a write in flight there."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{out} is in use by another sweep or transfer; wait for it or use another --out") from None
    try:
        for folder in (out, *(out / s for s in subfolders)):
            for tmp in remove_stale_temporaries(folder):
                log.warning("removed %s, left by an interrupted write", tmp)
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def locked(out: Path | None, ranks: Ranks, subfolders: Sequence[str] = ()) -> Iterator[None]:
    """The writing rank takes the lock on ``out`` (see :func:`out_lock`); every rank learns whether it
    got it, so all of them stop on a busy folder. ``out`` None: nothing to lock."""
    if out is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        problem = None
        if ranks.is_writer:
            try:
                stack.enter_context(out_lock(out, subfolders))
            except UserError as exc:
                problem = str(exc)
        problem = ranks.broadcast(problem)
        if problem:
            raise UserError(problem)
        yield
