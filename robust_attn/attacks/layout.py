"""Attacks see one memory layout, whatever the layout of the model and the images.

Attack libraries assume standard-contiguous N x C x H x W tensors: torchattacks' PGDL2 and FAB
call ``.view(N, -1)`` (which fails on channels_last tensors), and ``randn_like`` follows the
layout of its argument (so random draws depend on it). :class:`StandardLayout` wraps a model so
that the attack hands it standard-contiguous images and gets standard-contiguous input gradients
back, while the model itself still runs in the layout of its own weights (channels_last is the
fast path on CPU).
"""
from __future__ import annotations

import torch
from torch import nn


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-D tensor stored channels-last (and not also standard-contiguous,
    as tensors with one channel or one pixel are), else ``torch.contiguous_format``."""
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def model_memory_format(model: nn.Module) -> torch.memory_format:
    """The layout of the model's first 4-D weight (a convolution's), the layout to feed it."""
    for p in model.parameters():
        if p.ndim == 4:
            return memory_format_of(p)
    return torch.contiguous_format


class _ToLayout(torch.autograd.Function):
    """Forward: a copy of ``x`` in ``memory_format``. Backward: the gradient, standard-contiguous."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:  # type: ignore[override]
        return x.clone(memory_format=memory_format)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad.contiguous(), None


class StandardLayout(nn.Module):
    """``model`` seen through standard-contiguous inputs and input gradients.

    ``forward(x)`` runs ``model`` on ``x`` converted to the layout of the model's weights; the
    gradient with respect to ``x`` comes back standard-contiguous. The wrapped model is a submodule
    (attacks find its device and parameters), not modified; ``num_classes`` is passed through.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_classes: int | None = getattr(model, "num_classes", None)
        self.memory_format = model_memory_format(model)
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = _ToLayout.apply(x, self.memory_format)
        return self.model(x)
