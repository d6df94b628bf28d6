"""Corruption registry and :func:`corrupt`, the one way to apply a common corruption to images.

An entry is a frozen :class:`CorruptionCfg` (its group, the five parameters of severities 1..5, where
they come from) plus a function ``fn(image, param, rng) -> corrupted`` on one uint8 H x W x 3 RGB
image, returning floats in about [0, 255], as Hendrycks & Dietterich's functions do on a PIL image.

:func:`corrupt` adds what every corruption needs and does the rest exactly as H&D stored CIFAR-10-C
(``np.uint8(corruption(img))``): the float result is clipped and truncated to uint8. Randomness comes
from a generator per image seeded by (seed, corruption, severity, the image's bytes), so a corrupted
image never depends on its batch or its position in it, and the global numpy RNG is never used.
"""
from __future__ import annotations

import fnmatch
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import torch

from ..errors import UserError, require_int
from ..registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIZE = 8  # the smallest height and width accepted (H&D's CIFAR code assumes 32)
# Where every parameter comes from: Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
# Corruptions and Perturbations", ICLR 2019; their CIFAR-10-C generation code (Apache-2.0).
REFERENCE = "github.com/hendrycks/robustness@8190fe3 ImageNet-C/create_c/make_cifar_c.py"


class CorruptionGroup(StrEnum):
    """The four families of Hendrycks & Dietterich's Figure 1."""

    NOISE = "noise"
    BLUR = "blur"
    WEATHER = "weather"
    DIGITAL = "digital"


CorruptionFn = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class CorruptionCfg:
    """What a corruption is.

    ``params`` holds the parameter of each severity 1..5, copied from the reference code named in
    ``source`` (file and function); ``params[severity - 1]`` is handed to the corruption function.
    ``random`` is False for the six corruptions that draw nothing (defocus and zoom blur, brightness, contrast,
    pixelate, JPEG): their images are the same for every seed.
    """

    name: str
    group: CorruptionGroup
    params: tuple
    source: str
    description: str
    random: bool = True  # draws random numbers (from the per-image generator); False: the same images for any seed

    def __post_init__(self) -> None:
        if not isinstance(self.group, CorruptionGroup):
            raise TypeError(f"corruption {self.name!r}: group must be a CorruptionGroup, got {self.group!r}")
        if not isinstance(self.params, tuple) or len(self.params) != len(SEVERITIES):
            raise ValueError(f"corruption {self.name!r}: params must be a tuple of {len(SEVERITIES)} entries "
                             f"(severity 1..{SEVERITIES[-1]}), got {self.params!r}")
        if not self.source.strip():
            raise ValueError(f"corruption {self.name!r}: source must name where the parameters come from")


_REGISTRY: Registry[CorruptionCfg, CorruptionFn] = Registry("corruption")
_REGISTERED: list[str] = []  # registration order
# The order of Hendrycks & Dietterich's tables and of make_cifar_c.py: the order of list_corruptions, whatever
# the order the modules are imported in. A corruption not named here comes after them, in registration order.
HD_ORDER = ("gaussian-noise", "shot-noise", "impulse-noise", "defocus-blur", "glass-blur", "motion-blur", "zoom-blur",
            "snow", "frost", "fog", "brightness", "contrast", "elastic-transform", "pixelate", "jpeg-compression")


