"""Noise corruptions: Gaussian, shot (Poisson) and impulse (salt-and-pepper) noise.

Source: Hendrycks & Dietterich's CIFAR-10-C code, ``ImageNet-C/create_c/make_cifar_c.py`` of
github.com/hendrycks/robustness at commit 8190fe3 (Apache-2.0), functions ``gaussian_noise``,
``shot_noise`` and ``impulse_noise``: same parameters, same operations, with the image's own
generator instead of the global numpy RNG.
"""
from __future__ import annotations

import numpy as np
import skimage.util

from .registry import REFERENCE, CorruptionCfg, CorruptionGroup, register_corruption


@register_corruption(CorruptionCfg("gaussian-noise", CorruptionGroup.NOISE, (0.04, 0.06, .08, .09, .10),
                                   f"{REFERENCE}, gaussian_noise",
                                   "additive Gaussian noise of standard deviation c (pixels in [0, 1])"))
def gaussian_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise in low light: x + N(0, c^2) per pixel and channel."""
    x = image / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


@register_corruption(CorruptionCfg("shot-noise", CorruptionGroup.NOISE, (500, 250, 100, 75, 50),
                                   f"{REFERENCE}, shot_noise",
                                   "Poisson (photon) noise: Poisson(c x) / c; a smaller c is noisier"))
def shot_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Electronic noise from the discrete nature of light: photon counts Poisson(c x), rescaled by 1/c."""
    x = image / 255.
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


@register_corruption(CorruptionCfg("impulse-noise", CorruptionGroup.NOISE, (.01, .02, .03, .05, .07),
                                   f"{REFERENCE}, impulse_noise",
                                   "salt-and-pepper noise replacing a fraction c of the values by 0 or 1"))
def impulse_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Bit errors: skimage's salt-and-pepper noise on a fraction ``c`` of the values (each channel apart)."""
    x = skimage.util.random_noise(image / 255., mode='s&p', amount=c, rng=rng)
    return np.clip(x, 0, 1) * 255
