"""The sweep engine: its fast paths change no result, and its numbers behave as robustness numbers must."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch
import torchattacks

from robust_attn.attacks import parse_eps_grid
from robust_attn.errors import UserError
from robust_attn.results import RESULT_COLUMNS, read_results_csv
from robust_attn.sweep import LOCK_FILE, predict, sweep
from robust_attn.train import evaluate_accuracy

from .conftest import ROOT, interruptible_sweep_cmd

N = 200
GRID = "0:8:1"


@pytest.fixture(scope="module")
def vgg(shipped):
    return shipped["vgg_c10s"]


@pytest.fixture(scope="module")
def data(embedded_cifar):
    x, y = embedded_cifar.float_batch(slice(0, N))
    return x, y


def _nested(correct_per_eps: list[torch.Tensor]) -> list[int]:
    """Robust accuracy counts where a point broken at a smaller eps stays broken."""
    robust = torch.ones_like(correct_per_eps[0])
    counts = []
    for correct in correct_per_eps:
        robust &= correct
        counts.append(int(robust.sum()))
    return counts


def test_fgsm_shared_gradient_equals_a_torchattacks_attack_per_eps(vgg, data):
    x, y = data
    grid = parse_eps_grid(GRID)
    naive = [predict(vgg.model, torchattacks.FGSM(vgg.model, eps=e)(x, y) if e else x, 256) == y for e in grid.values]
    frame = sweep([vgg], ["fgsm"], grid, n=N)
    assert frame["n_correct"].tolist() == _nested(naive)


def test_attacking_only_still_robust_points_equals_attacking_all(vgg, data):
    """BIM is deterministic: attacking every point at every eps and taking the union of breaks
    gives exactly what the engine gets by attacking only the points still robust."""
    x, y = data
    grid = parse_eps_grid("0,2,4,8")
    naive = [predict(vgg.model, torchattacks.BIM(vgg.model, eps=e, alpha=e / 4, steps=3)(x, y) if e else x, 256) == y
             for e in grid.values]
    frame = sweep([vgg], ["bim"], grid, n=N, attack_args={"steps": 3})
    assert frame["n_correct"].tolist() == _nested(naive)


def test_eps_zero_row_equals_clean_accuracy(vgg, embedded_cifar):
    frame = sweep([vgg], ["fgsm", "pgd"], "0,4", n=N, attack_args={"steps": 2})
    clean = evaluate_accuracy(vgg.model, type(embedded_cifar)(embedded_cifar.x[:N], embedded_cifar.y[:N]))
    zero = frame[frame["eps"] == 0]
    assert (zero["accuracy"] == clean).all() and (frame["clean_accuracy"] == clean).all()


def test_channels_last_changes_no_prediction(vgg, data):
    x, _ = data
    plain = predict(vgg.model.to(memory_format=torch.contiguous_format), x, 256)
    fast = predict(vgg.model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last), 256)
    assert torch.equal(plain, fast)


@pytest.fixture(scope="module")
def trained_sweep(shipped, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    models = [shipped["vgg_c10s"], shipped["vgg-att3-concat-pc_c10s"]]
    frame = sweep(models, ["fgsm", "noise", "pgd"], GRID, n=N, out=out, per_example=True)
    return frame, out


def test_sweep_rows_and_robustness_properties(trained_sweep):
    frame, _ = trained_sweep
    assert list(frame.columns) == list(RESULT_COLUMNS)
    for (model, attack), rows in frame.groupby(["model", "attack"]):
        assert len(rows) == 9
        assert rows["accuracy"].is_monotonic_decreasing, (model, attack)
        assert rows["accuracy"].iloc[0] == rows["clean_accuracy"].iloc[0]
        assert ((rows["ci_low"] <= rows["accuracy"]) & (rows["accuracy"] <= rows["ci_high"])).all()
    wide = frame.pivot_table(index=["model", "eps"], columns="attack", values="accuracy")
    positive = wide[wide.index.get_level_values("eps") > 0]
    assert (positive["noise"] > positive["fgsm"]).all(), "random noise must hurt less than FGSM"
    assert (wide["pgd"] <= wide["fgsm"]).all(), "PGD must be at least as strong as FGSM"
    assert frame.loc[frame["eps_label"] == "8/255", "eps"].iloc[0] == 8 / 255


def test_csv_round_trips_with_numeric_columns(trained_sweep):
    frame, out = trained_sweep
    back = read_results_csv(out / "results.csv")
    for column in ("width", "n", "eps", "n_correct", "accuracy", "ci_low", "ci_high", "clean_accuracy", "seed", "seconds"):
        assert pd.api.types.is_numeric_dtype(back[column]), column
    pd.testing.assert_frame_equal(back.drop(columns="seconds"), frame.drop(columns="seconds"), check_dtype=False)


def test_per_example_file_agrees_with_the_counts(trained_sweep):
    frame, out = trained_sweep
    examples = pd.read_csv(out / "per_example.csv")
    counts = (examples["adv_pred"] == examples["label"]).groupby([examples["model"], examples["attack"], examples["eps"]]).sum()
    for row in frame.itertuples():
        assert counts[(row.model, row.attack, row.eps)] == row.n_correct
    linf = examples[examples["attack"] == "fgsm"]
    assert (linf["perturbation_norm"] <= linf["eps"] + 1e-6).all()


def test_rerun_on_the_same_out_skips_finished_cells(trained_sweep, shipped):
    frame, out = trained_sweep
    events = []
    again = sweep([shipped["vgg_c10s"], shipped["vgg-att3-concat-pc_c10s"]], ["fgsm", "noise", "pgd"], GRID, n=N,
                  out=out, per_example=True, on_cell=events.append)
    assert events[-1].skipped == events[-1].total == len(frame)
    pd.testing.assert_frame_equal(again, frame)


def test_same_seed_same_results_for_randomised_attacks(vgg):
    a = sweep([vgg], ["pgd", "noise"], "0,2,4", n=100, seed=7, attack_args={"steps": 3})
    b = sweep([vgg], ["pgd", "noise"], "0,2,4", n=100, seed=7, attack_args={"steps": 3})
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_minimal_attack_is_read_as_accuracy_under_a_budget(vgg):
    frame = sweep([vgg], ["cw"], "0,0.05,0.2,1,100", eps_unit="raw", n=40, attack_args={"steps": 10, "lr": 0.05})
    acc = frame["accuracy"].tolist()
    assert acc == sorted(acc, reverse=True) and acc[0] == frame["clean_accuracy"].iloc[0]
    assert acc[-1] < acc[0]


def test_l2_attacks_need_raw_eps(vgg):
    with pytest.raises(UserError, match="--eps-unit raw"):
        sweep([vgg], ["cw"], "0:8:1")


def test_incompatible_dataset_is_refused(vgg):
    with pytest.raises(UserError, match="cannot be evaluated on fashion-mnist-embedded"):
        sweep([vgg], ["fgsm"], "0,1", "fashion-mnist-embedded")


def test_killed_sweep_resumes_to_the_uninterrupted_csv(tmp_path):
    reference = subprocess.run(interruptible_sweep_cmd(tmp_path / "ref", 120), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    for kill_after_cells in (2, 5):
        proc = subprocess.Popen(interruptible_sweep_cmd(out, 120), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if len(list((out / "cells").glob("*.json"))) >= kill_after_cells:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the sweep ended before it could be killed"
    assert (out / LOCK_FILE).exists(), "the killed run leaves its lock behind"
    resumed = subprocess.run(interruptible_sweep_cmd(out, 120), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = pd.read_csv(tmp_path / "ref" / "results.csv"), pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert not list(out.glob(".*.tmp")) and not (out / LOCK_FILE).exists()


def test_a_sweep_removes_temporaries_a_killed_run_left_but_not_a_live_ones(vgg, tmp_path):
    """A SIGKILL during an atomic write leaves its temporary file; the next sweep to hold the lock deletes it."""
    (tmp_path / "cells").mkdir()
    left = [tmp_path / ".results.csv.k3j9.tmp", tmp_path / "cells" / ".0123abcd.json.x7q2.tmp"]
    for tmp in left:
        tmp.write_text("half a write")
    (tmp_path / LOCK_FILE).write_text(str(os.getppid()))  # a live sweep may be writing them right now
    with pytest.raises(UserError, match="in use by another sweep"):
        sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path)
    assert all(tmp.exists() for tmp in left)
    (tmp_path / LOCK_FILE).write_text("999999999")  # its process is gone
    sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path)
    assert not any(tmp.exists() for tmp in left)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_second_sweep_on_a_busy_out_refuses(vgg, tmp_path):
    (tmp_path / LOCK_FILE).write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(UserError, match="in use by another sweep"):
        sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path)
    (tmp_path / LOCK_FILE).write_text("999999999")  # a dead one: taken over
    assert len(sweep([vgg], ["fgsm"], "0,1", n=10, out=tmp_path)) == 2
