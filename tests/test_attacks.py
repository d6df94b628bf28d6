"""Every registered attack: budget respected, pixel range kept, eval mode restored, seeded."""
from __future__ import annotations

import pytest
import torch
import torchattacks

from robust_attn.attacks import (
    AttackCfg, Norm, create_attack, get_attack_cfg, list_attacks, parse_attack_args, register_attack, resolve_params,
)
from robust_attn.errors import UserError
from robust_attn.models import create_model

# Cheap settings so every entry runs in a test; the defaults stay the published ones.
_FAST = {"steps": 3, "n_queries": 20}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = create_model("vgg-att2-concat-pc", width=0.125, num_classes=10)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # attack points the model gets right
    return model, x, y


def test_registry_has_the_required_entries():
    assert {"fgsm", "bim", "pgd", "pgd-l2", "cw", "deepfool", "apgd-ce", "apgd-dlr", "autoattack", "square",
            "noise"} <= set(list_attacks())
    assert not get_attack_cfg("cw").eps_bounded and not get_attack_cfg("deepfool").eps_bounded
    assert get_attack_cfg("pgd").defaults["random_start"] is True


def test_duplicate_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_attack(AttackCfg("fgsm", Norm.LINF, True, "x"))(lambda *a: None)
    with pytest.raises(UserError, match="did you mean 'pgd'"):
        get_attack_cfg("pgdd")


@pytest.mark.parametrize("name", list_attacks())
def test_attack_respects_budget_range_and_mode(name, tiny):
    model, x, y = tiny
    cfg = get_attack_cfg(name)
    eps = 8 / 255 if cfg.norm is Norm.LINF else 0.5
    params = {k: v for k, v in _FAST.items() if k in cfg.defaults}
    model.train()
    before = torch.random.get_rng_state()
    x_adv = create_attack(name, model, eps, seed=1, **params)(x, y)
    assert model.training, "the model's previous mode must be restored"
    assert torch.equal(torch.random.get_rng_state(), before), "attacks must not touch the global RNG"
    assert x_adv.shape == x.shape and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    delta = (x_adv - x).flatten(1)
    if cfg.eps_bounded:
        size = delta.abs().amax(1) if cfg.norm is Norm.LINF else delta.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5
    again = create_attack(name, model, eps, seed=1, **params)(x, y)
    assert torch.equal(x_adv, again), "same seed, same adversarial examples"


def test_attacks_run_the_model_in_eval_mode(tiny):
    model, x, y = tiny
    seen = []
    handle = model.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    try:
        model.train()
        create_attack("pgd", model, 4 / 255, steps=2)(x, y)
    finally:
        handle.remove()
    assert seen and not any(seen)


@pytest.mark.parametrize("bad", [torch.full((1, 3, 32, 32), 1.5), torch.full((1, 3, 32, 32), -0.1),
                                 torch.full((1, 3, 32, 32), float("nan"))])
def test_inputs_outside_unit_range_are_rejected_not_clamped(bad, tiny):
    model, _, _ = tiny
    with pytest.raises(UserError):
        create_attack("fgsm", model, 0.1)(bad, torch.zeros(1, dtype=torch.long))


def test_labels_out_of_range_are_rejected(tiny):
    model, x, _ = tiny
    with pytest.raises(UserError, match="labels"):
        create_attack("fgsm", model, 0.1)(x, torch.full((3,), 10))


def test_parameters_are_typed_and_checked():
    assert resolve_params("pgd", {"steps": "20", "random_start": "false"}) == {
        "steps": 20, "rel_stepsize": 0.25, "random_start": False, "early_stop": True}
    for overrides, match in [({"stepz": 1}, "no parameter 'stepz'"), ({"steps": "x"}, "not a valid int"),
                             ({"steps": -1}, "must be > 0"), ({"steps": 2.5}, "must be int"),
                             ({"random_start": "maybe"}, "not a valid bool")]:
        with pytest.raises(UserError, match=match):
            resolve_params("pgd", overrides)
    assert parse_attack_args(["steps=20", " rel_stepsize = 0.1 "]) == {"steps": "20", "rel_stepsize": "0.1"}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_attack_args(["steps"])


def test_pgd_without_early_stop_is_torchattacks_pgd_and_early_stop_is_no_weaker(shipped, embedded_cifar):
    model = shipped["vgg_c10s"].model.eval()
    x, y = embedded_cifar.float_batch(slice(0, 128))
    torch.manual_seed(3)
    reference = torchattacks.PGD(model, eps=2 / 255, alpha=0.5 / 255, steps=10, random_start=True)(x, y)
    plain = create_attack("pgd", model, 2 / 255, seed=3, early_stop=False)(x, y)
    assert torch.equal(plain, reference)
    early = create_attack("pgd", model, 2 / 255, seed=3)(x, y)
    assert float((early - x).abs().max()) <= 2 / 255 + 1e-6
    with torch.no_grad():
        broken_plain = model(plain).argmax(1) != y
        broken_early = model(early).argmax(1) != y
    assert int(broken_early.sum()) >= int(broken_plain.sum())


def test_negative_eps_is_rejected(tiny):
    model, _, _ = tiny
    with pytest.raises(UserError, match="eps"):
        create_attack("pgd", model, -0.1)
