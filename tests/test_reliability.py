"""Determinism, clean interruption and safe strings."""
from __future__ import annotations

import signal
import subprocess
import time

import pandas as pd
from filelock import FileLock

from robust_attn.sweep import LOCK_FILE

from .conftest import ROOT, TEST_THREADS, interruptible_sweep_cmd, invoke, run_cli


def _without_timing(path) -> str:
    return pd.read_csv(path).drop(columns="seconds").to_csv(index=False)


def test_same_seed_gives_identical_result_files(tmp_path):
    for name in ("one", "two"):
        result = run_cli("sweep", "--attack", "pgd", "--eps", "0:4:1", "--n", "64", "--seed", "11", "--models",
                         "vgg_c10s", "--out", str(tmp_path / name), "--no-report", "--threads", TEST_THREADS)
        assert result.returncode == 0, result.stderr
    one, two = tmp_path / "one", tmp_path / "two"
    assert _without_timing(one / "results.csv") == _without_timing(two / "results.csv")
    assert (one / "per_example.csv").read_bytes() == (two / "per_example.csv").read_bytes()
    frame = pd.read_csv(one / "results.csv")
    assert (frame["seed"] == 11).all() and len(frame) == 5
    # the seed reaching the attack needs no second interpreter
    other = invoke("sweep", "--attack", "pgd", "--eps", "0:4:1", "--n", "64", "--seed", "12", "--models", "vgg_c10s",
                    "--out", str(tmp_path / "three"), "--no-report", "--threads", TEST_THREADS)
    assert other.returncode == 0
    assert (tmp_path / "three" / "per_example.csv").read_bytes() != (one / "per_example.csv").read_bytes(), \
        "the seed must reach the randomised attack"


def test_ctrl_c_stops_cleanly_with_a_resume_hint(tmp_path):
    out = tmp_path / "run"
    cmd = interruptible_sweep_cmd(out, 200, "--no-report")
    # A shell without job control starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: give the sweep the default disposition a terminal's Ctrl-C meets.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "cells").glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted: finished work is saved; rerun the same command to resume"
    assert "Traceback" not in err
    FileLock(out / LOCK_FILE, timeout=0).acquire()  # released: the next command may take the folder
    finished = pd.read_csv(out / "results.csv")
    assert 1 <= len(finished) < 9


def test_debug_shows_the_traceback_of_a_user_error():
    result = run_cli("--debug", "sweep", "--attack", "fgsn")
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr
