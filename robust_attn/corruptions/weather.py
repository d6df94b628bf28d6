"""Weather corruptions: snow, frost, fog and brightness.

Source: Hendrycks & Dietterich's CIFAR-10-C code, ``ImageNet-C/create_c/make_cifar_c.py`` of
github.com/hendrycks/robustness at commit 8190fe3 (Apache-2.0), functions ``snow``, ``frost``,
``fog`` (with ``plasma_fractal``) and ``brightness``: same parameters and operations, with the
image's own generator instead of the global numpy RNG, and the image's height and width where the
reference hard-codes 32. Snow's motion blur is ImageMagick's, re-implemented in
:func:`~robust_attn.corruptions.blur.magick_motion_blur`. The frost textures are the reference's,
resized as it does at run time and shipped in ``textures/`` (see its README).
"""
from __future__ import annotations

import functools
from importlib import resources

import cv2
import numpy as np
import skimage.color

from .blur import clipped_zoom, magick_motion_blur
from .registry import REFERENCE, CorruptionCfg, CorruptionGroup, register_corruption


@register_corruption(CorruptionCfg("snow", CorruptionGroup.WEATHER,
                                   ((0.1, 0.2, 1, 0.6, 8, 3, 0.95),
                                    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                                    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                                    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                                    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
                                   f"{REFERENCE}, snow (ImageMagick's MotionBlurImage via Wand)",
                                   "motion-blurred snow flakes over a whitened image (flake mean, std, zoom, "
                                   "threshold, blur radius, blur sigma, image weight)"))
def snow(image: np.ndarray, c: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Falling snow: thresholded, zoomed Gaussian noise streaked by a motion blur at an angle in [-135, -45)
    degrees, added with its 180-degree rotation to the image brightened towards its grey level."""
    x = np.array(image, dtype=np.float32) / 255.
    h, w = x.shape[:2]
    snow_layer = rng.normal(size=(h, w), loc=c[0], scale=c[1])
    snow_layer = clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    # The reference saves the layer as an 8-bit greyscale PNG, blurs it with ImageMagick and reads it back.
    snow_layer = (np.clip(snow_layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    snow_layer = magick_motion_blur(snow_layer, radius=c[4], sigma=c[5], angle=rng.uniform(-135, -45)) / 255.
    snow_layer = snow_layer[..., np.newaxis]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(h, w, 1)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


# ------------------------------------------------------------------ frost

_FROST_FILES = tuple(f"frost{i}.png" for i in range(1, 7))


@functools.cache
def frost_textures() -> tuple[np.ndarray, ...]:
    """The six frost textures, RGB uint8 (read-only), loaded once from the package.

    They are the reference's frost1.png .. frost6.jpg read with ``cv2.imread`` (BGR, alpha dropped) and
    resized with ``cv2.resize(img, (0, 0), fx=0.2, fy=0.2)``, as the reference does at every call,
    stored losslessly as PNG; here they are decoded and turned to RGB as the reference's ``[..., [2, 1, 0]]``.
    """
    folder = resources.files(__package__) / "textures"
    textures = []
    for name in _FROST_FILES:
        bgr = cv2.imdecode(np.frombuffer((folder / name).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        rgb.flags.writeable = False
        textures.append(rgb)
    return tuple(textures)


def _cover(texture: np.ndarray, h: int, w: int) -> np.ndarray:
    """``texture``, mirrored beyond its edges where it is not larger than h x w (the reference's random crop
    needs at least h + 1 rows and w + 1 columns; CIFAR's 32 x 32 never needs this, the textures being at
    least 63 x 97)."""
    pad_h, pad_w = max(0, h + 1 - texture.shape[0]), max(0, w + 1 - texture.shape[1])
    if pad_h or pad_w:
        texture = np.pad(texture, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    return texture


@register_corruption(CorruptionCfg("frost", CorruptionGroup.WEATHER,
                                   ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
                                   f"{REFERENCE}, frost (textures frost1.png .. frost5.jpg)",
                                   "c0 * image + c1 * a random crop of a frost texture"))
def frost(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Ice on the lens: the image blended with a random H x W crop of one of the frost textures.

    The reference draws the texture with ``np.random.randint(5)``: only frost1 .. frost5 are ever used
    (frost6 never is), and so here (``rng.integers(5)``). frost2 and frost3 have the same pixels.
    """
    h, w = image.shape[:2]
    texture = _cover(frost_textures()[rng.integers(5)], h, w)
    x_start, y_start = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
    crop = texture[x_start:x_start + h, y_start:y_start + w]
    return np.clip(c[0] * np.asarray(image, dtype=np.float64) + c[1] * crop, 0, 255)


# ------------------------------------------------------------------ fog


def plasma_fractal(rng: np.random.Generator, mapsize: int = 32, wibbledecay: float = 3) -> np.ndarray:
    """The reference's diamond-square height map (a modification of github.com/FLHerne/mapgen's
    diamondsquare.py): a ``mapsize`` x ``mapsize`` array in [0, 1]; ``mapsize`` a power of two."""
    if mapsize <= 0 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    maparray = np.zeros((mapsize, mapsize), dtype=np.float64)
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        # fill squares: each square's centre is the mean of its corners plus wibble
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum)
        # fill diamonds: each diamond's centre is the mean of its corners plus wibble
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = (drgrid + np.roll(drgrid, 1, axis=0)) + (ulgrid + np.roll(ulgrid, -1, axis=1))
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = (drgrid + np.roll(drgrid, 1, axis=1)) + (ulgrid + np.roll(ulgrid, -1, axis=0))
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay

    maparray -= maparray.min()
    return maparray / maparray.max()


def fog_mapsize(h: int, w: int) -> int:
    """The smallest power of two >= max(h, w): the plasma map covering the image (32 for CIFAR, the reference's)."""
    return 1 << (max(h, w) - 1).bit_length()


@register_corruption(CorruptionCfg("fog", CorruptionGroup.WEATHER,
                                   ((.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
                                   f"{REFERENCE}, fog (and plasma_fractal)",
                                   "a plasma-fractal haze of strength c0 and roughness decay c1, contrast reduced"))
def fog(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Fog: a diamond-square plasma fractal added to the image, rescaled to keep the image's maximum."""
    x = image / 255.
    h, w = x.shape[:2]
    max_val = x.max()
    x += c[0] * plasma_fractal(rng, mapsize=fog_mapsize(h, w), wibbledecay=c[1])[:h, :w][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


# ------------------------------------------------------------------ brightness


@register_corruption(CorruptionCfg("brightness", CorruptionGroup.WEATHER, (.05, .1, .15, .2, .3),
                                   f"{REFERENCE}, brightness",
                                   "c added to the HSV value channel", random=False))
def brightness(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Daylight: the value channel in HSV raised by ``c``. Deterministic: ``rng`` is not used."""
    x = skimage.color.rgb2hsv(image / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    x = skimage.color.hsv2rgb(x)
    return np.clip(x, 0, 1) * 255
