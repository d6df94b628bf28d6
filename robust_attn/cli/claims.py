"""``robust-attn export`` (RobustBench-style records of a results folder) and ``robust-attn verify``
(a published robust accuracy against standard AutoAttack)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from .application import app
from .options import (
    AttackArgs, BatchSize, DataDir, Device, EpsUnit, EvalDataset, ModelsDir, Seed, Threads, command_line, set_threads,
    split_values,
)


@app.command("export")
def export_cmd(
    results: Annotated[list[Path], typer.Argument(help="One or more sweep result folders (merged).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write model_info/<dataset>/<threat>/<model>.json under.")] = Path("records"),
    eps: Annotated[Optional[list[str]], typer.Option("--eps", help="Eps labels to record, e.g. 8/255 (default: every eps > 0 of the results).")] = None,
) -> None:
    """Write a RobustBench-style model_info record per model and eps: autoattack_acc where standard AutoAttack ran on the whole test split."""
    from ..report.records import export_records

    paths = export_records(results, out, split_values(eps) or None)
    for path in paths:
        typer.echo(f"wrote {path}")


@app.command("verify")
def verify_cmd(
    model: Annotated[str, typer.Argument(help="A manifest name, checkpoint path or your own model (package.module:function or file.py:function, with --dataset).")],
    claimed: Annotated[float, typer.Option("--claimed", help="The claimed robust accuracy in percent, e.g. 45.3.")],
    eps: Annotated[str, typer.Option("--eps", help="The claim's budget, e.g. 8 (with --eps-unit 255) or 8/255.")] = "8",
    eps_unit: EpsUnit = "255",
    dataset: EvalDataset = None,
    data_dir: DataDir = None,
    n: Annotated[Optional[int], typer.Option("--n", "-n", help="Evaluate the first N examples (default: the whole split; a record of a part has no autoattack_acc).")] = None,
    attack_arg: AttackArgs = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Results folder (default: verify/MODEL); rerunning resumes.")] = None,
    models_dir: ModelsDir = Path("models"),
    batch_size: BatchSize = 256,
    seed: Seed = 0,
    device: Device = "cpu",
    threads: Threads = None,
) -> None:
    """Run standard AutoAttack on MODEL and say whether --claimed lies inside the Wilson 95% interval of the measured accuracy (exit 1 when not)."""
    from ..attacks import parse_attack_args
    from ..claims import check_claim, verify_claim
    from .progress import CommandProgress

    check_claim(claimed)
    set_threads(threads)
    folder = out or Path("verify") / re.sub(r"[^A-Za-z0-9._-]+", "_", model)
    with CommandProgress(eta=True) as bars:
        task = bars.add(f"{model} autoattack")

        def on_start(total: int) -> None:
            bars.update(task, total=total)
            bars.start()

        def on_cell(event) -> None:
            bars.update(task, completed=event.done)

        verdict = verify_claim(model, eps, claimed, folder, eps_unit=eps_unit, data=dataset, data_dir=data_dir, n=n,
                               attack_args=parse_attack_args(attack_arg), models_dir=models_dir, batch_size=batch_size,
                               seed=seed, device=device, provenance={"command": command_line()}, on_start=on_start,
                               on_cell=on_cell, on_admission=bars.admission)
    for path in verdict.records:
        typer.echo(f"wrote {path}")
    typer.echo(verdict.sentence())
    if not verdict.confirmed:
        raise typer.Exit(1)
