"""Every user mistake: exit status 2, one stderr line naming the problem, no traceback, no output."""
from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from robust_attn.cli import main

from .conftest import MODELS_DIR, ROOT, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated")
    blob = torch.load(MODELS_DIR / "vgg_c10s.pt", weights_only=True)
    blob["metadata"]["architecture"] = "vgg-att3-concat-pc"
    torch.save(blob, d / "other_arch.pt")
    (d / "a_file").write_text("x")
    (d / "empty").mkdir()
    lying = d / "lying"
    lying.mkdir()
    shutil.copy(MODELS_DIR / "vgg_c10s.pt", lying / "vgg_c10s.pt")
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    entry = next(e for e in manifest["checkpoints"] if e["name"] == "vgg_c10s")
    (lying / "manifest.json").write_text(json.dumps({"checkpoints": [{**entry, "sha256": "0" * 64}]}))
    gone = d / "gone"  # a manifest entry whose checkpoint file is missing
    gone.mkdir()
    shutil.copy(MODELS_DIR / "vgg_c10s.pt", gone / "vgg_c10s.pt")
    vanished = {**entry, "name": "vanished", "file": "vanished.pt"}
    (gone / "manifest.json").write_text(json.dumps({"checkpoints": [entry, vanished]}))
    return d


S = ["sweep", "--models", "vgg_c10s", "--n", "8"]
T = ["train", "vgg", "--dataset", "synthetic", "--epochs", "1"]

