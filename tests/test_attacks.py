"""Every registered attack: budget respected, pixel range kept, eval mode restored, seeded, the same
whatever the memory layout, defined at eps 0; declared gradient needs; CW's search over c."""
from __future__ import annotations

import copy

import pytest
import torch
import torchattacks

from robust_attn.corruptions import list_corruptions
from robust_attn.attacks import (
    AttackCfg, AttackKind, Norm, Objective, create_attack, get_attack_cfg, list_attacks, parse_attack_args, register_attack,
    resolve_params,
)
from robust_attn.attacks import registry as attack_registry
from robust_attn.errors import UserError
from robust_attn.models import create_model

# Cheap settings so every entry runs in a test; the defaults stay the published ones.
_FAST = {"steps": 3, "n_queries": 20, "binary_search_steps": 2, "eot_iter": 2}
_FASTER = {"autoattack": {"steps": 1, "n_queries": 10}}  # four attacks, APGD-T and FAB-T over every class

# What each attack needs from the model's gradient, checked by hand (see the saturated-softmax test):
# (uses_gradient, ce_gradient, still_robust_fast_path).
_GRADIENT_NEEDS = {
    "fgsm": (True, True, False), "bim": (True, True, True), "pgd": (True, True, True),
    "pgd-l2": (True, True, False), "apgd-ce": (True, True, False), "apgd-dlr": (True, False, False),
    "autoattack": (True, False, False), "cw": (True, False, False), "deepfool": (True, False, False),
    "square": (False, False, False), "noise": (False, False, False), "noise-l2": (False, False, False),
    "attention-shift": (True, False, False), "eot-pgd": (True, True, False), "autoattack-rand": (True, False, False),
    # common corruptions never look at the model (robust_attn.attacks.corruptions)
    **{name: (False, False, False) for name in list_corruptions()},
}
# Label attacks: what the tests below that expect points to be broken (or a plain vgg to be attackable) run.
LABEL_ATTACKS = [n for n in list_attacks() if get_attack_cfg(n).objective is Objective.MISCLASSIFY]


def _fast(name: str) -> dict:
    defaults = get_attack_cfg(name).defaults
    return _FASTER.get(name, {k: v for k, v in _FAST.items() if k in defaults})


def _eps(name: str) -> float:
    """A budget to test at: 8/255 (Linf), 0.5 (L2); minimal-perturbation attacks ignore eps and,
    as in the sweep, run at 0."""
    cfg = get_attack_cfg(name)
    if not cfg.eps_bounded:
        return 0.0
    return 8 / 255 if cfg.norm is Norm.LINF else 0.5


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
        register_attack(AttackCfg("fgsm", Norm.LINF, True, "x", kind=AttackKind.SINGLE_STEP, uses_gradient=True, ce_gradient=True,
                                  still_robust_fast_path=False))(lambda *a: None)
    with pytest.raises(UserError, match="did you mean 'pgd'"):
        get_attack_cfg("pgdd")
    with pytest.raises(ValueError, match="'corruptions' is reserved"):  # the command line's group name
        register_attack(AttackCfg("corruptions", Norm.LINF, True, "x", kind=AttackKind.SINGLE_STEP, uses_gradient=True,
                                  ce_gradient=True, still_robust_fast_path=False))(lambda *a: None)
    assert "corruptions" not in list_attacks()


@pytest.mark.parametrize("name", list_attacks())
def test_attack_respects_budget_range_and_mode(name, tiny):
    model, x, y = tiny
    cfg = get_attack_cfg(name)
    eps = _eps(name)
    params = _fast(name)
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
    assert resolve_params("cw", {"binary_search_steps": "3", "abort_early": "no", "confidence": "0"})["confidence"] == 0.0
    with pytest.raises(UserError, match="must be >= 0"):
        resolve_params("cw", {"confidence": -1})
    with pytest.raises(UserError, match="must be > 0"):
        resolve_params("cw", {"initial_const": 0})
    for overrides, match in [({"stepz": 1}, "no parameter 'stepz'"), ({"steps": "x"}, "not a valid int"),
                             ({"steps": -1}, "must be > 0"), ({"steps": 2.5}, "must be int"),
                             ({"random_start": "maybe"}, "not a valid bool")]:
        with pytest.raises(UserError, match=match):
            resolve_params("pgd", overrides)
    assert parse_attack_args(["steps=20", " rel_stepsize = 0.1 "]) == {"steps": "20", "rel_stepsize": "0.1"}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_attack_args(["steps"])
    assert parse_attack_args(["steps=20", "steps=20"]) == {"steps": "20"}
    with pytest.raises(UserError, match="--attack-arg gives steps twice: steps=20 and steps=5"):
        parse_attack_args(["steps=20", "steps=5"])


