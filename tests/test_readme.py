"""Every command of the README, as a user would type it (smaller n and epochs).

Every ```bash block of the README is listed in ``BLOCKS``: its commands are run in a fresh clone of the
repository (``../shared`` beside it), or, where they need internet, a GPU, torchrun or a reinstall, each
command is parsed against the CLI (typer's click command; torchrun's own argument parser for torchrun's
part) so that a renamed option or command fails here. Afterwards the clone has no change to tracked
files, and the checkout none at all.
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

import pytest

from .conftest import ROOT, SHARED

# What a test may shrink: the README's work, never its meaning.
SMALLER = {"--epochs": "1", "-n": "8"}

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


def check_parses(argv: list[str]) -> None:
    """Parse ``argv`` with the CLI's click command without running it: unknown commands or options,
    bad values, missing arguments and extra arguments fail."""
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
    cmd.make_context(name, args)  # raises click's UsageError / BadParameter


ALL = [c for block in BLOCKS for c in commands(block)]
TO_RUN = [c for c in ALL if BLOCKS[c.block][0] == RUN and robust_attn_argv(c) is not None]


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


def _shrunk(argv: list[str]) -> list[str]:
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


def _git_status(repo: Path, *extra: str) -> str:
    return subprocess.run(["git", "status", "--porcelain", *extra], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of the repository with ``../shared`` beside it, as on the machine that set it up."""
    root = tmp_path_factory.mktemp("readme")
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(root / "repo")], check=True)
    if SHARED.exists():
        (root / "shared").symlink_to(SHARED, target_is_directory=True)
    return root / "repo"


@pytest.mark.slow
@pytest.mark.parametrize("command", TO_RUN, ids=[" ".join(c.argv[1:3]) for c in TO_RUN])
def test_readme_command_runs(command, clone):
    argv = robust_attn_argv(command)
    if argv[0] == "regress":  # its full run is the second half of CI's own command, right after the tests
        check_parses(argv)
        return
    if "../shared" in command.text and not SHARED.exists():
        pytest.skip("../shared is beside the project in CI")
    before = _git_status(ROOT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    threads = ["--threads", "2"] if argv[0] in ("sweep", "train", "report", "study", "transfer") else []
    # -P: the checkout's code (PYTHONPATH), not the clone's copy of it in the working directory
    result = subprocess.run([sys.executable, "-P", "-m", "robust_attn", *_shrunk(argv), *threads],
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
