"""Every sanity check of the report FAILs on a real model's sweep and PASSes on the shipped checkpoints.

The failing models are real: the shipped ``vgg_c10s`` weights made gradient-masked, shattered or
stochastic (tests/fixtures_masking.py), a misconfigured PGD, an attack that ignores its budget, or
FGSM at budgets where a single step rises again. Each is swept by the real sweep and reported from
its results folder; no CSV is edited.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from robust_attn.attacks import AttackCfg, AttackKind, Norm, Objective, get_attack_cfg, list_attacks, register_attack
from robust_attn.errors import UserError
from robust_attn.report import build_report
from robust_attn.report.kit.inputs import non_ce_gradient_attacks
from robust_attn.report.legacy import LEGACY_CATALOG
from robust_attn.report.sanity import Comparison, flagged
from robust_attn.sweep import AttackSpec, run_sweep

from . import fixtures_masking as fm
from .conftest import MODELS_DIR, TEST_THREADS, run_cli
from .pages import text, top_html

N = 100
# The label attacks that do not follow the cross-entropy gradient (random noise aside): what a report names
# when a check suggests gradient masking.
NON_CE_GRADIENT_ATTACKS = sorted(a for a in list_attacks() if not get_attack_cfg(a).ce_gradient
                                 and get_attack_cfg(a).kind is not AttackKind.NOISE
                                 and get_attack_cfg(a).objective is Objective.MISCLASSIFY  # attention-shift breaks no label
                                 and not a.startswith("test-"))  # attacks that tests register

GRADIENTS = "input gradients informative"
EPS_ZERO = "attack at eps 0 equals the clean pass"
MONOTONE = "per-eps accuracy non-increasing in eps"
ITERATIVE = "iterative attacks at least as strong as FGSM"
NOISE_CHECK = "random noise weaker than the attacks"
LARGE = "attacks succeed at large budgets"
BUDGET = "perturbations within budget"


def _report(folder: Path, **kw) -> tuple[dict[str, str], str]:
    """Build the folder's report; return {check name prefix: status} and the banner's text."""
    out = folder / "report"
    build_report([folder], out, panel_images=0, shift_images=0, **kw)
    sanity = pd.read_csv(out / "sanity.csv", keep_default_na=False)
    page = (out / "index.html").read_text()
    banner = _banner(page)
    return dict(zip(sanity["check"], sanity["status"])), banner


def _banner(page: str) -> str:
    """The text of the page's top (banner and verdicts)."""
    return text(top_html(page))


def _status(statuses: dict[str, str], prefix: str) -> str:
    (status,) = [s for name, s in statuses.items() if name.startswith(prefix)]
    return status


def _sweep(models, attacks, grid, out: Path, **kw) -> Path:
    run_sweep(models, attacks, grid, n=kw.pop("n", N), out=out, per_example=True, models_dir=MODELS_DIR, **kw)
    return out


# ------------------------------------------------------------------ PASS on the shipped checkpoints

@pytest.fixture(scope="module")
def shipped_linf(tmp_path_factory) -> tuple[dict[str, str], str]:
    """vgg_c10s under FGSM, PGD and noise up to 32/255: every Linf check has something to test."""
    out = _sweep(["vgg_c10s"], ["fgsm", "pgd", "noise"], "0,8,32", tmp_path_factory.mktemp("shipped") / "linf")
    return _report(out)


@pytest.mark.parametrize("check", [GRADIENTS, EPS_ZERO, MONOTONE, ITERATIVE, NOISE_CHECK, LARGE, BUDGET])
def test_every_check_passes_on_a_shipped_checkpoint(shipped_linf, check):
    statuses, banner = shipped_linf
    assert _status(statuses, check) == "PASS", statuses
    assert "FAIL" not in banner


def test_l2_large_budget_check_passes_on_a_shipped_checkpoint(tmp_path):
    # sqrt(3 * 32 * 32) = 55.4: at an L2 budget of 60 every image can be turned into any other
    out = _sweep(["vgg_c10s"], ["pgd-l2", "noise-l2"], "0,60", tmp_path / "l2", eps_unit="raw", n=30)
    statuses, _ = _report(out)
    assert _status(statuses, LARGE) == "PASS" and _status(statuses, BUDGET) == "PASS", statuses


@pytest.mark.slow
def test_default_sweep_passes_its_checks_on_the_shipped_checkpoints(default_sweep):
    """`robust-attn sweep --attack fgsm --eps 0:8:1` (every shipped checkpoint; -n 100 for speed)."""
    out = default_sweep
    sanity = pd.read_csv(out / "report" / "sanity.csv", keep_default_na=False)
    tested = sanity[sanity["status"] != "NOT TESTED"]
    assert set(tested["status"]) == {"PASS"}, sanity.to_string()
    always = {c for c in sanity["check"] if c.startswith((GRADIENTS, EPS_ZERO, MONOTONE, BUDGET))}
    assert set(tested["check"]) >= always
    assert 'id="sanity-failures"' not in (out / "report" / "index.html").read_text()


