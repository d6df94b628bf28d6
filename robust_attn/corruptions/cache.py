"""Corrupted evaluation sets, computed once: a file per (images' hash, corruption, severity, seed).

A corruption of a whole evaluation set costs a fraction of a second to seconds on a CPU; every model of every sweep on those images sees the same corrupted images, so they are kept
as uint8 arrays in the cache folder: ``$ROBUST_ATTN_CACHE_DIR``, else ``$XDG_CACHE_HOME/robust-attn``, else
``~/.cache/robust-attn``. The key holds :data:`VERSION`, raised whenever a corruption's output changes, so
a stale file is never read. Files are written atomically (a crash leaves no half file); an unreadable or
mis-shaped file is recomputed.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

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
    return cache_dir() / "corruptions" / data_sha256[:16] / f"{name}-s{severity}-seed{seed}-v{VERSION}.npy"


def cached_corruption(data_sha256: str, name: str, severity: int, seed: int, shape: tuple[int, ...],
                      compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The corrupted images as uint8 (N x C x H x W, CPU): read from the cache, or ``compute()`` (floats in
    [0, 1]) rounded to the nearest 1/255 and stored. Colour images come out of ``corrupt`` on that grid already;
    grey ones (the mean of three corrupted channels) are rounded to it, as a stored grey image would be."""
    path = cache_path(data_sha256, name, severity, seed)
    if path.is_file():
        try:
            stored = np.load(path, allow_pickle=False)
            if stored.shape == tuple(shape) and stored.dtype == np.uint8:
                return torch.from_numpy(stored)
        except (OSError, ValueError):
            pass
        log.warning("recomputing %s: the cached file is unreadable or of another shape", path)
    images = compute().detach().cpu().mul(255).round_().clamp_(0, 255).to(torch.uint8).contiguous()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            np.save(tmp, images.numpy(), allow_pickle=False)
        os.replace(tmp.name, path)
    except OSError as e:  # a read-only or full cache folder costs the time, not the run
        log.warning("could not cache corrupted images in %s: %s", path.parent, e)
    return images
