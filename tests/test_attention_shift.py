"""The attention-shift attack: registered and declared honestly, inside the budget and [0, 1], the label
kept by construction, the maps moved more than PGD moves them at the same eps, refused (one line) for a
model without attention maps, seeded, and its shift measured exactly as the report measures it.

Measured on the shipped vgg-att3-concat-pc_c10s, first 32 embedded CIFAR images, 8/255, seed 0 (mean JS
distance over attended layers): attention-shift 0.433 (every label kept), with keep_label=false 0.586,
pgd 0.229, noise 0.182.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from robust_attn.attacks import (
    StandardLayout,
    create_attack,
    get_attack_cfg,
    list_attacks,
    resolve_params,
)
from robust_attn.attacks.attention_shift import (
    attention_model,
    attention_shift,
    attention_shift_per_layer,
)
from robust_attn.attacks.registry import Norm
from robust_attn.checkpoints import load_checkpoint
from robust_attn.errors import UserError
from robust_attn.report.attention import _js
from robust_attn.sweep.panels import attention_maps

from .conftest import MODELS_DIR

EPS = 8 / 255
N = 32


@pytest.fixture(scope="module")
def att():
    return load_checkpoint(MODELS_DIR / "vgg-att3-concat-pc_c10s.pt").model.eval()


@pytest.fixture(scope="module")
def data(embedded_cifar):
    return embedded_cifar.float_batch(slice(0, N))


@pytest.fixture(scope="module")
def kept(att, data):
    """attention-shift with its defaults (keep_label=true) at 8/255, seed 0."""
    x, y = data
    return create_attack("attention-shift", att, EPS, seed=0)(x, y)


def _predict(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def test_registered_listed_and_declared_honestly():
    assert "attention-shift" in list_attacks()
    cfg = get_attack_cfg("attention-shift")
    assert cfg.norm is Norm.LINF and cfg.eps_bounded and cfg.randomized
    assert (cfg.uses_gradient, cfg.ce_gradient, cfg.still_robust_fast_path) == (True, False, False)
    assert dict(cfg.defaults) == {"steps": 10, "rel_stepsize": 0.25, "random_start": True, "keep_label": True}
    assert "Ghorbani" in cfg.paper
    assert resolve_params("attention-shift", {"keep_label": "false", "steps": "3"})["keep_label"] is False
    with pytest.raises(UserError, match="must be > 0"):
        resolve_params("attention-shift", {"rel_stepsize": 0})


def test_output_within_eps_and_unit_range_and_global_rng_untouched(att, data, kept):
    x, y = data
    assert kept.shape == x.shape and bool(torch.isfinite(kept).all())
    assert float(kept.min()) >= 0 and float(kept.max()) <= 1
    assert float((kept - x).abs().max()) <= EPS + 1e-6
    assert float((kept - x).abs().max()) > EPS / 2, "it moved"
    before = torch.random.get_rng_state()
    att.train()
    try:
        create_attack("attention-shift", att, EPS, seed=1, steps=2)(x[:4], y[:4])
        assert att.training, "the model's mode is restored"
    finally:
        att.eval()
    assert torch.equal(torch.random.get_rng_state(), before), "randomness from its own generator"


def test_keep_label_keeps_every_prediction_and_moves_the_maps_more_than_pgd(att, data, kept):
    x, y = data
    clean_pred = _predict(att, x)
    assert torch.equal(_predict(att, kept), clean_pred), "label kept, re-predicted"
    ours = attention_shift(att, x, kept)
    pgd = attention_shift(att, x, create_attack("pgd", att, EPS, seed=0)(x, y))
    noise = attention_shift(att, x, create_attack("noise", att, EPS, seed=0)(x, y))
    assert ours.shape == (N,) and ours.dtype == torch.float64
    correct = clean_pred == y
    print(f"mean JS at 8/255: attention-shift {ours.mean():.4f} (clean-correct {ours[correct].mean():.4f}), "
          f"pgd {pgd.mean():.4f} ({pgd[correct].mean():.4f}), noise {noise.mean():.4f}")
    assert float(ours.mean()) > 1.5 * float(pgd.mean()), (ours.mean(), pgd.mean())
    assert float(ours[correct].mean()) > 1.5 * float(pgd[correct].mean())
    assert float(ours.mean()) > float(noise.mean())
    assert bool((ours > 0).all()), "every image's maps moved"


def test_without_keep_label_the_maps_move_at_least_as_much(att, data, kept):
    x, y = data
    free = create_attack("attention-shift", att, EPS, seed=0, keep_label=False)(x, y)
    assert float((free - x).abs().max()) <= EPS + 1e-6 and float(free.min()) >= 0 and float(free.max()) <= 1
    s_free, s_kept = attention_shift(att, x, free), attention_shift(att, x, kept)
    # Same seed, same trajectory: the best iterate overall is at least the best label-keeping one.
    assert bool((s_free >= s_kept - 1e-5).all())
    assert float(s_free.mean()) > float(s_kept.mean())


def test_a_model_without_attention_maps_is_a_one_line_error(data):
    x, y = data
    vgg = load_checkpoint(MODELS_DIR / "vgg_c10s.pt").model.eval()
    attack = create_attack("attention-shift", vgg, EPS, seed=0)
    for call in (lambda: attack(x[:2], y[:2]), lambda: attention_shift(vgg, x[:2], x[:2])):
        with pytest.raises(UserError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message
        assert message == "attention-shift needs a model with spatial attention maps; vgg has none"
    with pytest.raises(UserError, match="; vgg_c10s has none$"):
        attention_model(StandardLayout(vgg), name="vgg_c10s")
    with pytest.raises(UserError, match="Linear has none"):
        attention_model(torch.nn.Linear(2, 2))


def test_same_seed_same_output_and_another_seed_another(att, data):
    x, y = data
    x, y = x[:8], y[:8]
    first = create_attack("attention-shift", att, EPS, seed=7, steps=3)(x, y)
    again = create_attack("attention-shift", att, EPS, seed=7, steps=3)(x, y)
    other = create_attack("attention-shift", att, EPS, seed=8, steps=3)(x, y)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_eps_zero_returns_the_input_in_both_layouts(att, data):
    x, y = data
    fast = copy.deepcopy(att).to(memory_format=torch.channels_last)
    for model, images in ((att, x[:4]), (fast, x[:4].contiguous(memory_format=torch.channels_last))):
        out = create_attack("attention-shift", model, 0.0, seed=0)(images, y[:4])
        assert torch.equal(out, images)
    assert bool((attention_shift(att, x[:4], x[:4]) == 0).all()), "no perturbation, no shift"


def test_channels_last_model_gives_the_same_kept_labels(att, data):
    x, y = data
    x, y = x[:8], y[:8]
    fast = copy.deepcopy(att).to(memory_format=torch.channels_last)
    out = create_attack("attention-shift", fast, EPS, seed=3, steps=3)(x.contiguous(memory_format=torch.channels_last), y)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(_predict(att, out), _predict(att, x))
    assert float((out - x).abs().max()) <= EPS + 1e-6


def test_shift_is_the_reports_js_distance(att, data, kept):
    """attention_shift equals the report's measure: scipy's JS distance (base 2) per layer, then the mean."""
    x, _ = data
    clean, adv = attention_maps(att, x), attention_maps(att, kept)
    reference = np.mean([_js(c.numpy(), a.numpy()) for c, a in zip(clean, adv)], axis=0)
    per_layer = attention_shift_per_layer(StandardLayout(att), x, kept)
    assert per_layer.shape == (N, len(att.cfg.attention_layers))
    np.testing.assert_allclose(attention_shift(att, x, kept).numpy(), reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(per_layer.mean(1).numpy(), reference, rtol=1e-4, atol=1e-6)


def test_a_sweep_records_the_shift_per_cell_and_per_example_and_refuses_models_without_maps(tmp_path):
    """The sweep's rows carry the attack's objective and the achieved shift; per_example.csv the shift of
    every example; every point it reports with its clean prediction really has it (re-predicted)."""
    import pandas as pd

    from robust_attn.sweep import run_sweep

    ckpt = load_checkpoint(MODELS_DIR / "vgg-att3-concat-pc_c10s.pt")
    frame = run_sweep([ckpt], ["attention-shift", "fgsm"], "0,8", n=12, out=tmp_path, per_example=True,
                  attack_args={"steps": 3})
    rows = frame.set_index(["attack", "eps_label"])
    assert rows.loc[("attention-shift", "0"), "attention_shift"] == 0.0
    assert rows.loc[("attention-shift", "8/255"), "attention_shift"] > 0.05
    assert rows.loc[("attention-shift", "8/255"), "objective"] == "attention"
    assert rows.loc[("fgsm", "8/255"), "objective"] == "misclassify"
    assert pd.isna(rows.loc[("fgsm", "8/255"), "attention_shift"])
    examples = pd.read_csv(tmp_path / "per_example.csv")
    moved = examples[(examples.attack == "attention-shift") & (examples.eps_label == "8/255")]
    assert moved["attention_shift"].mean() == pytest.approx(rows.loc[("attention-shift", "8/255"), "attention_shift"])
    assert (moved["adv_pred"] == moved["clean_pred"]).all()
    with pytest.raises(UserError, match="vgg_c10s has none"):
        run_sweep([load_checkpoint(MODELS_DIR / "vgg_c10s.pt")], ["attention-shift"], "0,8", n=4)
