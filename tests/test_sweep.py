"""The sweep engine: what its two numbers mean, which fast paths may compute them, and a results
folder that never returns a stale number or loses a finished one."""
from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch
from filelock import FileLock

from robust_attn.attacks import AttackCfg, AttackKind, Norm, Objective, get_attack_cfg, list_attacks, parse_eps_grid, register_attack
from robust_attn.errors import UserError
from robust_attn.results import EXAMPLE_COLUMNS, RESULT_COLUMNS, read_results_csv, read_run_log
from robust_attn.sweep import LOCK_FILE, predict, run_sweep
from robust_attn.sweep.store import CellStore, cell_key

from .conftest import ROOT, interruptible_sweep_cmd, invoke

N = 200
GRID = "0:8:1"


@pytest.fixture(scope="module")
def vgg(shipped):
    return shipped["vgg_c10s"]


def _plain_fgsm_correct(model, x, y, eps_values, batch_size=256) -> list[torch.Tensor]:
    """A hand-written FGSM: one gradient per batch, x + eps * sign(grad), clamp, predict; every point."""
    signs = []
    for s in range(0, len(x), batch_size):
        xb = x[s:s + batch_size].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xb), y[s:s + batch_size]), xb)
        signs.append(grad.sign())
    sign = torch.cat(signs)
    return [predict(model, (x + eps * sign).clamp(0, 1), batch_size) == y for eps in eps_values]


def test_per_eps_fgsm_equals_a_plain_loop_exactly_and_the_envelope_nests_it(vgg, embedded_cifar):
    """On the first 200 embedded images: the per-eps number is FGSM at that eps alone, the worst case
    is robust clean and at every eps' <= eps (for vgg_c10s the two differ at 8/255)."""
    x, y = embedded_cifar.float_batch(slice(0, N))
    grid = parse_eps_grid(GRID)
    correct = _plain_fgsm_correct(vgg.model, x, y, grid.values)
    frame = run_sweep([vgg], ["fgsm"], grid, n=N)
    assert frame["n_correct"].tolist() == [int(c.sum()) for c in correct]
    clean = predict(vgg.model, x, 256) == y
    nested = torch.cumprod(torch.stack([clean, *correct]).int(), 0)[1:].bool()
    assert frame["worst_case_n_correct"].tolist() == [int(c.sum()) for c in nested]
    assert (frame["accuracy_method"] == "per-eps").all()
    assert frame["worst_case_n_correct"].iloc[-1] < frame["n_correct"].iloc[-1], "the two numbers must differ here"


@pytest.mark.slow
@pytest.mark.parametrize("attack", [a if a == "pgd" else pytest.param(a, marks=pytest.mark.thorough)
                                    for a in list_attacks() if get_attack_cfg(a).still_robust_fast_path])
def test_still_robust_fast_path_stays_within_half_a_point_of_attacking_every_point(attack, shipped):
    """The fast path is allowed only where it agrees with the per-eps definition: on the most robust
    shipped VGG checkpoint at 2/255, the first eps of the grid 1,2 where it attacks only the points still
    robust at 1/255 (the most points left to disagree about), and all 932 embedded images, the number
    computed on still-robust points is within 0.5 points of the attack run on every point at that eps. (On
    fewer images half a point is inside the random-start noise; by 3/255 under 1% of the points are left
    to disagree about.)"""
    model = "vgg-att3-concat-dp_c10s"
    # eps 0 would be the clean pass, attacked; at the grid's first eps the fast path too attacks every point,
    # so the two paths part at its second, 2/255 (each draws its random starts from its own cell's seed)
    fast = run_sweep([shipped[model]], [attack], "1,2", batch_size=128)
    full = run_sweep([shipped[model]], [attack], "2", batch_size=128, fast_path=False)
    assert (fast["accuracy_method"] == "still-robust").all() and (full["accuracy_method"] == "per-eps").all()
    gap = abs(fast["accuracy"].iloc[-1] - full["accuracy"].iloc[0])
    assert gap <= 0.005, f"{attack} on {model}: fast path off by {100 * gap:.2f} points"


