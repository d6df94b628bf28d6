"""Digital corruptions: contrast, elastic transform, pixelate and JPEG compression.

Source: Hendrycks & Dietterich's CIFAR-10-C code, ``ImageNet-C/create_c/make_cifar_c.py`` of
github.com/hendrycks/robustness at commit 8190fe3 (Apache-2.0), functions ``contrast``,
``elastic_transform``, ``pixelate`` and ``jpeg_compression``: same parameters and operations, with
the image's own generator instead of the global numpy RNG, and the image's height and width where
the reference hard-codes 32.
"""
from __future__ import annotations

from io import BytesIO

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import map_coordinates
from skimage.filters import gaussian

from .registry import REFERENCE, CorruptionCfg, CorruptionGroup, register_corruption


@register_corruption(CorruptionCfg("contrast", CorruptionGroup.DIGITAL, (.75, .5, .4, .3, 0.15),
                                   f"{REFERENCE}, contrast",
                                   "each channel's deviations from its mean scaled by c", random=False))
def contrast(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Low contrast (poor lighting, haze): (x - mean) * c + mean per channel. Deterministic."""
    x = image / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


@register_corruption(CorruptionCfg("elastic-transform", CorruptionGroup.DIGITAL,
                                   ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                                    (0.1, 0.03, 0.03)),
                                   f"{REFERENCE}, elastic_transform (parameters times IMSIZE = 32)",
                                   "a random affine warp then a smooth random displacement field "
                                   "(alpha, sigma, affine jitter; fractions of the image size)"))
def elastic_transform(image: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Stretching and contracting regions (after github.com/erniejunior's elastic-transform gist).

    The reference writes its parameters as ``IMSIZE * f`` with IMSIZE = 32; ``c`` holds the fractions f
    and IMSIZE is the image's size (its smaller side), which is 32 for CIFAR. The affine's control
    points are given to cv2 as (x, y) = (column, row); the reference passes (row, column), which is the
    same for square images.
    """
    imsize = min(image.shape[:2])
    alpha, sigma, jitter = imsize * c[0], imsize * c[1], imsize * c[2]
    x = np.array(image, dtype=np.float32) / 255.
    shape = x.shape
    h, w = shape[:2]

    # random affine
    center_square = np.float32((w, h)) // 2
    square_size = min(h, w) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    affine = cv2.getAffineTransform(pts1, pts2)
    x = cv2.warpAffine(x, affine, (w, h), borderMode=cv2.BORDER_REFLECT_101)

    # smooth random displacement field
    dx = (gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode='reflect', truncate=3) * alpha).astype(np.float32)
    dy = (gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode='reflect', truncate=3) * alpha).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]

    cols, rows, chans = np.meshgrid(np.arange(w), np.arange(h), np.arange(shape[2]))
    indices = np.reshape(rows + dy, (-1, 1)), np.reshape(cols + dx, (-1, 1)), np.reshape(chans, (-1, 1))
    return np.clip(map_coordinates(x, indices, order=1, mode='reflect').reshape(shape), 0, 1) * 255


@register_corruption(CorruptionCfg("pixelate", CorruptionGroup.DIGITAL, (0.95, 0.9, 0.85, 0.75, 0.65),
                                   f"{REFERENCE}, pixelate",
                                   "box-downsampled to a fraction c of the size, box-upsampled back", random=False))
def pixelate(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Upsampling a low-resolution image: Pillow BOX resize to int(size * c), then back. Deterministic."""
    h, w = image.shape[:2]
    x = Image.fromarray(image)
    x = x.resize((int(w * c), int(h * c)), Image.Resampling.BOX)
    x = x.resize((w, h), Image.Resampling.BOX)
    return np.asarray(x, dtype=np.float64)


@register_corruption(CorruptionCfg("jpeg-compression", CorruptionGroup.DIGITAL, (80, 65, 58, 50, 40),
                                   f"{REFERENCE}, jpeg_compression",
                                   "Pillow JPEG encoding at quality c, decoded", random=False))
def jpeg_compression(image: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    """Lossy compression artefacts: a Pillow JPEG round trip at quality ``c`` (Pillow's default chroma
    subsampling, as the reference). Deterministic."""
    output = BytesIO()
    Image.fromarray(image).save(output, 'JPEG', quality=c)
    with Image.open(BytesIO(output.getvalue())) as x:
        return np.asarray(x.convert('RGB'), dtype=np.float64)
