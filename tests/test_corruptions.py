"""The CIFAR-10-C common corruptions (robust_attn.corruptions): registry, contract of ``corrupt``, severity order.

Every per-corruption test is parametrised over ``list_corruptions()``, so a new entry is tested without
naming it here. Real images: the first 16 of the embedded CIFAR-10 test set.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from robust_attn.corruptions import (
    SEVERITIES, CorruptionCfg, CorruptionGroup, corrupt, get_corruption_cfg, list_corruptions, register_corruption,
)
from robust_attn.corruptions.blur import clipped_zoom, clipped_zooms, magick_motion_blur
from robust_attn.corruptions.weather import frost_textures
from robust_attn.data import load_dataset
from robust_attn.errors import UserError

NAMES = list_corruptions()
HD_ORDER = ["gaussian-noise", "shot-noise", "impulse-noise", "defocus-blur", "glass-blur", "motion-blur", "zoom-blur",
            "snow", "frost", "fog", "brightness", "contrast", "elastic-transform", "pixelate", "jpeg-compression"]
# Corruptions that draw no random numbers: the same images for every seed.
DETERMINISTIC = {"defocus-blur", "zoom-blur", "brightness", "contrast", "pixelate", "jpeg-compression"}

# Where the mean absolute change from the clean images does not grow at every severity step with the reference
# parameters (measured on these 16 images and on all 932 embedded ones), what does hold instead.
NOT_MONOTONE = {
    # Severities 2 -> 3 and 4 -> 5 raise the Gaussian sigma (0.25 -> 0.4) at the same number of shuffling passes:
    # the stronger blur smooths away part of the shuffle's change (16 images: 11.9 12.2 12.0 19.6 18.9 / 255).
    "glass-blur": "5 > 1",
    # Severities 3 (radius 6, sigma 2) and 4 (radius 8, sigma 2) have the same kernel: weights exp(-i^2 / 8) beyond
    # i = 12 are below 1e-7. They differ only by the random angle, so 3 -> 4 is a coin toss (932 images: 13.08 > 12.94).
    "motion-blur": "5 > 1",
    # c0 * x + c1 * frost - x = (c0 - 1) x + c1 frost: severities 4 and 5 darken the image (c0 0.85, 0.75) while
    # the frost weight hardly grows (0.4, 0.45), and the darkening cancels part of the added frost (30 46 51 42 47).
    "frost": "5 > 1",
    # The random affine warp dominates the change, and its jitter shrinks from 0.08 to 0.03 of the image size while
    # the elastic displacement grows: the mean change falls with severity (23.2 20.1 19.0 17.0 14.9 / 255).
    "elastic-transform": "1 > 5",
}


@functools.cache
def _clean(n: int = 16) -> torch.Tensor:
    return load_dataset("cifar10-embedded").test.x[:n].float().div(255)


@functools.cache
def _by_severity(name: str) -> tuple[torch.Tensor, ...]:
    """The 16 clean images corrupted at severities 0..5, seed 0 (computed once per corruption)."""
    return tuple(corrupt(name, _clean(), s, seed=0) for s in (0, *SEVERITIES))


# ------------------------------------------------------------------ registry


def test_registry_lists_the_15_corruptions_in_4_groups():
    assert NAMES == HD_ORDER
    groups = {g: [n for n in NAMES if get_corruption_cfg(n).group is g] for g in CorruptionGroup}
    assert {g.value: len(v) for g, v in groups.items()} == {"noise": 3, "blur": 4, "weather": 4, "digital": 4}
    for name in NAMES:
        cfg = get_corruption_cfg(name)
        assert cfg.name == name and len(cfg.params) == 5 and cfg.source.strip() and cfg.description.strip()
        assert "make_cifar_c.py" in cfg.source
    assert list_corruptions("*-blur") == ["defocus-blur", "glass-blur", "motion-blur", "zoom-blur"]
    assert list_corruptions("nothing*") == []


def test_registry_rejects_a_duplicate_name_and_a_bad_cfg():
    with pytest.raises(ValueError, match="already registered"):
        register_corruption(get_corruption_cfg("fog"))(lambda image, c, rng: image)
    with pytest.raises(ValueError, match="5 entries"):
        CorruptionCfg("x", CorruptionGroup.NOISE, (1, 2, 3), "somewhere", "")


# ------------------------------------------------------------------ the contract, per corruption


@pytest.mark.parametrize("name", NAMES)
def test_output_in_range_shape_dtype_kept_and_severity_0_is_clean(name):
    clean = _clean()
    out = _by_severity(name)
    assert torch.equal(out[0], clean) and out[0] is not clean
    for severity in SEVERITIES:
        x = out[severity]
        assert x.shape == clean.shape and x.dtype == clean.dtype and x.device == clean.device
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert torch.equal(x * 255, (x * 255).round()), "stored as uint8, as CIFAR-10-C"


@pytest.mark.parametrize("name", NAMES)
def test_mean_change_grows_with_severity(name):
    clean = _clean()
    change = [float((x - clean).abs().mean()) for x in _by_severity(name)[1:]]
    assert all(c > 0 for c in change), change
    relation = NOT_MONOTONE.get(name)
    if relation is None:
        assert all(b > a for a, b in zip(change, change[1:])), change
    elif relation == "5 > 1":
        assert change[4] > change[0], change
    else:
        assert relation == "1 > 5" and change[0] > change[4], change


@pytest.mark.parametrize("name", NAMES)
def test_seed(name):
    x = _clean()[:4]
    first, again, other = corrupt(name, x, 3, seed=7), corrupt(name, x, 3, seed=7), corrupt(name, x, 3, seed=8)
    assert torch.equal(first, again)
    assert get_corruption_cfg(name).random is (name not in DETERMINISTIC)  # the entry says whether it draws
    if name in DETERMINISTIC:
        assert torch.equal(first, other)
    else:
        for i in range(len(x)):  # every image gets its own draw from the seed
            assert not torch.equal(first[i], other[i]), i


@pytest.mark.parametrize("name", NAMES)
def test_an_image_does_not_depend_on_its_batch(name):
    x = _clean()
    assert torch.equal(corrupt(name, x[3:5], 4), corrupt(name, x[:8], 4)[3:5])


@pytest.mark.parametrize("name", NAMES)
def test_grayscale_28_and_other_dtypes_and_layouts(name):
    grey = _clean()[:2].mean(1, keepdim=True)[:, :, 2:30, 2:30]  # 1 x 28 x 28
    out = corrupt(name, grey, 5)
    assert out.shape == (2, 1, 28, 28) and out.dtype == grey.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and not torch.equal(out, grey)

    x = _clean()[:2]
    reference = corrupt(name, x, 2)
    as_double = corrupt(name, x.double(), 2)
    assert as_double.dtype == torch.float64 and torch.allclose(as_double, reference.double(), atol=1e-6)
    channels_last = corrupt(name, x.contiguous(memory_format=torch.channels_last), 2)
    assert channels_last.is_contiguous(memory_format=torch.channels_last) and torch.equal(channels_last, reference)


# ------------------------------------------------------------------ user errors


@pytest.mark.parametrize("severity", [6, -1, 2.5, True])
def test_bad_severity(severity):
    with pytest.raises(UserError, match=r"severity must be an integer from 1 to 5 \(0: the clean images\), got"):
        corrupt("fog", _clean()[:1], severity)


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(UserError, match="gaussian-noise"):
        corrupt("gausian-noise", _clean()[:1], 1)


@pytest.mark.parametrize("images", [
    torch.zeros(1, 3, 32, 32, dtype=torch.uint8),  # not float
    torch.zeros(1, 2, 32, 32),  # two channels
    torch.zeros(3, 32, 32),  # no batch dimension
    torch.zeros(1, 3, 4, 32),  # too small
    torch.full((1, 3, 32, 32), 1.5),  # out of [0, 1]
], ids=["uint8", "2-channels", "3-d", "4-rows", "above-1"])
def test_bad_images(images):
    with pytest.raises(UserError, match="images"):
        corrupt("contrast", images, 1)


def test_bad_seed():
    with pytest.raises(UserError, match="seed"):
        corrupt("fog", _clean()[:1], 1, seed=-1)


# ------------------------------------------------------------------ the re-implementations


def test_motion_blur_is_imagemagicks():
    """Outputs of ``convert IN.png -motion-blur RxS+A OUT.png`` by ImageMagick 6.9.11-60 Q16 (the library the
    reference reaches through Wand), on an 8 x 8 pattern: greyscale (as snow's layer) and RGB (green channel)."""
    pattern = (np.arange(64).reshape(8, 8) * 37 % 256).astype(np.uint8)
    grey = np.array([[62, 95, 121, 130, 114, 145, 93, 20], [98, 124, 133, 118, 154, 110, 48, 60],
                     [127, 136, 121, 158, 119, 65, 88, 100], [139, 124, 161, 123, 74, 105, 128, 140],
                     [127, 164, 125, 77, 113, 144, 167, 179], [167, 129, 80, 113, 137, 168, 191, 204],
                     [129, 81, 117, 150, 147, 126, 149, 162], [69, 106, 142, 175, 172, 151, 99, 27]])
    assert np.array_equal(magick_motion_blur(pattern, 6, 2, 30), grey)
    green = np.array([[24, 58, 95, 132, 169, 206, 243, 42], [114, 41, 78, 115, 152, 189, 226, 133],
                      [170, 118, 48, 85, 122, 159, 196, 189], [177, 167, 118, 48, 85, 122, 159, 196],
                      [152, 187, 165, 116, 45, 82, 119, 156], [115, 150, 184, 162, 113, 42, 79, 116],
                      [76, 110, 147, 181, 159, 110, 39, 76], [36, 70, 107, 144, 178, 156, 107, 36]])
    rgb = np.stack([pattern, pattern[::-1], pattern.T], axis=-1)
    assert np.array_equal(magick_motion_blur(rgb, 3, 1.5, -100)[..., 1], green)


@pytest.mark.parametrize("shape", [(32, 32), (28, 28), (9, 13)])
def test_batched_zooms_equal_scipys(shape):
    """Zoom blur's vectorised zooms are scipy's ``clipped_zoom``, bit for bit, at every severity's factors."""
    image = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    for severity in SEVERITIES:
        factors = np.arange(*get_corruption_cfg("zoom-blur").params[severity - 1])
        zoomed = clipped_zooms(image, factors)
        for factor, mine in zip(factors, zoomed):
            assert np.array_equal(mine, clipped_zoom(image, factor)), (severity, factor)


def test_frost_textures_are_shipped_in_rgb():
    textures = frost_textures()
    assert len(textures) == 6
    for texture in textures:
        assert texture.dtype == np.uint8 and texture.ndim == 3 and texture.shape[2] == 3
        assert min(texture.shape[:2]) > 32  # a CIFAR crop fits
        red, _, blue = texture.reshape(-1, 3).mean(0)
        assert blue > red  # frost is bluish: a BGR mix-up would swap these
