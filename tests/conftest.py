from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SUBSET_DIR = SHARED / "datasets" / "cifar10-subset"
FASHION_DIR = SHARED / "datasets" / "fashion-mnist"
MODELS_DIR = ROOT / "models"

torch.set_num_threads(2)

def interruptible_sweep_cmd(out: Path, n: int, *extra: str) -> list[str]:
    """The sweep the interruption tests stop: PGD on the shipped vgg_c10s over eps 0:0.8:0.1, one thread.

    At eps <= 0.8/255 a quarter or more of the points stay robust at every eps, so every cell has work
    (about 1 s per cell on 120 images) and a signal sent after the first cells lands inside the run. On
    0:8:1 vgg_c10s has no robust points left from 4/255 on, those cells finish at once and a kill could
    arrive after the run had ended.
    """
    return [sys.executable, "-m", "robust_attn", "sweep", "--models", "vgg_c10s", "--attack", "pgd",
            "--eps", "0:0.8:0.1", "--n", str(n), "--threads", "1", "--out", str(out), "--models-dir", str(MODELS_DIR),
            *extra]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m robust_attn ARGS`` in a subprocess, like a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "robust_attn", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def shipped():
    """The shipped small CIFAR checkpoints (manifest order)."""
    from robust_attn.checkpoints import load_checkpoint, resolve_checkpoints

    refs = [r for r in resolve_checkpoints(None, MODELS_DIR) if r.name.endswith("_c10s")]
    assert len(refs) >= 5, "models/ must ship the small CIFAR checkpoints"
    return {r.name: load_checkpoint(r.path, r.sha256, r.name) for r in refs}


@pytest.fixture(scope="session")
def embedded_cifar():
    from robust_attn.data import load_dataset

    return load_dataset("cifar10-embedded").test


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (../shared is beside the project in CI)")
    return path
