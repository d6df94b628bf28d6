"""The sweep's corrupted evaluation sets (common corruptions as threats), and the strip the report shows.

A corruption does not look at the model: the images of one evaluation set at one severity are computed once
(:mod:`robust_attn.corruptions.cache` keeps them across sweeps) and scored by every model. Beside the cells, a
sweep with a results folder keeps one evaluation image under each corruption at each severity of its grid
(``corruptions/<dataset>-<hash>/<corruption>-seed<seed>.npz``), so a report shows what a severity means
without recomputing anything.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..attacks import EpsGrid, get_attack_cfg
from ..attacks.layout import memory_format_of
from ..corruptions import corrupt
from ..corruptions.cache import cached_corruption
from ..files import atomic_write_bytes
from ..results import CORRUPTIONS_DIR
from ..run import EvalData

STRIP_INDEX = 0  # the evaluation image the strip shows


def corrupted_uint8(ev: EvalData, name: str, severity: int, seed: int) -> torch.Tensor:
    """The evaluation set under ``name`` at ``severity`` as uint8 N x C x H x W (severity 0: the clean images)."""
    x = ev.images.x
    if severity == 0:
        return x
    return cached_corruption(ev.sha256, name, severity, seed, tuple(x.shape),
                             lambda: corrupt(name, x.float().div(255), severity, seed))


def corrupted_sets(ev: EvalData, name: str, grid: EpsGrid, seed: int, like: torch.Tensor
                   ) -> Callable[[int], torch.Tensor]:
    """``images(k)``: the set at severity ``grid.values[k]`` as floats in [0, 1], on the device and in the
    layout of ``like`` (the prepared clean images)."""
    def images(k: int) -> torch.Tensor:
        x = corrupted_uint8(ev, name, int(grid.values[k]), seed)
        return x.to(like.device).float().div_(255).contiguous(memory_format=memory_format_of(like))
    return images


def strip_path(out: Path, ev: EvalData, name: str, seed: int) -> Path:
    return out / CORRUPTIONS_DIR / f"{ev.dataset}-{ev.sha256[:12]}" / f"{name}-seed{seed}.npz"


def write_strip(out: Path, ev: EvalData, name: str, grid: EpsGrid, seed: int) -> Path:
    """Keep image :data:`STRIP_INDEX` clean and at every severity of the grid (uint8), with what it is."""
    severities = sorted({0, *(int(v) for v in grid.values)})
    images = np.stack([corrupted_uint8(ev, name, s, seed)[STRIP_INDEX].numpy() for s in severities])
    path = strip_path(out, ev, name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, severities=np.array(severities), corruption=np.array(name),
                        group=np.array(get_attack_cfg(name).group), dataset=np.array(ev.dataset),
                        data_sha256=np.array(ev.sha256), index=np.array(STRIP_INDEX),
                        label=np.array(int(ev.images.y[STRIP_INDEX])), seed=np.array(seed))
    atomic_write_bytes(path, buffer.getvalue())
    return path
