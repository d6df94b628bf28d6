"""robust-attn: adversarial-robustness evaluation of the attention CNNs of
*Learn To Pay Attention* (Jetley, Lord, Lee, Torr; ICLR 2018) and their baselines.

The public API is imported lazily so that ``robust-attn --help`` does not pay for torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.5.0"

_API = {
    "create_model": "robust_attn.models",
    "list_models": "robust_attn.models",
    "load_checkpoint": "robust_attn.checkpoints",
    "list_attacks": "robust_attn.attacks",
    "create_attack": "robust_attn.attacks",
    "parse_eps_grid": "robust_attn.attacks",
    "run_sweep": "robust_attn.sweep",
    "run_study": "robust_attn.study",
    "run_transfer": "robust_attn.transfer",
    "load_study": "robust_attn.study",
    "UserModel": "robust_attn.user_models",
    "load_dataset": "robust_attn.data",
    "list_datasets": "robust_attn.data",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import the public name's module on first use (``robust-attn --help`` must not import torch)."""
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'robust_attn' has no attribute {name!r}")
