"""Corrupted evaluation sets, computed once: a file per (images' hash, corruption, severity, seed).

A corruption of a whole evaluation set costs a fraction of a second to seconds on a CPU; every model of every sweep on those images sees the same corrupted images, so they are kept
as uint8 arrays in the cache folder: ``$ROBUST_ATTN_CACHE_DIR``, else ``$XDG_CACHE_HOME/robust-attn``, else
``~/.cache/robust-attn``. The key holds :data:`VERSION`, raised whenever a corruption's output changes, so
a stale file is never read. Files are written atomically (a crash leaves no half file), readable by all
(as the umask allows: a shared cache folder serves every user), and hold the images' sha256 beside them: an
unreadable, mis-shaped or altered file (a zeroed or truncated copy) is recomputed, with a warning.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write_bytes

log = logging.getLogger(__name__)

VERSION = 1  # of the corruptions' outputs: part of every cache key


def cache_dir() -> Path:
    """The folder corrupted images are kept in (see the module's docstring)."""
    if os.environ.get("ROBUST_ATTN_CACHE_DIR"):
        return Path(os.environ["ROBUST_ATTN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "robust-attn"


def cache_path(data_sha256: str, name: str, severity: int, seed: int) -> Path:
    """Where the corrupted images of one evaluation set (identified by its pixels' and labels' hash) live."""
    return cache_dir() / "corruptions" / data_sha256[:16] / f"{name}-s{severity}-seed{seed}-v{VERSION}.npz"


def _digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def _read(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The stored images if the file is whole: readable, of ``shape``, uint8, and matching its own sha256.

    Any failure to read counts as "not whole": a byte-flipped or truncated zip raises zipfile's, zlib's or
    numpy's errors (BadZipFile, zlib.error, ValueError, EOFError...), a plain .npy under the name a TypeError;
    the caller recomputes, and a cache must never cost the run."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            images, digest = stored["images"], str(stored["sha256"])
    except Exception:  # noqa: BLE001 (see the docstring)
        return None
    if images.shape != tuple(shape) or images.dtype != np.uint8 or _digest(images) != digest:
        return None
    return images


def _write(path: Path, images: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, images=images, sha256=np.array(_digest(images)))
    atomic_write_bytes(path, buf.getvalue())  # fsynced, renamed into place, mode as the umask allows


def cached_corruption(data_sha256: str, name: str, severity: int, seed: int, shape: tuple[int, ...],
                      compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The corrupted images as uint8 (N x C x H x W, CPU): read from the cache, or ``compute()`` (floats in
    [0, 1]) rounded to the nearest 1/255 and stored. Colour images come out of ``corrupt`` on that grid already;
    grey ones (the mean of three corrupted channels) are rounded to it, as a stored grey image would be."""
    path = cache_path(data_sha256, name, severity, seed)
    stored = _read(path, shape)  # not Path.is_file(): it raises on a folder this user may not search
    if stored is not None:
        return torch.from_numpy(stored)
    if os.path.exists(path):  # False, not an error, where the path cannot be looked at
        log.warning("recomputing %s: the cached file is unreadable, of another shape or altered", path)
    images = compute().detach().cpu().mul(255).round_().clamp_(0, 255).to(torch.uint8).contiguous()
    try:
        _write(path, images.numpy())
    except OSError as e:  # a read-only or full cache folder costs the time, not the run
        log.warning("could not cache corrupted images in %s: %s", path.parent, e)
    return images