def register_corruption(cfg: CorruptionCfg) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register ``fn(image, param, rng) -> corrupted`` under ``cfg.name`` (a taken name is an error)."""
    register = _REGISTRY.register(cfg.name, cfg)

    def decorator(fn: CorruptionFn) -> CorruptionFn:
        register(fn)
        _REGISTERED.append(cfg.name)
        return fn

    return decorator


def list_corruptions(pattern: str = "*") -> list[str]:
    """Registered corruption names matching a shell-style ``pattern``, in Hendrycks & Dietterich's order
    (noise, blur, weather, digital; the order of their tables), not alphabetical."""
    names = sorted(_REGISTERED, key=lambda n: HD_ORDER.index(n) if n in HD_ORDER else len(HD_ORDER))  # stable
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_corruption_cfg(name: str) -> CorruptionCfg:
    """The config of ``name``; an unknown name is a :class:`UserError` listing the closest names."""
    return _REGISTRY.cfg(name)


# ------------------------------------------------------------------ applying

def check_severity(severity: object) -> int:
    """``severity`` if it is an int (not a bool) in 0..5, else a one-line :class:`UserError`."""
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= SEVERITIES[-1]:
        raise UserError(f"severity must be an integer from {SEVERITIES[0]} to {SEVERITIES[-1]} "
                        f"(0: the clean images), got {severity!r}")
    return severity


def _check_images(images: torch.Tensor) -> None:
    """Reject (never clamp) images a corruption must not see."""
    if not isinstance(images, torch.Tensor) or not torch.is_floating_point(images) or images.ndim != 4 \
            or images.shape[1] not in (1, 3):
        what = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images must be a float N x C x H x W tensor with C = 1 or 3, got {what}")
    if min(images.shape[2:]) < MIN_SIZE:
        raise UserError(f"images must be at least {MIN_SIZE} x {MIN_SIZE} pixels, got {tuple(images.shape[2:])}")
    if images.numel() and not bool(torch.isfinite(images).all()):
        raise UserError("images contain NaN or inf")
    if images.numel() and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
        raise UserError(f"images must lie in [0, 1], got [{float(images.min()):.4g}, {float(images.max()):.4g}]")


def image_rng(seed: int, name: str, severity: int, image: np.ndarray) -> np.random.Generator:
    """The generator of one image: a function of (seed, corruption, severity, the image's pixels) only."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity, zlib.crc32(image.tobytes())])


def corrupt_uint8(name: str, image: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """One uint8 H x W x 3 RGB image corrupted as H&D store CIFAR-10-C: ``np.uint8(clip(fn(image)))``.

    ``np.uint8`` truncates (23.9 -> 23), as the reference's ``np.uint8(corruption(img))`` does. The clip
    changes nothing for the registered corruptions (each clips, as the reference does, or cannot leave
    [0, 255]); it keeps a new entry's overshoot from wrapping around in uint8.
    """
    cfg, fn = _REGISTRY.entry(name)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    out = fn(image, cfg.params[severity - 1], image_rng(seed, name, severity, image))
    return np.clip(np.asarray(out, dtype=np.float64), 0, 255).astype(np.uint8)


def _memory_format_of(t: torch.Tensor) -> torch.memory_format:
    if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def corrupt(name: str, images: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
    """``images`` (float N x C x H x W in [0, 1], C = 1 or 3) with corruption ``name`` at ``severity``.

    Returns a tensor of the same shape, dtype, device and memory layout, in [0, 1]; severity 0 gives
    the clean images (a copy). Each image is taken to uint8 RGB (``round(x * 255)``; one channel is
    repeated three times), corrupted and stored as uint8 as in CIFAR-10-C, then divided by 255 (a
    one-channel image gets back the mean of the three corrupted channels). A corrupted image depends
    only on (image, corruption, severity, seed): not on its batch, its position, the device or the
    global RNG.
    """
    cfg = get_corruption_cfg(name)
    severity = check_severity(severity)
    seed = require_int("seed", seed, 0)
    _check_images(images)
    if severity == 0:
        return images.clone()
    n, c, h, w = images.shape
    u8 = (images.detach().to("cpu", torch.float64) * 255).round_().to(torch.uint8)
    hwc = u8.permute(0, 2, 3, 1).contiguous().numpy()
    if c == 1:
        hwc = np.repeat(hwc, 3, axis=3)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = corrupt_uint8(cfg.name, hwc[i], severity, seed)
    result = out.mean(axis=3, keepdims=True) if c == 1 else out.astype(np.float64)
    back = torch.from_numpy(np.ascontiguousarray(result.transpose(0, 3, 1, 2)) / 255.0)
    return back.to(device=images.device, dtype=images.dtype).contiguous(memory_format=_memory_format_of(images))