CASES = [
    (["models", "nope*"], "no model matches"),
    (["models", "--width", "0"], "width"),
    (["models", "--checkpoints", "nope*"], "no checkpoint in models/manifest.json matches"),
    (["models", "--checkpoints", "--models-dir", "{d}"], "lists no checkpoints"),
    (["train", "vgk", "--out", "{d}/o.pt"], "did you mean 'vgg'"),
    ([*T, "--out", "{d}/o.pt", "--width", "0"], "width"),
    ([*T, "--out", "{d}/o.pt", "--width", "-1"], "width"),
    ([*T, "--out", "{d}/o.pt", "--width", "abc"], "--width"),
    ([*T, "--out", "{d}/o.pt", "--epochs", "0"], "epochs"),
    ([*T, "--out", "{d}/o.pt", "--batch-size", "0"], "batch_size"),
    ([*T, "--out", "{d}/o.pt", "--threads", "0"], "--threads"),
    ([*T, "--out", "{d}/o.pt", "--lr", "-1"], "lr"),
    ([*T, "--out", "{d}/o.pt", "--schedule", "cosine"], "--schedule"),
    ([*T, "--out", "{d}/o.pt", "--device", "tpu"], "device"),
    ([*T, "--out", "{d}/empty"], "is a directory"),
    ([*T, "--out", "{d}/o.pt", "--sync-bn"], "--sync-bn needs CUDA"),
    ([*T, "--out", "{d}/a_file/o.pt"], "checkpoint directory"),
    ([*T, "--out", "{d}/a_file"], "a_file exists; pass --force to overwrite (or --resume to continue it)"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pdg"], "unknown training threat model 'pdg'; did you mean 'pgd'?"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--threat-eps", "2"], "--threat-eps must lie in [0, 1]"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--threat-eps", "-1/255"], "--threat-eps must be a number"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--threat-eps", "abc"], "--threat-eps must be a number"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--threat-steps", "0"], "--threat-steps must be an integer >= 1"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--threat-step-size", "0"], "--threat-step-size must be a number in (0, 1]"),
    ([*T, "--out", "{d}/o.pt", "--threat", "trades", "--trades-beta", "-1"], "--trades-beta must be a number >= 0"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--trades-beta", "6"], "--trades-beta applies to --threat trades only"),
    ([*T, "--out", "{d}/o.pt", "--threat-eps", "8/255"], "--threat-eps applies to adversarial training"),
    ([*T, "--out", "{d}/o.pt", "--threat", "fast-fgsm", "--threat-steps", "3"], "fast-fgsm takes exactly 1 step"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--on-overfit", "maybe"], "--on-overfit must be one of"),
    ([*T, "--out", "{d}/o.pt", "--threat", "pgd", "--holdout", "1000"], "--holdout must be an integer from 0 to 254"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "cifar10", "--data-dir", "{d}/empty"],
     "empty/cifar-10-batches-py/ does not exist; `robust-attn train ... --dataset cifar10 --data-dir"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "imagenet"], "unknown dataset"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "cifar10-subset"], "needs --data-dir"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "cifar10-subset", "--data-dir", "{d}/none.npz"], "does not exist"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "cifar10-subset", "--data-dir", "{d}/a_file"], "cannot read"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "cifar10-embedded"], "evaluation-only"),
    (["train", "vgg", "--out", "{d}/o.pt", "--dataset", "fashion-mnist", "--data-dir", "{d}/empty"], "neither"),
    ([*S, "--attack", "fgsn", "--out", "{d}/o"], "did you mean 'fgsm'"),
    ([*S, "--attack", "fgsm", "--eps", "0:8:0", "--out", "{d}/o"], "step must be > 0"),
    ([*S, "--attack", "fgsm", "--eps", "", "--out", "{d}/o"], "empty"),
    ([*S, "--attack", "fgsm", "--eps", "0:8", "--out", "{d}/o"], "START:STOP:STEP"),
    ([*S, "--attack", "fgsm", "--eps", "-1:8:1", "--out", "{d}/o"], ">= 0"),
    ([*S, "--attack", "fgsm", "--eps", "8:0:1", "--out", "{d}/o"], "below start"),
    ([*S, "--attack", "fgsm", "--eps", "1,,2", "--out", "{d}/o"], "empty entry"),
    ([*S, "--attack", "fgsm", "--eps", "0:1:x", "--out", "{d}/o"], "not a number"),
    ([*S, "--attack", "fgsm", "--eps-unit", "px", "--out", "{d}/o"], "unit"),
    ([*S, "--attack", "cw", "--out", "{d}/o"], "--eps-unit raw"),
    ([*S, "--attack", "pgd", "--attack-arg", "steps=-1", "--out", "{d}/o"], "steps must be > 0"),
    ([*S, "--attack", "pgd", "--attack-arg", "steps=ten", "--out", "{d}/o"], "not a valid int"),
    ([*S, "--attack", "pgd", "--attack-arg", "steps", "--out", "{d}/o"], "KEY=VALUE"),
    ([*S, "--attack", "pgd", "--attack-arg", "stepz=3", "--out", "{d}/o"], "'stepz'"),
    (["sweep", "--models", "vgg_c10z", "--attack", "fgsm", "--out", "{d}/o"], "did you mean 'vgg_c10s'"),
    (["sweep", "--models", "{d}/none.pt", "--attack", "fgsm", "--out", "{d}/o"], "no checkpoint matches"),
    (["sweep", "--models", "{d}/corrupt.pt", "--attack", "fgsm", "--out", "{d}/o"], "not a readable checkpoint"),
    (["sweep", "--models", "{d}/other_arch.pt", "--attack", "fgsm", "--out", "{d}/o"], "do not fit"),
    (["sweep", "--models", "{d}/empty", "--attack", "fgsm", "--out", "{d}/o"], "is a directory"),
    (["sweep", "--models-dir", "{d}/lying", "--attack", "fgsm", "--out", "{d}/o"], "does not match the manifest"),
    (["sweep", "--models-dir", "{d}/empty", "--attack", "fgsm", "--out", "{d}/o"], "no checkpoints"),
    (["sweep", "--models-dir", "{d}/gone", "--strict", "--attack", "fgsm", "--out", "{d}/o"],
     "manifest entry 'vanished'"),
    ([*S, "--attack", "fgsm", "--dataset", "cifar10", "--data-dir", "{d}/empty", "--out", "{d}/o"],
     "cifar-10-batches-py/ does not exist"),
    ([*S, "--attack", "fgsm", "--n", "0", "--out", "{d}/o"], "n must be"),
    ([*S, "--attack", "fgsm", "--batch-size", "0", "--out", "{d}/o"], "batch_size"),
    ([*S, "--attack", "fgsm", "--seed", "-1", "--out", "{d}/o"], "seed"),
    ([*S, "--attack", "fgsm", "--threads", "0", "--out", "{d}/o"], "--threads"),
    ([*S, "--attack", "fgsm", "--device", "cuda:x", "--out", "{d}/o"], "device"),
    ([*S, "--attack", "fgsm", "--amp", "--out", "{d}/o"], "--amp needs a CUDA device"),
    ([*S, "--attack", "fgsm", "--dataset", "mnist", "--out", "{d}/o"], "unknown dataset"),
    ([*S, "--attack", "fgsm", "--dataset", "fashion-mnist-embedded", "--out", "{d}/o"], "cannot be evaluated"),
    ([*S, "--attack", "fgsm", "--out", "{d}/a_file"], "not a directory"),
    ([*S, "--attack", "fgsm", "--attack", "fgsm", "--out", "{d}/o"], "listed twice"),
    (["regress", "--models-dir", "{d}/empty"], "regression suite"),
    (["data", "make-subset", "{d}/none", "{d}/o.npz"], "does not exist"),
    (["nosuchcommand"], "No such command"),
]


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(c[0][:5]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, expected, files, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    before = set(files.rglob("*"))
    with pytest.raises(SystemExit) as info:
        main([a.replace("{d}", str(files)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    created = {p for p in set(files.rglob("*")) - before if p.is_file()}
    assert not created, f"left behind: {created}"


def test_a_missing_manifest_checkpoint_is_a_warning_that_skips_it(files, tmp_path):
    result = run_cli("sweep", "--models-dir", str(files / "gone"), "--attack", "fgsm", "--eps", "0,1", "-n", "8",
                     "--no-report", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "'vanished'" in warnings[0] and str(files / "gone" / "vanished.pt") in warnings[0]
    assert "error" not in result.stderr
    import pandas as pd

    assert set(pd.read_csv(tmp_path / "o" / "results.csv")["model"]) == {"vgg_c10s"}


def test_a_user_error_from_a_real_process_is_one_line():
    result = run_cli("sweep", "--attack", "fgsn")
    assert result.returncode == 2 and result.stderr.strip().startswith("error: unknown attack 'fgsn'; did you mean 'fgsm'")


def test_help_is_fast_and_lists_the_commands():
    start = time.perf_counter()
    result = run_cli("--help")
    assert result.returncode == 0 and time.perf_counter() - start < 5
    for command in ("models", "train", "sweep", "regress", "data"):
        assert command in result.stdout
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import sys, robust_attn.cli; print('torch' in sys.modules)"],
                           capture_output=True, text=True, cwd=ROOT)
    assert probe.stdout.strip() == "False", "the CLI module must not import torch at start-up"


def test_models_lists_the_registry_with_parameter_counts(capsys):
    with pytest.raises(SystemExit) as info:
        main(["models", "--width", "0.125"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for name in ("vgg", "vgg-att1-concat-pc", "vgg-att3-indep-dp"):
        assert f" {name} " in out
    assert "309,890" in out  # vgg at width 0.125
