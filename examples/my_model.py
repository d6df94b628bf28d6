"""A model of your own for `robust-attn sweep --models examples/my_model.py:build --dataset ...`."""
import torch
from torch import nn


def build() -> nn.Module:
    """Called with no arguments; returns the module to sweep: [0, 1] images in, logits out.

    Put your input normalisation inside the module and load your weights here, e.g.
    ``net.load_state_dict(torch.load("my_weights.pt", weights_only=True))``: every call (every
    torchrun process, every resumed run) must return the same weights.
    """
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
