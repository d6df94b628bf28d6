"""Blur corruptions: defocus, glass, motion and zoom blur.

Source: Hendrycks & Dietterich's CIFAR-10-C code, ``ImageNet-C/create_c/make_cifar_c.py`` of
github.com/hendrycks/robustness at commit 8190fe3 (Apache-2.0), functions ``defocus_blur`` (with
``disk``), ``glass_blur``, ``motion_blur`` and ``zoom_blur`` (with ``clipped_zoom``): same parameters
and operations, with the image's own generator instead of the global numpy RNG, and the image's
height and width where the reference hard-codes 32.

Two computations are re-implemented, bit-identical to what they replace: motion blur, where the
reference calls ImageMagick's ``MotionBlurImage`` through Wand (a system library this package does not
need; :func:`magick_motion_blur` computes the same thing in numpy), and zoom blur's 7 to 26 scipy zooms
per image, done in one vectorised pass (:func:`clipped_zooms`) because they were half of the time.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from scipy.ndimage import zoom as scizoom
from skimage.filters import gaussian

from .registry import REFERENCE, CorruptionCfg, CorruptionGroup, register_corruption

# ------------------------------------------------------------------ helpers (shared with weather.py)


@functools.cache
def disk(radius: float, alias_blur: float = 0.1) -> np.ndarray:
    """The reference's ``disk``: a normalised aliased disk of ``radius``, antialiased by a small Gaussian blur
    (read-only; cached, as the five severities use five kernels)."""
    if radius <= 8:
        grid = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        grid = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    xx, yy = np.meshgrid(grid, grid)
    aliased = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
    aliased /= np.sum(aliased)
    kernel = cv2.GaussianBlur(aliased, ksize=ksize, sigmaX=alias_blur)
    kernel.flags.writeable = False
    return kernel


def clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom into the centre of ``img`` (H x W x C) by ``zoom_factor`` >= 1 and keep H x W, as the reference's
    ``clipped_zoom`` (which assumes a square image: it crops rows and columns by the height)."""
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom_factor)), int(np.ceil(w / zoom_factor))  # ceil crop size
    top, left = (h - ch) // 2, (w - cw) // 2
    img = scizoom(img[top:top + ch, left:left + cw], (zoom_factor, zoom_factor, 1), order=1)
    trim_top, trim_left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2  # trim off any extra pixels
    return img[trim_top:trim_top + h, trim_left:trim_left + w]