def test_pgd_without_early_stop_is_torchattacks_pgd_and_early_stop_is_no_weaker(shipped, embedded_cifar):
    model = shipped["vgg_c10s"].model.eval()
    x, y = embedded_cifar.float_batch(slice(0, 64))
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


# ------------------------------------------------------------------ declared gradient needs

@pytest.mark.parametrize("name", list_attacks())
def test_every_attack_declares_what_it_needs_from_the_gradient(name):
    cfg = get_attack_cfg(name)
    declared = (cfg.uses_gradient, cfg.ce_gradient, cfg.still_robust_fast_path)
    assert all(type(flag) is bool for flag in declared)
    assert name in _GRADIENT_NEEDS, f"check {name}'s gradient needs by hand and add them to _GRADIENT_NEEDS"
    assert declared == _GRADIENT_NEEDS[name]


def test_attack_cfg_requires_the_gradient_flags():
    with pytest.raises(TypeError):
        AttackCfg("x", Norm.LINF, True, "paper")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="ce_gradient requires uses_gradient"):
        AttackCfg("x", Norm.LINF, True, "p", kind=AttackKind.ITERATIVE, uses_gradient=False, ce_gradient=True,
                  still_robust_fast_path=False)
    with pytest.raises(ValueError, match="eps-bounded"):
        AttackCfg("x", Norm.L2, False, "p", kind=AttackKind.MINIMAL_PERTURBATION, uses_gradient=True, ce_gradient=False,
                  still_robust_fast_path=True)
    with pytest.raises(TypeError, match="kind must be an AttackKind"):
        AttackCfg("x", Norm.L2, False, "p", kind="iterative", uses_gradient=True, ce_gradient=False,  # type: ignore[arg-type]
                  still_robust_fast_path=False)


@pytest.mark.parametrize("name", list_attacks())
def test_every_numeric_parameter_has_a_range_check(name):
    for key, value in get_attack_cfg(name).defaults.items():
        if type(value) in (int, float):
            assert (key in attack_registry._POSITIVE) != (key in attack_registry._NON_NEGATIVE), key


def _saturated(model: torch.nn.Module) -> torch.nn.Module:
    """The final linear layer's weight and bias times 1e4: same predictions, softmax saturated."""
    model = copy.deepcopy(model).eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
    return model


@pytest.fixture(scope="module")
def saturated(shipped, embedded_cifar):
    """vgg_c10s and its saturated copy, with the clean-correct points among the first 16 images."""
    model = copy.deepcopy(shipped["vgg_c10s"].model).eval()
    sat = _saturated(model)
    x, y = embedded_cifar.float_batch(slice(0, 16))
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        assert torch.equal(sat(x).argmax(1), model(x).argmax(1)), "same predictions"
    return model, sat, x[correct], y[correct]


def test_the_saturated_fixture_has_exactly_zero_cross_entropy_gradients(saturated):
    _, sat, x, y = saturated
    x = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(sat(x), y, reduction="sum").backward()
    assert bool(x.grad.flatten(1).eq(0).all(1).all())


