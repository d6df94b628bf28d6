"""Randomised models: the shipped fixture (a checkpoint behind Gaussian input noise, as a user brings one)
is named by the admission check, and plain PGD, which follows one random draw of the gradient, reports a
clearly higher accuracy than PGD with expectation over transformation."""
from __future__ import annotations

import pytest
import torch

from robust_attn.attacks import create_attack, get_attack_cfg
from robust_attn.results import ADMISSION_FILE, read_admission_csv
from robust_attn.sweep import run_sweep

from .conftest import invoke
from .fixtures.noisy_model import noisy_vgg

FIXTURE = "tests/fixtures/noisy_model.py:noisy_vgg"


def test_eot_pgd_breaks_what_plain_pgd_leaves_standing_on_the_noisy_fixture(tmp_path):
    frame = run_sweep([FIXTURE], ["pgd", "eot-pgd"], "2", "cifar10-embedded", n=48, out=tmp_path,
                      attack_args={"eot_iter": 5})
    accuracy = frame.set_index("attack")["accuracy"]
    assert accuracy["pgd"] - accuracy["eot-pgd"] >= 0.15, accuracy.to_dict()
    checks = read_admission_csv(tmp_path / ADMISSION_FILE).set_index("check")["status"]
    assert checks["deterministic forward"] == "FAIL"


def test_on_a_deterministic_model_eot_pgd_is_pgd_averaged_over_identical_gradients():
    model = noisy_vgg().model.eval()  # the checkpoint without its noise
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    plain = create_attack("pgd", model, 2 / 255, seed=1, early_stop=False)(x, y)
    averaged = create_attack("eot-pgd", model, 2 / 255, seed=1, eot_iter=3)(x, y)
    assert torch.allclose(plain, averaged, atol=1e-6)


def test_autoattack_rand_is_torchattacks_rand_version():
    cfg = get_attack_cfg("autoattack-rand")
    assert dict(cfg.defaults) == {"steps": 10, "eot_iter": 20} and cfg.randomized


@pytest.mark.parametrize("pattern,expected", [("*eot*", "eot-pgd"), ("autoattack*", "autoattack-rand")])
def test_the_eot_attacks_are_listed_by_the_attacks_command(pattern, expected):
    result = invoke("attacks", pattern)
    assert result.returncode == 0 and expected in result.stdout


def test_eot_iter_on_an_attack_without_it_names_the_ones_that_take_it(tmp_path):
    result = invoke("sweep", "--models", "vgg_c10s", "--attack", "pgd", "--attack-arg", "eot_iter=20",
                    "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "attacks that take it: apgd-ce, apgd-dlr, autoattack-rand, eot-pgd" in result.stderr
    assert invoke("attacks", "nothing*").stderr.startswith("error: no attack matches")


def test_a_random_model_scores_the_same_for_the_same_seed(tmp_path):
    runs = [run_sweep([FIXTURE], ["pgd"], "0,1", "cifar10-embedded", n=32, seed=5) for _ in range(2)]
    columns = ["attack", "eps_label", "n_correct", "clean_accuracy"]
    assert runs[0][columns].equals(runs[1][columns])
