from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# The development data: ``../shared`` beside the checkout on the machines that build this project, never on a
# user's. Tests that read it ask for the ``dev_data`` fixture, are marked ``dev_data`` (``pytest -m dev_data``
# selects them) and are skipped without it; .ci/run runs them with it, where a skip is a failure.
SHARED = ROOT.parent / "shared"
SUBSET_DIR = SHARED / "datasets" / "cifar10-subset"
FASHION_DIR = SHARED / "datasets" / "fashion-mnist"
MODELS_DIR = ROOT / "models"
DEV_DATA = {  # what each development dataset is, for the one line a skip prints in the -rs summary
    "cifar10-subset": (SUBSET_DIR, "the 4,660 + 932 genuine CIFAR-10 images of cifar10_subset.npz"),
    "fashion-mnist": (FASHION_DIR, "the full Fashion-MNIST idx files"),
}
REQUIRE_DEV_DATA = "ROBUST_ATTN_REQUIRE_DEV_DATA"  # set by .ci/run: a missing dataset fails instead of skipping

# CI runs the suite with pytest-xdist, one worker per core: each worker then takes one thread, and so does every
# command a test starts (``--threads TEST_THREADS``): two threads per worker would put more threads than cores on
# the machine, and torch's waiting threads then spin on the cores the other worker needs.
TEST_THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
torch.set_num_threads(int(TEST_THREADS))
if os.environ.get("PYTEST_XDIST_WORKER"):  # commands started without --threads take torch's default: one, too
    os.environ.setdefault("OMP_NUM_THREADS", TEST_THREADS)
# Corrupted images (common corruptions) are cached per user; the tests keep theirs in one folder of this run, shared
# by the workers and the commands they start, never in the home folder.
if "ROBUST_ATTN_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["ROBUST_ATTN_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"robust-attn-test-cache-{os.getppid() if os.environ.get('PYTEST_XDIST_WORKER') else os.getpid()}")

def interruptible_sweep_cmd(out: Path, n: int, *extra: str) -> list[str]:
    """The sweep the interruption tests stop: PGD on the shipped vgg_c10s over eps 0:0.8:0.1, one thread.

    At eps <= 0.8/255 a quarter or more of the points stay robust at every eps, so every cell has work
    (most of a second per cell on 60 to 200 images) and a signal sent after the first cells lands inside the run. On
    0:8:1 vgg_c10s has no robust points left from 4/255 on, those cells finish at once and a kill could
    arrive after the run had ended.
    """
    return [sys.executable, "-m", "robust_attn", "sweep", "--models", "vgg_c10s", "--attack", "pgd",
            "--eps", "0:0.8:0.1", "--n", str(n), "--threads", "1", "--out", str(out), "--models-dir", str(MODELS_DIR),
            *extra]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m robust_attn ARGS`` in a subprocess, like a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "robust_attn", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def invoke(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in this process (``robust_attn.cli.main``, as the ``robust-attn`` script does) in ``cwd``
    (the repository root, as ``run_cli``): the exit status, stdout and stderr ``run_cli`` would give, without a
    new interpreter's seconds of imports. For commands that answer from their arguments (listings, user
    mistakes, a one-epoch training); the process is left as it was (working folder, ``sys.argv``, torch's thread
    count and random state). What a run must show across processes or through its own process (determinism
    between interpreters, signals, warnings logged to stderr, the script itself) keeps ``run_cli``."""
    import contextlib
    import io
    from unittest import mock

    from robust_attn.cli import main

    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    with mock.patch.dict(os.environ, {"COLUMNS": "200"}), mock.patch.object(sys, "argv", ["robust-attn", *args]), \
            contextlib.chdir(cwd or ROOT), torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            torch.set_num_threads(threads)  # --threads sets the process's torch threads
    return subprocess.CompletedProcess(["robust-attn", *args], code, out.getvalue(), err.getvalue())


DEFAULT_SWEEP_N = 100  # images per dataset: the README's first command, cut for speed


@pytest.fixture(scope="session")
def default_sweep(tmp_path_factory) -> Path:
    """The results folder of the README's first command, `robust-attn sweep --attack fgsm --eps 0:8:1` (every
    shipped checkpoint, the embedded images; -n 100 for speed), run once per test run: the sanity test and the
    browser test both read it. Under pytest-xdist the first worker to ask runs it in the folder all workers of
    the run share, holding a file lock, and the others wait for it and read it (pytest-xdist's recipe for a
    session fixture that runs once)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    out = shared / "default-sweep"
    with FileLock(str(shared / "default-sweep.lock")):
        if not (out / "report" / "index.html").is_file():
            done = run_cli("sweep", "--attack", "fgsm", "--eps", "0:8:1", "-n", str(DEFAULT_SWEEP_N), "--out", str(out),
                           "--models-dir", str(MODELS_DIR), "--threads", TEST_THREADS)
            assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def shipped():
    """The shipped small CIFAR checkpoints (manifest order)."""
    from robust_attn.checkpoints import load_checkpoint, resolve_checkpoints

    refs = [r for r in resolve_checkpoints(None, MODELS_DIR) if r.name.endswith("_c10s")]
    assert len(refs) >= 5, "models/ must ship the small CIFAR checkpoints"
    return {r.name: load_checkpoint(r.path, r.sha256, r.name) for r in refs}


@pytest.fixture(scope="session")
def embedded_cifar():
    from robust_attn.data import load_dataset

    return load_dataset("cifar10-embedded").test


def pytest_collection_modifyitems(items):
    """Mark every test that asks for ``dev_data`` so that ``-m dev_data`` / ``-m 'not dev_data'`` select by it."""
    for item in items:
        if "dev_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dev_data)


@pytest.fixture
def dev_data():
    """``dev_data(name)``: the folder of a development dataset (a key of DEV_DATA), or a skip naming that
    data; a failure instead when .ci/run sets ROBUST_ATTN_REQUIRE_DEV_DATA."""

    def folder(name: str) -> Path:
        path, what = DEV_DATA[name]
        if not path.exists():
            message = f"needs the development data {name} ({what}) at {path}, which is not beside this checkout"
            if os.environ.get(REQUIRE_DEV_DATA):
                pytest.fail(f"{message} ({REQUIRE_DEV_DATA} is set)")
            pytest.skip(message)
        return path

    return folder


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after it: the training tests compare weights bit for bit,
    which holds at a fixed thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small():
    """64 training and 32 test images of the synthetic dataset: enough for a tiny model's one or two epochs."""
    from robust_attn.data import ImageSet, Splits, load_dataset

    s = load_dataset("synthetic")
    return Splits(s.cfg, ImageSet(s.train.x[:64], s.train.y[:64]), ImageSet(s.test.x[:32], s.test.y[:32]))