@pytest.mark.parametrize("name", LABEL_ATTACKS)
def test_declared_gradient_needs_hold_on_a_saturated_softmax(name, saturated):
    """uses_gradient: the attack runs a backward pass through the model. ce_gradient: it stalls
    when the softmax saturates (its robust count rises to every point), the others break the
    saturated copy as they break the original (their losses are invariant to the logits' scale).
    Full-strength numbers (200 images, 8/255): FGSM/BIM 78% (= clean), PGD and APGD-CE 72.5%,
    APGD-DLR, AutoAttack, Square, CW and DeepFool 0%."""
    model, sat, x, y = saturated
    cfg = get_attack_cfg(name)
    backward = []
    handle = model.register_full_backward_hook(lambda *a: backward.append(1))
    try:
        robust = []
        for m in (model, sat):
            adv = create_attack(name, m, _eps(name), **_fast(name))(x, y)
            with torch.no_grad():
                robust.append(int((m(adv).argmax(1) == y).sum()))
    finally:
        handle.remove()
    assert bool(backward) == cfg.uses_gradient
    original, saturated_ = robust
    if cfg.ce_gradient:
        assert saturated_ >= original + len(y) // 2, robust
    else:
        assert saturated_ <= original + 1, robust


# ------------------------------------------------------------------ memory layout and eps 0

@pytest.fixture(scope="module")
def layouts(shipped, embedded_cifar):
    """The shipped vgg_c10s in both layouts (copies: the shared model is left alone) and 16 images."""
    model = copy.deepcopy(shipped["vgg_c10s"].model).eval()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x, y = embedded_cifar.float_batch(slice(0, 16))
    return model, fast, x, y


def _run_both_layouts(name, layouts, eps):
    model, fast, x, y = layouts
    params = _fast(name)
    plain = create_attack(name, model, eps, seed=5, **params)(x, y)
    chan = create_attack(name, fast, eps, seed=5, **params)(x.contiguous(memory_format=torch.channels_last), y)
    return model, x, y, plain, chan


@pytest.mark.parametrize("name", LABEL_ATTACKS)
def test_every_attack_gives_the_same_predictions_whatever_the_memory_layout(name, layouts):
    model, x, y, plain, chan = _run_both_layouts(name, layouts, _eps(name))
    assert chan.is_contiguous(memory_format=torch.channels_last), "x_adv comes back in the layout of x"
    assert bool(torch.isfinite(plain).all()) and bool(torch.isfinite(chan).all())
    with torch.no_grad():
        assert torch.equal(model(plain).argmax(1), model(chan).argmax(1))
        assert int((model(plain).argmax(1) != y).sum()) > int((model(x).argmax(1) != y).sum()) or name.startswith("noise")


@pytest.mark.parametrize("name", [n for n in LABEL_ATTACKS if get_attack_cfg(n).eps_bounded])
def test_every_eps_bounded_attack_returns_x_at_eps_zero(name, layouts):
    """The sweep runs every attack at eps 0. Minimal-perturbation attacks ignore eps and run at 0
    in every test here (they must break points, see the layout test)."""
    _, x, _, plain, chan = _run_both_layouts(name, layouts, 0.0)
    for out in (plain, chan):
        assert bool(torch.isfinite(out).all())
        assert torch.equal(out, x), "the only point in the 0-ball is x"


def test_attacks_do_not_touch_the_callers_model(layouts):
    _, fast, x, y = layouts
    before = {k: v.clone() for k, v in fast.state_dict().items()}
    create_attack("pgd-l2", fast, 0.5, steps=2)(x, y)
    create_attack("noise-l2", fast, 0.5)(x, y)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in fast.parameters() if p.ndim == 4)
    assert all(torch.equal(before[k], v) for k, v in fast.state_dict().items())
    assert not fast._forward_hooks and not fast._forward_pre_hooks


def test_attacks_leave_no_weight_gradients_and_run_under_no_grad(layouts):
    model, _, x, y = layouts
    model = copy.deepcopy(model)
    with torch.no_grad():
        for name in ("cw", "deepfool", "pgd"):
            create_attack(name, model, _eps(name), **_fast(name))(x[:4], y[:4])
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_noise_l2_draws_do_not_depend_on_the_layout(layouts):
    model, _, x, y = layouts
    plain = create_attack("noise-l2", model, 0.5, seed=2)(x, y)
    chan = create_attack("noise-l2", model, 0.5, seed=2)(x.contiguous(memory_format=torch.channels_last), y)
    assert torch.equal(plain, chan)