def _zoom_axis(n: int, factors: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Along one axis of length ``n``, for each zoom factor, what :func:`clipped_zoom` reads for its n kept
    outputs, computed as scipy.ndimage.zoom(order=1, mode='constant', grid_mode=False) does (its generic
    NI_ZoomShift): the input coordinate ``cc = k * (crop - 1) / (size - 1)``, the neighbours floor(cc) and
    floor(cc) + 1 (mirrored past the edge, where its weight is 0), the weights ``w0 = 1 - (cc - floor(cc))``
    and ``w1 = 1 - w0``, and whether cc lies outside the crop (then the output is cval, 0)."""
    shape = (len(factors), n)
    i0, i1 = np.empty(shape, np.int64), np.empty(shape, np.int64)
    w0, w1, outside = np.empty(shape), np.empty(shape), np.empty(shape, bool)
    for f, zoom_factor in enumerate(factors):
        crop = int(np.ceil(n / zoom_factor))
        first = (n - crop) // 2
        size = int(round(crop * zoom_factor))  # scipy's output length
        ratio = (crop - 1) / (size - 1) if size > 1 else 1.0
        trim = (size - n) // 2
        cc = np.arange(trim, trim + n, dtype=np.float64) * ratio
        start = np.floor(cc)
        w0[f] = 1.0 - (cc - start)
        w1[f] = 1.0 - w0[f]
        nxt = start.astype(np.int64) + 1
        nxt = np.where(nxt >= crop, np.maximum(2 * crop - 2 - nxt, 0), nxt)  # scipy's mirror past the edge
        i0[f] = start.astype(np.int64) + first
        i1[f] = nxt + first
        outside[f] = (cc < 0) | (cc > crop - 1)
    return i0, i1, w0, w1, outside


@functools.lru_cache(maxsize=32)
def _zoom_tables(h: int, w: int, factors: tuple[float, ...]) -> tuple[list, list, np.ndarray]:
    """Flat indices, weights and cval mask of the four bilinear neighbours of every kept output of every
    factor (F x h x w), for images of h x w: the same for every image of a batch, so cached."""
    r0, r1, wy0, wy1, out_y = _zoom_axis(h, factors)
    c0, c1, wx0, wx1, out_x = _zoom_axis(w, factors)
    # scipy's filter order: row neighbour, then column neighbour (the channel axis has weights 1 and 0)
    index = [r[:, :, None] * w + c[:, None, :] for r in (r0, r1) for c in (c0, c1)]
    weights = [(wy[:, :, None, None], wx[:, None, :, None]) for wy in (wy0, wy1) for wx in (wx0, wx1)]
    outside = out_y[:, :, None] | out_x[:, None, :]
    for table in (*index, *(a for pair in weights for a in pair), outside):
        table.flags.writeable = False  # cached: shared by every later call
    return index, weights, outside


def clipped_zooms(img: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``np.stack([clipped_zoom(img, z) for z in factors])``, bit for bit, in one vectorised pass.

    Why: zoom blur zooms each image 7 to 26 times, and scipy's generic 3-D interpolation costs about 0.15 ms
    per 32 x 32 x 3 zoom, half of all the time of this package's corruptions. Here all factors are one
    gather of the four neighbours, combined with scipy's own arithmetic (float64 ``(v * wy) * wx`` summed
    in scipy's order, rounded to the input's dtype once), so the result is identical, twice as fast; a
    test checks it against :func:`clipped_zoom`.
    """
    h, w, c = img.shape
    index, weights, outside = _zoom_tables(h, w, tuple(float(z) for z in factors))
    flat = img.reshape(h * w, c).astype(np.float64)
    total = None
    for i, (wy, wx) in zip(index, weights):
        term = flat[i] * wy * wx
        total = term if total is None else total + term
    total[outside] = 0.0
    return total.astype(img.dtype)


def magick_motion_blur(image: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's ``MotionBlurImage(image, radius, sigma, angle)`` on a uint8 H x W (x C) image, as floats
    holding whole numbers in [0, 255].

    The algorithm of ImageMagick's MagickCore/effect.c (``MotionBlurImage``, ``GetMotionBlurKernel``,
    ``GetOptimalKernelWidth1D``): a one-sided Gaussian of width ``2 ceil(radius) + 1`` with weights
    ``exp(-i^2 / (2 sigma^2))``, i = 0 .. width - 1, normalised to sum 1, laid along ``angle`` (degrees) with
    the integer offsets ``x_i = ceil(i cos(angle) - 0.5)``, ``y_i = ceil(i sin(angle) - 0.5)``:

        out(y, x) = sum_i k_i * image(y + y_i, x + x_i)

    where pixels outside the image take the nearest edge pixel (ImageMagick's default virtual-pixel
    method, ``edge``). The reference hands ImageMagick an 8-bit PNG and reads back the 8-bit PNG it
    writes. ImageMagick Q16 (non-HDRI: the build Debian and Ubuntu ship, which Wand loads there) holds the sum
    as a 16-bit quantum, ``q = round(257 * out)``, and its PNG writer stores ``floor(q / 257)``: so
    here. Checked bit-exact against ``convert -motion-blur RxS+A`` of ImageMagick 6.9.11-60 Q16 on
    CIFAR-10 images (RGB and greyscale), at every (radius, sigma) of motion blur and snow and angles
    across [-135, 90].
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        return magick_motion_blur(image[..., np.newaxis], radius, sigma, angle)[..., 0]
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width, dtype=np.float64)
    kernel = np.exp(-(i * i) / (2.0 * sigma * sigma))
    kernel /= kernel.sum()
    theta = math.pi * angle / 180.0  # ImageMagick's DegreesToRadians
    px, py = width * math.sin(theta), width * math.cos(theta)
    ox = np.ceil(i * py / math.hypot(px, py) - 0.5).astype(np.int64)
    oy = np.ceil(i * px / math.hypot(px, py) - 0.5).astype(np.int64)
    h, w = img.shape[:2]
    p = width  # every offset is at most width - 1 pixels: pad with the edge pixels
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    for k, dx, dy in zip(kernel, ox, oy):
        out += k * padded[p + dy:p + dy + h, p + dx:p + dx + w]
    quantum = np.floor(out * 257.0 + 0.5)  # ClampToQuantum: the nearest 16-bit value
    return np.floor(quantum / 257.0)  # the 8-bit PNG the reference reads back


# ------------------------------------------------------------------ corruptions


@register_corruption(CorruptionCfg("defocus-blur", CorruptionGroup.BLUR,
                                   ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
                                   f"{REFERENCE}, defocus_blur (and disk)",
                                   "convolution with an antialiased disk (radius, alias blur)", random=False))