# ------------------------------------------------------------------ FAIL on real sweeps

def test_gradient_diagnostic_fails_on_a_saturated_softmax(tmp_path):
    out = _sweep([fm.saturated()], ["fgsm"], "0,8", tmp_path / "saturated")
    statuses, banner = _report(out)
    assert _status(statuses, GRADIENTS) == "FAIL"
    assert "masked-saturated: 100.0%" in banner
    for attack in NON_CE_GRADIENT_ATTACKS:
        assert attack in banner


def test_gradient_and_noise_checks_fail_on_shattered_gradients(tmp_path):
    """Inputs rounded inside forward: the gradient is exactly zero, FGSM does nothing, noise breaks points."""
    out = _sweep([fm.quantised()], ["fgsm", "noise"], "0,16", tmp_path / "quantised")
    statuses, banner = _report(out)
    assert _status(statuses, GRADIENTS) == "FAIL"
    assert _status(statuses, NOISE_CHECK) == "FAIL"
    assert "fgsm" in banner and "noise" in banner and "apgd-dlr" in banner


def test_eps_zero_check_fails_on_a_stochastic_model(tmp_path):
    out = _sweep([fm.stochastic()], ["fgsm"], "0,8", tmp_path / "stochastic")
    statuses, banner = _report(out)
    assert _status(statuses, EPS_ZERO) == "FAIL"
    assert "stochastic model" in banner


def test_monotonicity_fails_where_a_single_step_rises_again(tmp_path):
    """FGSM on the undefended vgg_c10s leaves more points robust at 48/255 than at 16/255 (24 -> 40 of
    300; 22 points robust only at 48/255, 6 only at 16/255): the symptom the check exists for."""
    out = _sweep(["vgg_c10s"], ["fgsm"], "16,48", tmp_path / "rise", n=300)
    statuses, banner = _report(out)
    assert _status(statuses, MONOTONE) == "FAIL"
    assert "vgg_c10s fgsm" in banner and "16/255 -> " in banner


def test_iterative_check_fails_on_a_misconfigured_pgd(tmp_path):
    """PGD with one step of 5% of eps (plus its random start) is weaker than FGSM's single full step."""
    weak = AttackSpec("pgd", {"steps": 1, "rel_stepsize": 0.05})
    out = _sweep(["vgg_c10s"], ["fgsm", weak], "0,8", tmp_path / "weak")
    statuses, banner = _report(out)
    assert _status(statuses, ITERATIVE) == "FAIL"
    assert "vgg_c10s pgd (rel_stepsize=0.05, steps=1)" in banner or "vgg_c10s pgd " in banner
    assert "misconfigured" in banner


def test_large_eps_check_fails_on_a_saturated_softmax(tmp_path):
    """PGD follows cross-entropy gradients that underflow to zero: at 32/255 it leaves about half."""
    out = _sweep([fm.saturated()], ["pgd"], "0,32", tmp_path / "saturated-pgd")
    statuses, banner = _report(out)
    assert _status(statuses, LARGE) == "FAIL"
    assert "masked-saturated pgd leaves" in banner


def test_large_budget_check_fails_on_minimal_attack_failures(tmp_path):
    """Carlini-Wagner on shattered gradients (and a short search) finds no adversarial example at all:
    those points count as robust only because the attack failed."""
    cw = AttackSpec("cw", {"binary_search_steps": 1, "steps": 10})
    out = _sweep([fm.quantised()], [cw], "0,60", tmp_path / "quantised-cw", eps_unit="raw", n=50)
    statuses, banner = _report(out)
    assert _status(statuses, LARGE) == "FAIL"
    assert "found no adversarial example at all for" in banner


def test_large_budget_check_fails_on_an_l2_attack_that_stalls(tmp_path):
    """PGD-L2 follows cross-entropy gradients that underflow to zero: at an L2 budget above the image
    diameter it still leaves points robust."""
    out = _sweep([fm.saturated()], ["pgd-l2"], "0,60", tmp_path / "saturated-l2", eps_unit="raw", n=30)
    statuses, banner = _report(out)
    assert _status(statuses, LARGE) == "FAIL"
    assert "robust at L2 budget 60, above the diameter 55.4" in banner


BROKEN = "test-uniform-2eps"


