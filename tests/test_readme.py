"""The README's CLI tour runs, command by command, as a user would type it (smaller n and epochs).

Each command runs in a scratch copy of the repository's layout (``models/`` linked read-only,
``../shared`` beside it) so nothing is written into the checkout.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SHARED

# What a test may shrink: the tour's work, never its meaning.
SMALLER = {"--epochs": "1", "-n": "8"}


def tour_commands() -> list[str]:
    """The commands of the first bash block under '## CLI tour', continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## CLI tour"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def _shrunk(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] in SMALLER:
            out += [argv[i], SMALLER[argv[i]]]
            i += 2
            continue
        out.append(argv[i])
        i += 1
    if argv[0] == "sweep" and "-n" not in argv:
        out += ["-n", SMALLER["-n"]]
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tour")
    repo = root / "repo"
    repo.mkdir()
    (repo / "models").symlink_to(ROOT / "models", target_is_directory=True)
    (root / "shared").symlink_to(SHARED, target_is_directory=True)
    return repo


COMMANDS = tour_commands()


def test_the_tour_is_what_this_test_runs():
    assert len(COMMANDS) >= 9 and all(c.startswith("robust-attn ") for c in COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c.split()[1:3]) for c in COMMANDS])
def test_tour_command_runs(command, workdir):
    argv = shlex.split(command)[1:]
    if argv[0] == "regress":
        pytest.skip("the regression gate is the second half of CI's own command, run right after the tests")
    if "../shared" in command and not SHARED.exists():
        pytest.skip("../shared is beside the project in CI")
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "robust_attn", *_shrunk(argv), *(["--threads", "2"] if argv[0] in ("sweep", "train", "report") else [])],
                            cwd=workdir, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before, "a tour command changed the checkout"
    if argv[0] == "sweep":
        out = workdir / argv[argv.index("--out") + 1]
        assert (out / "results.csv").is_file() and (out / "report" / "index.html").is_file()
    assert not Path(workdir / "reports").exists(), "reports land in their results folder"
