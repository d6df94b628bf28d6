"""torchrun on CPU (gloo): a distributed sweep equals the single-process one; DDP training works."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import torch

from robust_attn.checkpoints import load_checkpoint

from .conftest import MODELS_DIR, ROOT


def _run(args: list[str], distributed: bool) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] \
        if distributed else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "robust_attn", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_distributed_sweep_equals_single_process_cell_for_cell(tmp_path):
    args = ["sweep", "--models", "vgg-att3-concat-pc_c10s", "--models-dir", str(MODELS_DIR), "--attack", "fgsm,pgd",
            "--eps", "0:8:2", "--examples", "96", "--threads", "1", "--no-report", "--batch-size", "48"]
    single = _run([*args, "--out", str(tmp_path / "single")], distributed=False)
    assert single.returncode == 0, single.stderr
    multi = _run([*args, "--out", str(tmp_path / "multi")], distributed=True)
    assert multi.returncode == 0, multi.stderr[-2000:]
    a = pd.read_csv(tmp_path / "single" / "results.csv").drop(columns="seconds")
    b = pd.read_csv(tmp_path / "multi" / "results.csv").drop(columns="seconds")
    assert set(a["attack"]) == {"fgsm", "pgd"} and len(a) == 10
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "single" / "per_example.csv").read_bytes() == (tmp_path / "multi" / "per_example.csv").read_bytes()
    assert '"processes": 2' in (tmp_path / "multi" / "runs.jsonl").read_text()


def test_distributed_training_writes_a_checkpoint_that_reloads(tmp_path):
    out = tmp_path / "ddp.pt"
    result = _run(["train", "vgg-att2-concat-pc", "--dataset", "synthetic", "--epochs", "1", "--width", "0.125",
                   "--threads", "1", "--out", str(out)], distributed=True)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = load_checkpoint(out)
    assert ckpt.metadata["processes"] == 2 and ckpt.metadata["architecture"] == "vgg-att2-concat-pc"
    x = torch.rand(2, 3, 32, 32)
    assert torch.isfinite(ckpt.model(x)).all()
    assert not out.with_name(out.name + ".state").exists()