def _register_broken() -> None:
    """An eps-bounded attack that returns uniform noise of twice its budget."""
    if BROKEN in list_attacks():
        return

    @register_attack(AttackCfg(BROKEN, Norm.LINF, True, "test only", kind=AttackKind.ITERATIVE, uses_gradient=False, ce_gradient=False,
                               still_robust_fast_path=False, randomized=True))
    def _build(model, eps, params, seed):
        def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return (x + (torch.rand_like(x) * 2 - 1) * 2 * eps).clamp(0, 1)

        return perturb


def test_budget_check_fails_on_an_attack_that_ignores_its_budget(tmp_path):
    _register_broken()
    out = tmp_path / "broken"
    with pytest.raises(UserError, match=f"attack {BROKEN} exceeded its budget at eps 8/255"):
        run_sweep(["vgg_c10s"], [BROKEN], "0,8", n=N, out=out, per_example=True, models_dir=MODELS_DIR)
    statuses, banner = _report(out)
    assert _status(statuses, BUDGET) == "FAIL"
    assert f"{BROKEN} at 8/255" in banner and "not robust accuracy" in banner


def test_cli_sweep_of_a_saturated_checkpoint_names_the_diagnostic_and_the_attacks_to_run(tmp_path):
    """`robust-attn sweep --attack fgsm --eps 0:8:1` on fixture (a), no other flag but the model and -n."""
    path = fm.save_saturated(tmp_path / "masked.pt")
    out = tmp_path / "out"
    done = run_cli("sweep", "--attack", "fgsm", "--eps", "0:8:1", "--models", str(path), "-n", "200",
                   "--out", str(out), "--threads", TEST_THREADS)
    assert done.returncode == 0, done.stderr
    banner = _banner((out / "report" / "index.html").read_text())
    assert "FAIL: input gradients informative" in banner and "gradient masking" in banner
    assert "Run next" in banner and "--attack apgd-dlr,square" in banner and str(path) in banner
    for attack in NON_CE_GRADIENT_ATTACKS:
        assert attack in banner


# ------------------------------------------------------------------ the rules themselves

def _catalog_entry(name: str) -> dict:
    """An attack as a run log's attack_catalog records it."""
    cfg = get_attack_cfg(name)
    return {"kind": cfg.kind.value, "norm": str(cfg.norm), "eps_bounded": cfg.eps_bounded,
            "uses_gradient": cfg.uses_gradient, "ce_gradient": cfg.ce_gradient, "objective": cfg.objective.value}


def test_attacks_named_for_masking_are_the_registry_attacks_without_ce_gradient():
    """The report names them from the run log's catalog, not from a list of its own; the catalog it
    assumes for folders written by 0.3 describes those attacks as the registry does."""
    catalog = {a: _catalog_entry(a) for a in list_attacks() if not a.startswith("test-")}
    assert non_ce_gradient_attacks(catalog) == NON_CE_GRADIENT_ATTACKS
    assert non_ce_gradient_attacks(LEGACY_CATALOG) == [a for a in NON_CE_GRADIENT_ATTACKS if a in LEGACY_CATALOG]
    assert {a: catalog[a] for a in LEGACY_CATALOG} == LEGACY_CATALOG


def test_paired_comparisons_are_holm_corrected_and_unpaired_ones_need_a_point():
    def c(p, excess=0.02):
        return Comparison("x", excess, None, None, p, "m")

    # 3 paired comparisons: Holm thresholds 0.01/3, 0.01/2, 0.01
    assert [x.p for x in flagged([c(0.004), c(0.003), c(0.5)])] == [0.003, 0.004]
    assert flagged([c(0.004), c(0.0034), c(0.5)]) == []  # 0.0034 > 0.01/3: the step-down stops at once
    assert [x.excess for x in flagged([c(None, 0.011), c(None, 0.01)])] == [0.011]


def test_the_budget_test_is_one_definition_and_a_non_finite_norm_exceeds_it():
    """The sweep's refusal, the transfer loop's and the report's check share one function (they
    disagreed on a NaN norm)."""
    import importlib
    import math

    budget, transfer, sanity, engine = (importlib.import_module(f"robust_attn.{m}") for m in (
        "budget", "transfer", "report.sanity", "sweep.engine"))  # some packages shadow them by name
    assert engine.exceeds_budget is sanity.exceeds_budget is transfer.exceeds_budget is budget.exceeds_budget
    eps = 8 / 255
    assert budget.exceeds_budget(math.nan, eps) and budget.exceeds_budget(math.inf, eps)
    assert not budget.exceeds_budget(eps * (1 + budget.BUDGET_REL_SLACK), eps)
    assert budget.exceeds_budget(eps * (1 + 2 * budget.BUDGET_REL_SLACK) + budget.BUDGET_ABS_SLACK, eps)