def test_eps_zero_runs_the_attack_and_matches_the_clean_pass_on_a_sound_model(vgg):
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.num_classes, self.cfg = model, model.num_classes, model.cfg

        def forward(self, x):
            calls.append(len(x))
            return self.model(x)

    ckpt = dataclasses.replace(vgg, name="counted", model=Counting(vgg.model))
    frame = run_sweep([ckpt], ["noise"], "0", n=50)
    # the clean pass, the admission checks (the same batch twice, one input gradient), the attack's output at eps 0
    assert len(calls) == 5, "a clean pass and the attack's output at eps 0 are both predicted"
    assert frame["accuracy"].iloc[0] == frame["clean_accuracy"].iloc[0]


def test_budget_violation_fails_the_sweep_in_one_line_and_keeps_the_cell(vgg, tmp_path):
    name = "test-broken-budget"
    if name not in list_attacks():
        @register_attack(AttackCfg(name, Norm.LINF, True, paper="a broken attack for this test",
                                   kind=AttackKind.ITERATIVE, uses_gradient=False, ce_gradient=False, still_robust_fast_path=False))
        def broken(model, eps, params, seed):
            return lambda x, y: (x + (torch.rand_like(x) * 4 - 2) * eps).clamp(0, 1)
    with pytest.raises(UserError, match=rf"attack {name} exceeded its budget at eps 2/255"):
        run_sweep([vgg], [name], "0,2", n=20, out=tmp_path)
    kept = read_results_csv(tmp_path)
    assert kept["max_perturbation"].iloc[-1] > 2 / 255


def test_minimal_attack_failures_are_recorded_as_such(vgg, tmp_path):
    frame = run_sweep([vgg], ["deepfool"], "0,0.5,1000", eps_unit="raw", n=40, attack_args={"steps": 1}, out=tmp_path,
                  per_example=True)
    assert (frame["accuracy_method"] == "minimal").all()
    examples = pd.read_csv(tmp_path / "per_example.csv")
    failed = examples[(examples["outcome"] == "attack-failed") & (examples["eps"] == 1000)]
    assert len(failed) == frame["attack_failures"].iloc[-1] > 0, "one DeepFool step leaves some points unbroken"
    assert frame["n_correct"].iloc[-1] == frame["attack_failures"].iloc[-1], "at a huge budget only failures stay robust"


def test_the_callers_model_is_left_as_it_was(vgg):
    model = vgg.model
    model.train()
    run_sweep([vgg], ["fgsm"], "0,1", n=8)
    assert model.training
    assert all(p.is_contiguous() for p in model.parameters()), "the sweep converts its own copy to channels_last"
    model.eval()


STORED_N = 100  # images of the stored folder: more than its attention panels' 64


