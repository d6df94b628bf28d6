"""Gradient-masked and otherwise misleading versions of a shipped checkpoint, built at test time.

Each is a real model (the shipped ``vgg_c10s`` weights) whose robustness an attack following the
cross-entropy gradient misjudges, as in Carlini et al. 2019 (arXiv:1902.06705) and Athalye et al.
2018 (arXiv:1802.00420). Nothing here is committed as a file: tests build them in memory or save
them into temporary folders.

* :func:`saturated`: the classifier's weight and bias times 1e4. Predictions are unchanged (argmax
  is scale-invariant) and so is true robustness, but softmax saturates in float32 and the
  cross-entropy gradient of almost every correctly classified point underflows to exactly zero.
* :func:`quantised`: inputs rounded to ``levels`` grey levels inside forward (a non-differentiable
  preprocessing layer; shattered gradients): the input gradient is exactly zero everywhere.
* :func:`stochastic`: Gaussian noise added to the input inside forward, also in eval mode (a
  randomised defence): two forward passes on one input disagree.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from torch import nn

from robust_attn.checkpoints import Checkpoint, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "vgg_c10s.pt"
SCALE = 1e4


def shipped(path: Path = SHIPPED) -> Checkpoint:
    return load_checkpoint(path)


def saturated(ckpt: Checkpoint | None = None, scale: float = SCALE) -> Checkpoint:
    """The classifier layer's weight and bias scaled by ``scale`` (a ModelWrapper like the original)."""
    ckpt = ckpt or shipped()
    model = copy.deepcopy(ckpt.model)
    with torch.no_grad():
        model.net.classifier.weight.mul_(scale)
        model.net.classifier.bias.mul_(scale)
    return dataclasses.replace(ckpt, name="masked-saturated", model=model)


def save_saturated(path: Path, scale: float = SCALE) -> Path:
    """Fixture (a) as a checkpoint file, for the command line."""
    ckpt = saturated(scale=scale)
    keep = {k: v for k, v in ckpt.metadata.items()
            if k not in ("architecture", "width", "num_classes", "in_channels", "mean", "std")}
    return save_checkpoint(ckpt.model, path, {**keep, "note": f"classifier scaled by {scale:g} (gradient-masking fixture)"})


class _Preprocessed(nn.Module):
    """A model with a preprocessing step before it; keeps the attributes the sweep reads."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        for attr in ("cfg", "num_classes", "in_channels", "width", "normalization"):
            setattr(self, attr, getattr(inner, attr))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.preprocess(x))


class _Quantise(_Preprocessed):
    def __init__(self, inner: nn.Module, levels: int):
        super().__init__(inner)
        self.levels = levels

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class _Noisy(_Preprocessed):
    def __init__(self, inner: nn.Module, sigma: float, seed: int):
        super().__init__(inner)
        self.sigma = sigma
        self.generator = torch.Generator().manual_seed(seed)  # its own stream: a test reruns identically

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
        return (x + self.sigma * noise).clamp(0, 1)


def quantised(ckpt: Checkpoint | None = None, levels: int = 8) -> Checkpoint:
    """Inputs rounded to ``levels`` grey levels before the network: gradient exactly zero."""
    ckpt = ckpt or shipped()
    return dataclasses.replace(ckpt, name="masked-quantised", model=_Quantise(copy.deepcopy(ckpt.model), levels).eval())


def stochastic(ckpt: Checkpoint | None = None, sigma: float = 0.1, seed: int = 0) -> Checkpoint:
    """Gaussian input noise of standard deviation ``sigma`` inside forward, in eval mode too (drawn
    from the model's own generator, so a test is deterministic)."""
    ckpt = ckpt or shipped()
    model = _Noisy(copy.deepcopy(ckpt.model), sigma, seed).eval()
    return dataclasses.replace(ckpt, name="masked-stochastic", model=model)
