"""Device choice, shared by training and sweeps."""
from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; an unavailable or unknown device is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise UserError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)
