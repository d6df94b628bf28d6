"""--quantize: adversarial images scored as an 8- or 16-bit file would store them, inside their budget."""
from __future__ import annotations

import json

import pytest
import torch

from robust_attn.attacks import Norm
from robust_attn.attacks.quantization import quantize
from robust_attn.sweep import run_sweep

from .conftest import MODELS_DIR, invoke


def clean_images(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g).float() / 255  # as read from an 8-bit file


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("eps", [0.0, 0.5 / 255, 1 / 255, 1.7 / 255, 8 / 255])
def test_linf_outputs_lie_on_the_grid_inside_the_budget(bits, eps):
    x = clean_images()
    g = torch.Generator().manual_seed(1)
    x_adv = (x + eps * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(0, 1)
    q = quantize(x, x_adv, bits, eps, Norm.LINF)
    levels = 2 ** bits - 1
    assert torch.equal(q * levels, torch.round(q * levels)) and q.min() >= 0 and q.max() <= 1
    assert float((q - x).abs().max()) <= eps * (1 + 1e-5) + 1e-6
    if eps == 0:
        assert torch.equal(q, x)
    # at most one level from the attack's image (half of one where rounding to the nearest level kept the budget)
    assert float((q - x_adv).abs().max()) <= 1 / levels + 1e-7


def test_l2_rounding_toward_the_clean_image_never_grows_the_norm():
    x = clean_images()
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    eps = 0.05
    x_adv = (x + eps * direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    q = quantize(x, x_adv, 8, eps, Norm.L2)
    assert float((q - x).flatten(1).norm(dim=1).max()) <= eps * (1 + 1e-5) + 1e-6


def test_a_quantized_sweep_records_it_and_keeps_its_own_cells(tmp_path):
    ckpt = MODELS_DIR / "vgg_c10s.pt"
    plain = run_sweep([ckpt], ["fgsm"], "0,0.5,2", n=64, out=tmp_path)
    rounded = run_sweep([ckpt], ["fgsm"], "0,0.5,2", n=64, out=tmp_path, quantize=8)
    assert all(json.loads(p) == {"quantize": 8} for p in rounded["attack_params"])
    assert all(json.loads(p) == {} for p in plain["attack_params"])
    by_eps = rounded.set_index("eps_label")
    # half a level is no perturbation at all once rounded: every point keeps its clean outcome
    assert by_eps.loc["0.5/255", "accuracy"] == by_eps.loc["0", "accuracy"] == by_eps.loc["0", "clean_accuracy"]
    assert plain.set_index("eps_label").loc["0.5/255", "accuracy"] < by_eps.loc["0.5/255", "accuracy"]
    assert (rounded["max_perturbation"] <= rounded["eps"] * (1 + 1e-5) + 1e-6).all()
    assert by_eps.loc["2/255", "max_perturbation"] == pytest.approx(2 / 255, abs=1e-6)  # float32 pixels
    assert len(__import__("pandas").read_csv(tmp_path / "results.csv")) == 6  # both curves kept


@pytest.mark.parametrize("bits", ["7", "0", "32"])
def test_other_bit_depths_are_one_line(bits, tmp_path):
    result = invoke("sweep", "--models", "vgg_c10s", "--attack", "fgsm", "--quantize", bits, "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stderr.startswith("error: --quantize must be 8 or 16")
    assert not (tmp_path / "r").exists()