def test_pgd_at_eps_zero_is_one_forward_and_backward_and_returns_x(layouts):
    model, _, x, y = layouts
    calls = {"forward": 0, "backward": 0}
    hooks = [model.register_forward_hook(lambda *a: calls.__setitem__("forward", calls["forward"] + 1)),
             model.register_full_backward_hook(lambda *a: calls.__setitem__("backward", calls["backward"] + 1))]
    try:
        out = create_attack("pgd", model, 0.0, steps=10)(x, y)
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(out, x)
    assert calls == {"forward": 1, "backward": 1}


def test_pgd_stops_stepping_a_point_at_a_fixed_point(layouts):
    """A zero gradient (a constant model) leaves the iterate where it is: one step, not ``steps``."""
    model, _, x, y = layouts
    constant = copy.deepcopy(model)
    last = [m for m in constant.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.nn.functional.one_hot(y[0], 10).float())
    y = torch.full_like(y, int(y[0]))  # every point correct, no gradient anywhere
    calls = []
    handle = constant.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = create_attack("pgd", constant, 8 / 255, steps=10, random_start=False)(x, y)
    finally:
        handle.remove()
    assert torch.equal(out, x) and len(calls) == 1


def test_pgd_l2_is_torchattacks_pgdl2_where_that_is_finite(tiny):
    model, x, y = tiny
    model.eval()
    torch.manual_seed(4)
    reference = torchattacks.PGDL2(model, eps=0.5, alpha=0.1, steps=3, random_start=True)(x, y)
    assert torch.equal(create_attack("pgd-l2", model, 0.5, seed=4, steps=3)(x, y), reference)
    torch.manual_seed(4)
    assert bool(torchattacks.PGDL2(model, eps=0.0, alpha=0.0, steps=1)(x, y).isnan().all()), "torchattacks' 0/0"


def test_autoattack_defaults_are_torchattacks_standard_autoattack(tiny):
    model, x, y = tiny
    model.eval()
    with torch.random.fork_rng():
        reference = torchattacks.AutoAttack(model, norm="Linf", eps=8 / 255, version="standard", n_classes=10, seed=7)(x, y)
    assert torch.equal(create_attack("autoattack", model, 8 / 255, seed=7)(x, y), reference)


# ------------------------------------------------------------------ minimal-perturbation attacks

def test_cw_searches_over_c_and_returns_x_where_it_finds_nothing(layouts):
    model, _, x, y = layouts
    x, y = x[:8], y[:8]
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    adv = create_attack("cw", model, 0.0, binary_search_steps=4, steps=20)(x, y)
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
    assert bool(fooled[correct].all()), "with a search over c every clean-correct point is broken"
    assert float((adv - x).flatten(1).norm(dim=1).max()) < 2.0
    # one tiny c and one step: nothing found, and the points come back unperturbed, not black
    none = create_attack("cw", model, 0.0, binary_search_steps=1, steps=1, initial_const=1e-6)(x, y)
    assert torch.equal(none[correct], x[correct])


def test_deepfool_returns_x_where_it_finds_nothing(layouts):
    model, _, x, y = layouts
    out = create_attack("deepfool", model, 0.0, steps=1, overshoot=0.0)(x[:8], y[:8])
    with torch.no_grad():
        fooled = model(out).argmax(1) != y[:8]
    assert torch.equal(out[~fooled], x[:8][~fooled]) and bool((~fooled).any())


def test_minimal_attacks_on_a_constant_model_return_x_not_nan(layouts):
    """Zero logit gradients everywhere (torchattacks' DeepFool divides 0 by 0 there): no adversarial
    example, and the points come back unperturbed and finite (a non-finite result is never returned)."""
    model, _, x, y = layouts
    constant = copy.deepcopy(model)
    last = [m for m in constant.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.nn.functional.one_hot(y[0], 10).float())
    y = torch.full_like(y[:4], int(y[0]))
    for name in ("deepfool", "cw"):
        assert torch.equal(create_attack(name, constant, 0.0, **_fast(name))(x[:4], y), x[:4]), name