@pytest.fixture(scope="module")
def stored(shipped, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    models = [shipped["vgg_c10s"], shipped["vgg-att3-concat-pc_c10s"]]
    frame = run_sweep(models, ["fgsm", "noise", "pgd"], GRID, n=STORED_N, out=out, per_example=True)
    return frame, out


def test_rows_carry_both_numbers_and_behave(stored):
    frame, _ = stored
    assert list(frame.columns) == list(RESULT_COLUMNS)
    for (model, attack), rows in frame.groupby(["model", "attack"]):
        assert len(rows) == 9
        assert rows["worst_case_accuracy"].is_monotonic_decreasing, (model, attack)
        assert (rows["worst_case_accuracy"] <= rows["accuracy"]).all()
        assert ((rows["ci_low"] <= rows["accuracy"]) & (rows["accuracy"] <= rows["ci_high"])).all()
        assert rows["accuracy"].iloc[0] == rows["clean_accuracy"].iloc[0]
    grad = frame[frame["attack"] != "noise"]["zero_gradient_fraction"]
    assert (grad == 0).all() and frame[frame["attack"] == "noise"]["zero_gradient_fraction"].isna().all()
    linf = frame[frame["norm"] == "Linf"]
    assert (linf["max_perturbation"] <= linf["eps"] + 1e-6).all()
    assert frame.loc[frame["eps_label"] == "8/255", "eps"].iloc[0] == 8 / 255


def test_csv_round_trips_with_numeric_columns(stored):
    frame, out = stored
    back = read_results_csv(out / "results.csv")
    for column in ("width", "n", "eps", "n_correct", "accuracy", "worst_case_accuracy", "zero_gradient_fraction",
                   "max_perturbation", "attack_failures", "seed", "seconds"):
        assert pd.api.types.is_numeric_dtype(back[column]), column
    key = ["model", "attack", "eps"]
    ours = frame.sort_values(key).reset_index(drop=True).drop(columns="seconds")
    pd.testing.assert_frame_equal(back.sort_values(key).reset_index(drop=True).drop(columns="seconds"), ours,
                                  check_dtype=False)


def test_per_example_file_agrees_with_both_counts(stored):
    frame, out = stored
    examples = pd.read_csv(out / "per_example.csv")
    assert list(examples.columns) == list(EXAMPLE_COLUMNS)
    grouped = examples.groupby(["model", "attack", "eps"])
    for row in frame.itertuples():
        g = grouped.get_group((row.model, row.attack, row.eps))
        assert g["robust"].sum() == row.n_correct == (g["adv_pred"] == g["label"]).sum()
        assert g["worst_case_robust"].sum() == row.worst_case_n_correct
        assert (g["outcome"] == "robust").sum() == row.n_correct
        assert (g["dataset"] == row.dataset).all() and (g["n"] == row.n).all()
    assert set(examples["outcome"]) <= {"clean-error", "broken", "robust"}


def test_attention_panels_are_saved_for_attention_models_only(stored):
    import numpy as np

    _, out = stored
    files = sorted(p.name for p in (out / "attention").glob("*.npz"))
    assert files and all(f.startswith("vgg-att3-concat-pc_c10s__") for f in files)
    with np.load(out / "attention" / next(f for f in files if "__fgsm__" in f)) as z:
        assert z["adv_maps_0"].shape[:2] == (9, 64) and z["x_adv"].shape[:2] == (9, 8)
        assert np.allclose(z["adv_maps_0"].sum(axis=(2, 3)), 1, atol=1e-3), "attention maps sum to 1"


def test_rerun_on_the_same_out_reads_every_cell_back(stored, shipped):
    frame, out = stored
    events = []
    again = run_sweep([shipped["vgg_c10s"], shipped["vgg-att3-concat-pc_c10s"]], ["fgsm", "noise", "pgd"], GRID, n=STORED_N,
                  out=out, per_example=True, on_cell=events.append)
    assert all(e.stored for e in events) and len(events) == len(frame)
    pd.testing.assert_frame_equal(again, frame)


def test_same_seed_same_results_for_randomised_attacks(vgg):
    a = run_sweep([vgg], ["pgd", "noise"], "0,2,4", n=100, seed=7, attack_args={"steps": 3})
    b = run_sweep([vgg], ["pgd", "noise"], "0,2,4", n=100, seed=7, attack_args={"steps": 3})
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_minimal_attack_is_read_as_accuracy_under_a_budget(vgg):
    frame = run_sweep([vgg], ["deepfool"], "0,0.05,0.2,1,100", eps_unit="raw", n=40)
    acc = frame["accuracy"].tolist()
    assert acc == sorted(acc, reverse=True) and acc[0] == frame["clean_accuracy"].iloc[0]
    assert acc[-1] < acc[0]


def test_l2_attacks_need_raw_eps(vgg):
    with pytest.raises(UserError, match="--eps-unit raw"):
        run_sweep([vgg], ["cw"], "0:8:1")


def test_incompatible_dataset_is_refused_for_a_named_model(vgg):
    with pytest.raises(UserError, match="cannot be evaluated on fashion-mnist-embedded"):
        run_sweep([vgg], ["fgsm"], "0,1", "fashion-mnist-embedded")


def test_a_dataset_without_models_evaluates_the_checkpoints_that_fit(caplog):
    with caplog.at_level(logging.WARNING):
        frame = run_sweep(None, ["fgsm"], "1", "cifar10-embedded", n=8)
    assert set(frame["dataset"]) == {"cifar10-embedded"} and len(frame) >= 5
    assert not frame["model"].str.endswith("_fmnist").any()
    assert "left out" in caplog.text and "vgg_fmnist" in caplog.text


# ------------------------------------------------------------------ a results folder is a store

def test_two_commands_on_one_out_keep_both_and_log_both(shipped, tmp_path):
    run_sweep([shipped["vgg_c10s"]], ["fgsm"], "0,1", n=20, out=tmp_path)
    run_sweep([shipped["vgg-att2-concat-pc_c10s"]], ["fgsm"], "0,1", n=20, out=tmp_path)
    run_sweep([shipped["vgg_c10s"]], ["fgsm"], "0", n=20, out=tmp_path)  # asks for less: drops nothing
    rows = read_results_csv(tmp_path)
    assert sorted(rows["model"].unique()) == ["vgg-att2-concat-pc_c10s", "vgg_c10s"] and len(rows) == 4
    log = read_run_log(tmp_path)
    assert [r["event"] for r in log] == ["start", "end"] * 3 and all(r.get("status", "finished") == "finished" for r in log)


def _subset_file(folder, images, labels):
    """A cifar10-subset .npz holding ``images`` (N x C x H x W uint8) as its test split."""
    import numpy as np

    hwc = images.permute(0, 2, 3, 1).numpy()
    np.savez(folder / "cifar10_subset.npz", train_x=hwc[:4], train_y=labels[:4].numpy(), test_x=hwc,
             test_y=labels.numpy())
    return str(folder)


def test_a_changed_setting_never_returns_the_old_cells(vgg, embedded_cifar, tmp_path_factory):
    """Each setting that can change a number, changed alone on a folder holding the reference cells:
    the sweep recomputes (no cell read back) or refuses in one line naming the conflict."""
    data = _subset_file(tmp_path_factory.mktemp("data"), embedded_cifar.x[:40], embedded_cifar.y[:40])
    other = _subset_file(tmp_path_factory.mktemp("other"), embedded_cifar.x[40:80], embedded_cifar.y[40:80])
    base = dict(models=[vgg], attacks=["pgd"], eps="0,1", n=20, data="cifar10-subset", data_dir=data,
                attack_args={"steps": 2})
    changes = {
        "batch_size": dict(batch_size=7),
        "data": dict(data_dir=other),
        "seed": dict(seed=3),
        "channels_last": dict(channels_last=False),
        "fast_path": dict(fast_path=False),
        "attack_params": dict(attack_args={"steps": 3}),
        "eps grid": dict(eps="0,0.5,1"),
        "eps unit": dict(eps="0,0.00392156862745098", eps_unit="raw"),
        "display name": dict(models=[dataclasses.replace(vgg, name="renamed")]),
    }
    refused, recomputed = [], []
    for what, change in changes.items():
        out = tmp_path_factory.mktemp(what.replace(" ", "_"))
        run_sweep(**{**base, "out": out})
        events = []
        try:
            run_sweep(**{**base, **change, "out": out, "on_cell": events.append})
        except UserError as exc:
            assert "already holds" in str(exc) and "other settings" in str(exc), what
            refused.append(what)
            continue
        assert events and not any(e.stored and e.eps_label != "0" for e in events), f"{what}: a stored cell was returned"
        recomputed.append(what)
    assert "data" in refused and "batch_size" in refused and "display name" in recomputed


def test_versions_amp_and_device_are_part_of_the_key(tmp_path):
    settings = {"model": "m", "dataset": "d", "n": 1, "attack": "fgsm", "attack_params": "{}", "eps_label": "1/255",
                "checkpoint_sha256": "a" * 64, "amp": False, "device": "cpu", "versions": {"torch": "2.14.1"}}
    store = CellStore(tmp_path)
    from robust_attn.results import ResultRow
    from robust_attn.sweep.walks import Cell
    from robust_attn.results import AccuracyMethod

    row = ResultRow(**{f.name: 0 for f in dataclasses.fields(ResultRow)})
    z = torch.zeros(1, dtype=torch.bool)
    store.save(settings, row, Cell(torch.zeros(1, dtype=torch.long), torch.zeros(1), z, z, z, 0.0, AccuracyMethod.PER_EPS),
               torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    for change in ({"amp": True}, {"device": "cuda"}, {"versions": {"torch": "2.15.0"}}):
        changed = {**settings, **change}
        assert cell_key(changed) != cell_key(settings)
        with pytest.raises(UserError, match=rf"{next(iter(change))}"):
            CellStore(tmp_path).check_conflict(changed)


def test_killed_sweep_resumes_to_the_uninterrupted_csv(tmp_path):
    # the uninterrupted reference in this process (the same command; two interpreters agreeing is
    # tests/test_reliability.py's check), the killed and resumed runs in their own
    reference = invoke(*interruptible_sweep_cmd(tmp_path / "ref", 60, "--no-report")[3:])
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    for kill_after_cells in (2, 5):
        proc = subprocess.Popen(interruptible_sweep_cmd(out, 60, "--no-report"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if len(list((out / "cells").glob("*.json"))) >= kill_after_cells:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the sweep ended before it could be killed"
    resumed = subprocess.run(interruptible_sweep_cmd(out, 60, "--no-report"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = pd.read_csv(tmp_path / "ref" / "results.csv"), pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert not list(out.glob(".*.tmp"))
    statuses = [r.get("status") for r in read_run_log(out) if r["event"] == "end"]
    assert statuses == ["finished"], "the two killed runs have a start line and no end line"
    assert sum(r["event"] == "start" for r in read_run_log(out)) == 3


def test_a_busy_out_is_refused_and_a_dead_runs_temporaries_are_removed(vgg, tmp_path):
    (tmp_path / "cells").mkdir()
    left = [tmp_path / ".results.csv.k3j9.tmp", tmp_path / "cells" / ".0123abcd.json.x7q2.tmp"]
    for tmp in left:
        tmp.write_text("half a write")
    with FileLock(tmp_path / LOCK_FILE):  # a live sweep holds the folder and may be writing them right now
        with pytest.raises(UserError, match="in use by another sweep"):
            run_sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path)
        assert all(tmp.exists() for tmp in left)
    (tmp_path / LOCK_FILE).write_text("12345")  # a lock file a killed run left: the OS lock died with it
    assert len(run_sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path)) == 2
    assert not any(tmp.exists() for tmp in left)


def test_run_log_records_settings_and_plan(vgg, tmp_path):
    run_sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path, batch_size=5, provenance={"command": "robust-attn sweep ..."})
    start, end = read_run_log(tmp_path)
    assert start["command"] == "robust-attn sweep ..." and start["settings"]["batch_size"] == 5
    assert [c["eps_label"] for c in start["planned"]] == ["0", "1/255"]
    assert end["status"] == "finished" and end["run_id"] == start["run_id"]
    assert json.loads(json.dumps(start))  # plain JSON


REGISTERED = [a for a in list_attacks() if not a.startswith("test-")
              and get_attack_cfg(a).objective is Objective.MISCLASSIFY]  # attention-shift: tests/test_attention_shift.py
# The costliest attack by its defaults (C&W's many steps): its rows of the per-attack checks below repeat what
# every other attack already shows there, so the default run leaves them to `pytest -m thorough`.
THOROUGH = {"cw"}


def _attack_params(attacks: list[str]) -> list:
    return [pytest.param(a, marks=pytest.mark.thorough) if a in THOROUGH else a for a in attacks]


def _one_eps(attack: str) -> tuple[str, str]:
    return ("8", "255") if get_attack_cfg(attack).norm is Norm.LINF else ("0.5", "raw")


@pytest.mark.slow
@pytest.mark.parametrize("attack", _attack_params(REGISTERED))
def test_every_attack_runs_through_the_sweep_with_its_defaults_in_both_memory_layouts(attack, vgg):
    eps, unit = _one_eps(attack)
    fast = run_sweep([vgg], [attack], eps, eps_unit=unit, n=8)
    plain = run_sweep([vgg], [attack], eps, eps_unit=unit, n=8, channels_last=False)
    for column in ("n_correct", "worst_case_n_correct", "attack_failures"):
        assert fast[column].tolist() == plain[column].tolist(), column


@pytest.mark.slow
@pytest.mark.parametrize("attack", _attack_params([a for a in REGISTERED
                                                  if get_attack_cfg(a).norm is Norm.L2 and not a.startswith("noise")]))
def test_l2_attacks_leave_nothing_robust_beyond_the_image_diameter(attack, vgg):
    """sqrt(3 * 32 * 32) = 55.4 is the largest L2 distance between two images in [0, 1]: at 60 every
    clean-correct point must be broken, unless the attack itself failed on it (recorded as such)."""
    frame = run_sweep([vgg], [attack], "60", eps_unit="raw", n=40)
    row = frame.iloc[0]
    assert row.n_correct == row.attack_failures, f"{attack}: {row.n_correct} robust, {row.attack_failures} failures"
    if attack in ("cw", "pgd-l2"):
        assert row.n_correct == 0


def test_a_minimal_attack_dividing_by_a_zero_gradient_records_failures_not_a_crash():
    """DeepFool on a model whose input gradient is exactly zero returns NaN images: those points are
    attack failures (robust by the attack's account, flagged), and the sweep goes on."""
    from .fixtures_masking import quantised

    frame = run_sweep([quantised()], ["deepfool"], "0,1000", eps_unit="raw", n=20, attack_args={"steps": 3})
    row = frame.iloc[-1]
    assert row.attack_failures > 0 and row.n_correct == row.attack_failures
