"""Option types shared by several commands (typer ``Annotated`` aliases), and the small steps every
command takes with them: threads, the command line for provenance, repeated-or-comma-separated lists,
model arguments. Imports nothing heavy, so ``--help`` stays instant."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError, require_int
from ..train_defaults import TRAIN_DEFAULTS

Width = Annotated[float, typer.Option("--width", help="Channel multiplier (1.0 = the paper's size).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; recorded in every output.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder (or .npz) holding the dataset.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch (default: torch's choice).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Examples per batch.")]
ModelsDir = Annotated[Path, typer.Option("--models-dir", help="Folder with checkpoints and manifest.json.")]
Eps = Annotated[str, typer.Option("--eps", help="Grid: START:STOP:STEP (stop included) or a list 0,1,2,4,8.")]
EpsUnit = Annotated[str, typer.Option("--eps-unit", help="255 (eps in 1/255, Linf) or raw (e.g. L2).")]
AttackArgs = Annotated[Optional[list[str]], typer.Option("--attack-arg", help="Override an attack parameter, KEY=VALUE.")]
EvalDataset = Annotated[Optional[str], typer.Option("--dataset", help="Evaluation dataset (default: each checkpoint's embedded set).")]
ModelArgs = Annotated[Optional[list[str]], typer.Option(
    "--model-arg", help="An architecture's own option, KEY=VALUE (e.g. depth=56 for a ResNet); repeat for more.")]
Depth = Annotated[Optional[int], typer.Option(
    "--depth", help="The same as --model-arg depth=N: a ResNet's depth (6n+2 basic blocks: 20, 56, 110; 9n+2 "
                    "bottleneck from 164, the paper's; default 20) or a transformer's number of blocks (default 7). "
                    "The VGGs take none.")]

DEFAULT_WIDTH = TRAIN_DEFAULTS.width


def set_threads(threads: int | None) -> None:
    """Let torch use ``threads`` CPU threads (None: torch's choice)."""
    import torch

    if threads is not None:
        torch.set_num_threads(require_int("--threads", threads, 1))


def command_line() -> str:
    """The command as typed, for provenance records."""
    return shlex.join(["robust-attn", *sys.argv[1:]])


def split_values(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists both work: --attack fgsm,pgd == --attack fgsm --attack pgd."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def model_arg_text(items: list[str] | None, depth: int | None = None) -> dict[str, str]:
    """``--model-arg`` values as text by name (typed per architecture by ``parse_model_args``), with
    0.3's ``--depth N`` read as ``--model-arg depth=N``."""
    from ..key_values import split_key_values

    text = split_key_values(items, "--model-arg")
    if depth is not None:
        if text.get("depth", str(depth)) != str(depth):
            raise UserError(f"--depth {depth} and --model-arg depth={text['depth']} disagree")
        text["depth"] = str(depth)
    return text