def defocus_blur(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus lens: each channel convolved with a disk (cv2's default border, reflect-101).
    Deterministic: ``rng`` is not used."""
    x = image / 255.
    # One filter2D call on the three channels: the same as the reference's call per channel.
    channels = cv2.filter2D(x, -1, disk(radius=c[0], alias_blur=c[1]))
    return np.clip(channels, 0, 1) * 255


def _glass_shuffle(x: np.ndarray, max_delta: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's local pixel "swap", vectorised: what it computes, not what it says.

    The reference visits h = H - d .. d + 1 and w = W - d .. d + 1 (descending) and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with (h', w') = (h + dy, w + dx), dx, dy drawn by
    ``np.random.randint(-d, d)`` (high exclusive). On numpy views this is no swap: the right side
    holds views, so x[h, w] receives x[h', w'] and then x[h', w'] receives the new x[h, w], i.e. its
    own value: pixel (h, w) is overwritten by its neighbour, which keeps its value. With d = 1 (every
    CIFAR severity) the offsets are -1 or 0, so the neighbour read is one the descending loop has
    not written yet in this pass: each pass is one gather from the pass's input, done here at once.
    The offsets are drawn up front, (dx, dy) per pixel in the reference's visiting order.
    """
    if max_delta != 1:  # a larger delta reads pixels the loop has already overwritten: not a single gather
        raise ValueError(f"glass blur is vectorised for max_delta 1 only, got {max_delta}")
    h, w = x.shape[:2]
    rows = np.arange(h - max_delta, max_delta, -1)[:, np.newaxis]
    cols = np.arange(w - max_delta, max_delta, -1)[np.newaxis, :]
    offsets = rng.integers(-max_delta, max_delta, size=(iterations, rows.size, cols.size, 2))
    for step in offsets:
        dx, dy = step[..., 0], step[..., 1]
        x[rows, cols] = x[rows + dy, cols + dx]  # the right side is a copy: every read sees the pass's input
    return x


@register_corruption(CorruptionCfg("glass-blur", CorruptionGroup.BLUR,
                                   ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
                                   f"{REFERENCE}, glass_blur",
                                   "Gaussian blur, local pixel shuffling, Gaussian blur (sigma, max delta, passes)"))
def glass_blur(image: np.ndarray, c: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    """Frosted glass: blur with sigma, move pixels by up to one neighbour (``c[2]`` passes), blur again."""
    sigma, max_delta, iterations = c
    x = np.uint8(gaussian(image / 255., sigma=sigma, channel_axis=-1) * 255)
    x = _glass_shuffle(x, max_delta, iterations, rng)
    return np.clip(gaussian(x / 255., sigma=sigma, channel_axis=-1), 0, 1) * 255


@register_corruption(CorruptionCfg("motion-blur", CorruptionGroup.BLUR,
                                   ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
                                   f"{REFERENCE}, motion_blur (ImageMagick's MotionBlurImage via Wand)",
                                   "ImageMagick motion blur (radius, sigma) at a random angle in [-45, 45) degrees"))
def motion_blur(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """A moving camera: ImageMagick's one-sided motion blur (:func:`magick_motion_blur`) at a random angle."""
    return magick_motion_blur(image, radius=c[0], sigma=c[1], angle=rng.uniform(-45, 45))


@register_corruption(CorruptionCfg("zoom-blur", CorruptionGroup.BLUR,
                                   ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01),
                                    (1, 1.26, 0.01)),
                                   f"{REFERENCE}, zoom_blur (and clipped_zoom)",
                                   "mean of the image and its zooms by np.arange(start, stop, step)", random=False))
def zoom_blur(image: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """A camera moving towards the object: the mean of the image and its centre zooms.

    ``c`` are the reference's ``np.arange`` arguments, kept as such because its float rounding is part of
    the corruption: ``np.arange(1, 1.06, 0.01)`` has 7 factors (1.00 .. 1.06) and ``np.arange(1, 1.11,
    0.01)`` 12 (1.00 .. 1.11), the others 16, 21 and 26 (up to 1.15, 1.20, 1.25). Deterministic.
    """
    x = (image / 255.).astype(np.float32)
    factors = np.arange(*c)
    out = np.zeros_like(x)
    for zoomed in clipped_zooms(x, factors):  # clipped_zoom(x, factor) for each factor, all at once
        out += zoomed  # one at a time in float32, as the reference accumulates
    x = (x + out) / (len(factors) + 1)
    return np.clip(x, 0, 1) * 255
