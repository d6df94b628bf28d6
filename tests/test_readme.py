"""Every command of the README, as a user would type it (smaller n and epochs).

Every ```bash block of the README is listed in ``BLOCKS``: its commands are run in a fresh clone of the
repository with nothing beside it, as a user has it, or, where they need internet, a GPU, torchrun or a
reinstall, each command is parsed against the CLI (typer's click command; torchrun's own argument parser for
torchrun's part) so that a renamed option or command fails here. The README shows users what they have
(shipped checkpoints, embedded images, ``--dataset cifar10 --data-dir ~/data --download``); the one thing this
offline test supplies is that download (``offline_cifar``). Every input a command reads is shipped or written by
an earlier command; a command whose producer did not run is skipped with the producer named, never run into a
confusing error. Afterwards the clone has no change to tracked files, and the checkout none at all.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT, SUBSET_DIR, TEST_THREADS

# What a test may shrink: the README's work, never its meaning.
SMALLER = {"--epochs": "1", "-n": "8"}
# How the README tells a user to get training data (torchvision's download into ~/data); this offline test
# runs such a command on ``offline_cifar`` instead, the only substitution it makes.
USER_DATA = ("--dataset", "cifar10", "--data-dir", "~/data", "--download")
# The parameters of the CLI's commands that name files or folders a command reads: always paths, or (models,
# sources, targets) manifest names unless they look like a path, a glob or a file.
PATH_PARAMS = ("results", "data_dir", "study_file")
MODEL_PARAMS = ("models", "sources", "targets")

RUN, PARSE = "run", "parse"
# Every ```bash block, keyed "<heading> #<index under that heading>": what this test does with it and why.
BLOCKS = {
    "## Two commands #0": (RUN, ("set-up: the robust-attn commands run here; venv creation, pip install and pytest "
                                 "are what runs this test (no reinstall), so they are only recognised")),
    "## Two commands #1": (PARSE, ("CPU-only torch install: needs the package registry and reinstalls torch; its pins "
                                   "must equal pyproject.toml's")),
    "## CLI tour #0": (RUN, "the tour"),
    "## CLI tour #1": (PARSE, "full datasets: needs internet (torchvision's download) and a GPU"),
    "### Models #0": (RUN, "the registry's ResNets and one entry's details"),
    "### Your own models #0": (RUN, "a model of your own from examples/my_model.py beside a checkpoint"),
    "### Your own models #1": (PARSE, "a plugin package: installs it into the environment (a reinstall)"),
    "## Studies: architectures across training seeds #0": (RUN, "the shipped study (trains nothing)"),
    "## Transfer attacks and attacks on the attention #0": (RUN, "transfer and the attention-shift sweep"),
    "## Claims others can check: admission checks, randomised models, records #0": (
        PARSE, "the EOT gap on the noisy fixture: tests/test_eot.py makes the same sweep (run_sweep, the same arguments)"),
    "## Common corruptions #0": (RUN, "two corruptions at severities 1-5 (every corruption's sweep and its report: "
                                      "-m thorough, see REPEATS)"),
    "## Scaling out with torchrun #0": (PARSE, "torchrun over GPUs (nccl) and several machines"),
}
# Commands of a RUN block that are not robust-attn commands: recognised (a new kind fails the test), not run.
NOT_RUN = {
    "python3 -m venv .venv": "creates the environment this test runs in",
    "pip install -e ./my-robust-attn-models": "installs the example plugin package (not part of this repository)",
    ".venv/bin/pip install": "installs the package this test runs from",
    ".venv/bin/python -m pytest": "the test suite this test is part of",
}


@dataclass(frozen=True)
class Command:
    block: str
    text: str

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)


def bash_blocks() -> dict[str, str]:
    """Every ```bash block of the README by "<heading> #<index>"."""
    text = (ROOT / "README.md").read_text()
    blocks: dict[str, str] = {}
    for match in re.finditer(r"```bash\n(.*?)```", text, re.DOTALL):
        heading = re.findall(r"^(##+ .*)$", text[:match.start()], re.MULTILINE)[-1]
        index = sum(key.rsplit(" #", 1)[0] == heading for key in blocks)
        blocks[f"{heading} #{index}"] = match.group(1)
    return blocks


def commands(block: str) -> list[Command]:
    """A block's commands: continuation lines joined, comments dropped, ``a && b`` split."""
    joined = bash_blocks()[block].replace("\\\n", " ")
    lines = [re.split(r"\s+#", line)[0].strip() for line in joined.splitlines() if not line.lstrip().startswith("#")]
    return [Command(block, part.strip()) for line in lines if line for part in line.split("&&")]


def robust_attn_argv(command: Command) -> list[str] | None:
    """The robust-attn arguments of a command (``robust-attn X``, ``.venv/bin/robust-attn X`` or
    ``torchrun ... -m robust_attn X``), None for other programs."""
    argv = command.argv
    if argv[0] in ("robust-attn", ".venv/bin/robust-attn"):
        return argv[1:]
    if argv[0] == "torchrun":
        from torch.distributed.run import get_args_parser

        try:
            args = get_args_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"torchrun rejects its options in: {command.text}")
        assert args.module and args.training_script == "robust_attn", command.text
        return list(args.training_script_args)
    return None


def check_parses(argv: list[str]):
    """Parse ``argv`` with the CLI's click command without running it (its click context): unknown commands
    or options, bad values, missing arguments and extra arguments fail."""
    from typer.main import get_command

    from robust_attn.cli import app

    cmd, args, name = get_command(app), list(argv), "robust-attn"
    while hasattr(cmd, "commands"):  # a group: descend to the subcommand (global options first)
        while args and args[0] in ("--debug", "--verbose", "-v"):
            args.pop(0)
        assert args, f"no subcommand in {argv}"
        sub = cmd.commands.get(args[0])
        assert sub is not None, f"no command {args[0]!r} in robust-attn {shlex.join(argv)}"
        name, cmd, args = f"{name} {args[0]}", sub, args[1:]
    return cmd.make_context(name, args)  # raises click's UsageError / BadParameter


ALL = [c for block in BLOCKS for c in commands(block)]
TO_RUN = [c for c in ALL if BLOCKS[c.block][0] == RUN and robust_attn_argv(c) is not None]


def _user_data(argv: list[str]) -> bool:
    return any(argv[i:i + len(USER_DATA)] == list(USER_DATA) for i in range(len(argv)))


def reads(argv: list[str]) -> set[str]:
    """The files and folders a robust-attn command reads (names of the manifest and registries are not
    paths; torchvision's download into ~/data is supplied by this test)."""
    params = check_parses(argv).params

    def values(name: str) -> list[str]:
        value = params.get(name)
        return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None]

    paths = {v for name in PATH_PARAMS for v in values(name)}
    for name in MODEL_PARAMS:
        for spec in (part for v in values(name) for part in v.split(",") if part):
            path = spec.split(":")[0]
            if "/" in path or "*" in path or path.endswith((".pt", ".py")):
                paths.add(path)
    return paths - ({"~/data"} if _user_data(argv) else set())


def writes(argv: list[str]) -> str | None:
    """The file or folder a robust-attn command writes that a later command may read."""
    out = check_parses(argv).params.get("out")
    return None if out is None else str(out)


def producer(path: str, before: Command) -> Command | None:
    """The last README command run before ``before`` that writes ``path`` (or a folder holding it)."""
    made = [c for c in TO_RUN[:TO_RUN.index(before)]
            if (w := writes(robust_attn_argv(c))) and (path == w or path.startswith(w.rstrip("/") + "/"))]
    return made[-1] if made else None


def shipped(path: str) -> bool:
    """Whether a clone of the repository has ``path`` (a file, folder or glob, relative to its root) without
    running anything."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = {Path(f) for f in tracked.split()}
    candidates = {m.relative_to(ROOT) for m in ROOT.glob(path)} if "*" in path else {Path(path)}
    return any(c in files or any(c in f.parents for f in files) for c in candidates)


def test_every_bash_block_is_run_or_listed_with_its_reason():
    assert set(bash_blocks()) == set(BLOCKS), "a README bash block is neither run nor listed here"
    assert len(commands("## CLI tour #0")) >= 9
    for c in ALL:
        if robust_attn_argv(c) is None:
            assert c.block == "## Two commands #1" or any(c.text.startswith(p) for p in NOT_RUN), c.text


@pytest.mark.parametrize("command", ALL, ids=[f"{c.block.split(' #')[0][3:]}: {' '.join(c.argv[:3])}" for c in ALL])
def test_every_robust_attn_command_of_the_readme_parses(command):
    argv = robust_attn_argv(command)
    if argv is not None:
        check_parses(argv)


def test_the_parse_check_catches_a_renamed_option():
    check_parses(["sweep", "--attack", "fgsm", "--eps", "0:8:1", "-n", "8"])
    from robust_attn.cli import click_exceptions

    for bad in (["sweep", "--atack", "fgsm"], ["train", "vgg", "--epoch", "3", "--out", "x.pt"], ["swep"],
                ["data", "make-subset", "a"], ["regress", "extra"], ["sweep", "--attack", "fgsm", "-n", "many"]):
        with pytest.raises((click_exceptions.UsageError, AssertionError)):
            check_parses(bad)


def test_the_cpu_install_pins_what_pyproject_pins():
    pins = {d.split("==")[0]: d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
            if d.split("==")[0] in ("torch", "torchvision")}
    install, editable = commands("## Two commands #1")[1:]
    assert set(pins.values()) <= set(install.argv) and "https://download.pytorch.org/whl/cpu" in install.argv
    assert editable.text == ".venv/bin/pip install -e ."


def as_run(argv: list[str], offline_data: Path) -> list[str]:
    """The README's command as this test runs it: smaller (SMALLER), and torchvision's download replaced by
    ``offline_data``."""
    if _user_data(argv):
        i = next(i for i in range(len(argv)) if argv[i:i + len(USER_DATA)] == list(USER_DATA))
        argv = [*argv[:i], "--dataset", "cifar10-subset", "--data-dir", str(offline_data), *argv[i + len(USER_DATA):]]
    out, i = [], 0
    while i < len(argv):
        if argv[i] in SMALLER:
            out += [argv[i], SMALLER[argv[i]]]
            i += 2
            continue
        out.append(argv[i])
        i += 1
    if argv[0] in ("sweep", "study", "transfer") and "-n" not in argv:
        out += ["-n", SMALLER["-n"]]
    return out


def test_every_input_of_a_run_command_is_shipped_or_written_before_it():
    """What keeps a fresh clone's run whole: a command reading a file that neither the repository ships nor an
    earlier command writes (say, data beside this checkout) would be skipped or fail on a user's machine."""
    for command in TO_RUN:
        for path in reads(robust_attn_argv(command)):
            assert shipped(path) or producer(path, command), \
                f"README: {command.text!r} reads {path}, which is neither in the repository nor written before it"
    assert any(_user_data(robust_attn_argv(c)) for c in TO_RUN), "the tour trains on torchvision's download"


def test_the_development_data_is_named_only_in_the_contributors_section():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Tests, CI and the development data")
    end = text.find("\n## ", start + 1)
    outside = text[:start] + (text[end:] if end != -1 else "")
    assert "../shared" not in outside, "README: only the contributors' section may name ../shared"


def test_the_dependency_rules_see_a_missing_input():
    tour = commands("## CLI tour #0")
    sweep_of_my = next(c for c in TO_RUN if "runs/my.pt" in reads(robust_attn_argv(c)))
    assert producer("runs/my.pt", sweep_of_my).text.startswith("robust-attn train")
    assert producer("runs/other.pt", sweep_of_my) is None and not shipped("runs/other.pt")
    assert shipped("models/*_c10s.pt") and shipped("examples/my_model.py") and not shipped("../shared/datasets")
    assert reads(["train", "vgg", "--dataset", "cifar10-subset", "--data-dir", "../shared/x", "--out", "a.pt"]) \
        == {"../shared/x"}
    assert reads(["report", "results/linf", "results/l2", "--out", "r"]) == {"results/linf", "results/l2"}
    assert reads(["train", "vgg", "--dataset", "cifar10-subset", "--data-dir", "..", "--out", "a.pt"]) == {".."}
    assert reads(["report", "results", "--out", "r"]) == {"results"}
    assert reads(["sweep", "--models", "vgg_c10s,x/y.py:f", "--attack", "fgsm"]) == {"x/y.py"}
    assert not shipped("*_c10s.pt") and not shipped("*.py") and shipped("models") and not shipped("..")
    assert len(tour) >= 9


def _git_status(repo: Path, *extra: str) -> str:
    return subprocess.run(["git", "status", "--porcelain", *extra], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of the repository with nothing beside it, as a user has it."""
    root = tmp_path_factory.mktemp("readme")
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(root / "repo")], check=True)
    return root / "repo"


@pytest.fixture(scope="module")
def offline_cifar(tmp_path_factory) -> Path:
    """Training data for the README's ``--dataset cifar10 --data-dir ~/data --download`` on an offline machine:
    the development subset where it is beside the checkout, else a stand-in in the subset's format made of the
    shipped embedded test images (800 to train on, 132 to test on). It only lets a one-epoch command run; no
    number is read from it."""
    if SUBSET_DIR.is_dir():
        return SUBSET_DIR
    from robust_attn.data import embedded_path

    arrays = np.load(embedded_path("cifar10_test_932.npz"))
    x, y = arrays["test_x"], arrays["test_y"]
    path = tmp_path_factory.mktemp("offline-cifar") / "cifar10_subset.npz"
    np.savez(path, train_x=x[:800], train_y=y[:800], test_x=x[800:], test_y=y[800:])
    return path


# A README command that did not finish, by what it writes: its dependents are skipped, naming it.
_DID_NOT_RUN: dict[str, str] = {}

# README commands that repeat a kind of run another README command or test already makes (a sweep of the shipped
# checkpoints, a transfer between them, the shipped study), by what they write (their --out, else their first
# two words): the default run leaves them, and every command reading what they write, to `pytest -m thorough`.
# The parse test still checks each of them against the CLI.
REPEATS = {
    "results/linf": "a sweep of the shipped checkpoints with more attacks: the README's first command is one",
    "results/l2": "an L2 sweep of the shipped checkpoints: tests/test_sweep.py runs every L2 attack through the sweep",
    "results/pgd20": "a sweep with attack arguments: tests/test_sweep.py and the attention-shift sweep pass them",
    "results/transfer": "a transfer between every shipped checkpoint: the README's pgd transfer is one, smaller",
    "results/transfer-transformers": "a transfer between shipped CNNs and transformers: the README's pgd transfer is "
                                     "one kind, tests/test_transformers.py transfers between both families",
    "study studies/attention-vs-baseline.toml": ("the shipped study: tests/test_study.py runs it end to end and checks its "
                                                 "verdict rows"),
    "study studies/cct-sequence-pooling.toml": ("a shipped study: tests/test_study.py runs it end to end and checks its "
                                                "verdict rows"),
    "results/study-corruptions": ("a shipped study: tests/test_study.py runs it end to end "
                                                       "(-m thorough) and tests/test_corruption_sweep.py a study "
                                                       "file of corruptions"),
    "results/corruptions": ("every corruption on two shipped checkpoints: the README's results/fog sweep runs two "
                            "through the CLI and tests/test_corruption_sweep.py two through the sweep and report"),
}


def _identity(argv: list[str]) -> str:
    """What REPEATS knows a command by: the folder it writes, else its first two words."""
    return (writes(argv) or " ".join(argv[:2])).rstrip("/")


def repeats(command: Command) -> str | None:
    """Why ``command`` is left to ``-m thorough`` (see REPEATS): it writes one of those folders, or reads
    what a command so left writes; None for the commands of the default run."""
    argv = robust_attn_argv(command)
    own = _identity(argv)
    if own in REPEATS:
        return REPEATS[own]
    for path in sorted(reads(argv)):
        made_by = producer(path, command)
        if made_by is not None and (why := repeats(made_by)):
            return f"it reads {path} from `{made_by.text}` ({why})"
    return None


def test_every_repetition_left_out_is_a_readme_command_and_the_main_job_is_not():
    known = {_identity(robust_attn_argv(c)) for c in TO_RUN}
    assert set(REPEATS) <= known, "REPEATS names a folder no README command writes"
    first = TO_RUN[0]
    assert first.block == "## Two commands #0" and repeats(first) is None
    assert repeats(next(c for c in TO_RUN if robust_attn_argv(c)[0] == "report")) is not None  # reads results/linf


def _marked(command: Command):
    why = repeats(command)
    return pytest.param(command, marks=pytest.mark.thorough) if why else command


@pytest.mark.slow
@pytest.mark.parametrize("command", [_marked(c) for c in TO_RUN], ids=[" ".join(c.argv[1:3]) for c in TO_RUN])
def test_readme_command_runs(command, clone, offline_cifar):
    argv = robust_attn_argv(command)
    if argv[0] == "regress":  # its full run is the second half of CI's own command, right after the tests
        check_parses(argv)
        return
    for path in reads(argv):
        made_by = producer(path, command)
        if made_by is not None and made_by.text in _DID_NOT_RUN:
            _DID_NOT_RUN[command.text] = f"it needs {path} from `{made_by.text}`"
            pytest.skip(f"needs {path} from `{made_by.text}`, which did not run ({_DID_NOT_RUN[made_by.text]})")
    _DID_NOT_RUN[command.text] = "it failed"
    before = _git_status(ROOT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    threads = ["--threads", TEST_THREADS] if argv[0] in ("sweep", "train", "report", "study", "transfer") else []
    # -P: the checkout's code (PYTHONPATH), not the clone's copy of it in the working directory
    result = subprocess.run([sys.executable, "-P", "-m", "robust_attn", *as_run(argv, offline_cifar), *threads],
                            cwd=clone, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, f"{command.text}\n{result.stderr[-3000:]}"
    assert _git_status(ROOT) == before, "a README command changed the checkout"
    assert _git_status(clone, "--untracked-files=no") == "", "a README command changed a tracked file of the clone"
    if argv[0] == "sweep":
        out = clone / (argv[argv.index("--out") + 1] if "--out" in argv else "results")
        assert (out / "results.csv").is_file() and (out / "report" / "index.html").is_file()
    tracked = set(subprocess.run(["git", "ls-files", "reports"], cwd=clone, capture_output=True, text=True,
                                 check=True).stdout.split())
    assert {str(p.relative_to(clone)) for p in (clone / "reports").rglob("*") if p.is_file()} == tracked, \
        "reports land in their results folder"
    del _DID_NOT_RUN[command.text]
