"""RobustBench's admission checks, made by the sweep on every model before any attack: each has a PASS on a
shipped checkpoint and a FAIL on the same checkpoint made wrong the way real evaluations go wrong."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from torch import nn

from robust_attn.checkpoints import load_checkpoint
from robust_attn.data import load_dataset
from robust_attn.report import build_report
from robust_attn.results import ADMISSION_FILE, AdmissionCheck, read_admission_csv
from robust_attn.run.admission import recorded_clean_accuracy
from robust_attn.run.inputs import EvalData
from robust_attn.sweep import run_sweep

from .conftest import MODELS_DIR
from .fixtures.noisy_model import GaussianInputNoise


@pytest.fixture(scope="module")
def vgg():
    return load_checkpoint(MODELS_DIR / "vgg_c10s.pt", name="vgg_c10s")


class Rounded(nn.Module):
    """The model behind an 8-bit rounding of its input: the same predictions, no input gradient."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.num_classes = model, model.num_classes

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


class SwappedChannels(nn.Module):
    """The model fed BGR instead of RGB: what a wrong channel order does to a real evaluation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.num_classes = model, model.num_classes

    def forward(self, x):
        return self.model(x.flip(1))


def admission(ckpt, tmp_path, n: int | None = 64) -> dict[str, pd.Series]:
    run_sweep([ckpt], ["noise"], "0", n=n, out=tmp_path, seed=0)
    frame = read_admission_csv(tmp_path / ADMISSION_FILE)
    return {row["check"]: row for _, row in frame.iterrows()}


def test_a_shipped_checkpoint_passes_every_check_on_its_whole_test_split(vgg, tmp_path):
    checks = admission(vgg, tmp_path, n=None)
    assert [checks[c.value]["status"] for c in AdmissionCheck] == ["PASS", "PASS", "PASS"]
    clean = checks[AdmissionCheck.CLEAN_ACCURACY.value]
    assert clean["measured"] == pytest.approx(vgg.metadata["clean_accuracy"], abs=1e-9)
    assert clean["expected"] == vgg.metadata["clean_accuracy"] and clean["n"] == 932


def test_a_random_forward_fails_the_determinism_check(vgg, tmp_path):
    noisy = dataclasses.replace(vgg, name="noisy", model=GaussianInputNoise(vgg.model, 0.03))
    check = admission(noisy, tmp_path)[AdmissionCheck.DETERMINISTIC.value]
    assert check["status"] == "FAIL" and check["measured"] > 100 * check["expected"]
    assert "random" in check["detail"] and "eot-pgd" in check["detail"]


def test_a_model_without_input_gradient_fails_the_gradient_check(vgg, tmp_path):
    rounded = dataclasses.replace(vgg, name="rounded", model=Rounded(vgg.model))
    checks = admission(rounded, tmp_path)
    assert checks[AdmissionCheck.GRADIENT.value]["status"] == "FAIL"
    assert checks[AdmissionCheck.GRADIENT.value]["measured"] == 1.0
    assert checks[AdmissionCheck.DETERMINISTIC.value]["status"] == "PASS"  # rounding is not randomness


def test_a_wrong_channel_order_fails_the_clean_accuracy_check_with_both_numbers(vgg, tmp_path):
    swapped = dataclasses.replace(vgg, name="swapped", model=SwappedChannels(vgg.model))
    check = admission(swapped, tmp_path, n=None)[AdmissionCheck.CLEAN_ACCURACY.value]
    assert check["status"] == "FAIL" and check["expected"] == vgg.metadata["clean_accuracy"]
    assert check["measured"] < check["expected"] - 0.05
    assert f"{100 * check['measured']:.1f}%" in check["detail"] and f"{100 * check['expected']:.1f}%" in check["detail"]
    report = build_report([tmp_path], tmp_path / "report")
    sanity = pd.read_csv(report.parent / "sanity.csv")
    row = sanity[sanity["check"].str.startswith("admission: clean accuracy")].iloc[0]
    assert row["status"] == "FAIL" and "swapped" in row["detail"]


def test_other_images_than_the_recorded_ones_are_not_compared(vgg):
    images = load_dataset("cifar10-embedded").test
    part = EvalData("cifar10-embedded", dataclasses.replace(images, x=images.x[:100], y=images.y[:100]), len(images))
    recorded, why = recorded_clean_accuracy(vgg.metadata, part)
    assert recorded is None and "932" in why and "100" in why
    whole = EvalData("cifar10-embedded", images, len(images))
    assert recorded_clean_accuracy(vgg.metadata, whole)[0] == vgg.metadata["clean_accuracy"]
    # a checkpoint that records its test images' hash is compared by the hash, whatever the set's name
    hashed = {**vgg.metadata, "test_data_sha256": whole.sha256}
    assert recorded_clean_accuracy(hashed, EvalData("another-name", images))[0] == vgg.metadata["clean_accuracy"]
    assert recorded_clean_accuracy({**hashed, "test_data_sha256": "0" * 64}, whole)[0] is None


def test_a_report_names_the_upper_bounds_of_a_random_model(vgg, tmp_path):
    noisy = dataclasses.replace(vgg, name="noisy", model=GaussianInputNoise(vgg.model, 0.03))
    run_sweep([noisy], ["fgsm"], "0,1", n=32, out=tmp_path, seed=0)
    build_report([tmp_path], tmp_path / "report")
    sanity = pd.read_csv(tmp_path / "report" / "sanity.csv")
    row = sanity[sanity["check"].str.startswith("admission: deterministic")].iloc[0]
    assert row["status"] == "FAIL" and "upper bounds" in row["detail"] and "fgsm" in row["detail"]
    assert "eot-pgd" in row["suggests"]
