"""``robust-attn sweep``: checkpoints (or the user's own models) under attacks over an eps grid."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .application import app
from .options import (
    AttackArgs,
    BatchSize,
    DataDir,
    Device,
    EpsUnit,
    EvalDataset,
    ModelsDir,
    Seed,
    Threads,
    command_line,
    set_threads,
    split_values,
)


def _print_tables(frame, console) -> None:
    """Per attack: the per-eps accuracy (the attack at that eps alone), then the worst case over
    every eps' <= eps it tried; where they differ, the second is the stronger claim."""
    from rich.table import Table

    from ..attacks import grid_name
    from ..results import accuracy_table

    for attack in frame["attack"].unique():
        grid = grid_name(attack)
        for value, title in (("accuracy", f"accuracy (%) under {attack} at each {grid}"),
                             ("worst_case_accuracy", f"worst case (%): robust to {attack} at every {grid}' <= {grid}")):
            wide = accuracy_table(frame, attack, value)
            table = Table(title=title, title_justify="left")
            table.add_column("model", no_wrap=True)
            for label in wide.columns:
                table.add_column(str(label), justify="right", no_wrap=True)
            for model, values in wide.iterrows():
                table.add_row(str(model), *(f"{100 * v:.1f}" for v in values))
            console.print(table)


@app.command("sweep")
def sweep_cmd(
    attack: Annotated[list[str], typer.Option("--attack", "-a", help="Attack name(s); repeat or comma-separate. Common corruptions too: a name such as fog, or 'corruptions' for all 15 (`robust-attn attacks` lists them).")],
    eps: Annotated[Optional[str], typer.Option("--eps", help="Grid: START:STOP:STEP (stop included) or a list 0,1,2,4,8 (default 0:8:1). For corruptions: the severities 1-5, 0 the clean images (default 0:5:1).")] = None,
    eps_unit: EpsUnit = "255",
    models: Annotated[Optional[list[str]], typer.Option("--models", "-m", help="Manifest names, checkpoint paths or globs (default: all of --models-dir); or your own model as package.module:function or path/to/file.py:function (a function returning a torch.nn.Module; needs --dataset).")] = None,
    attack_arg: AttackArgs = None,
    dataset: EvalDataset = None,
    data_dir: DataDir = None,
    n: Annotated[Optional[int], typer.Option("--n", "-n", "--examples", help="Evaluate the first N examples (default: all). Under torchrun use -n or --examples (torchrun claims --n).")] = None,
    batch_size: BatchSize = 256,
    seed: Seed = 0,
    device: Device = "cpu",
    out: Annotated[Path, typer.Option("--out", help="Results folder; rerunning on it resumes.")] = Path("results"),
    per_example: Annotated[bool, typer.Option("--per-example/--no-per-example", help="Also write per_example.csv (paired tests in reports).")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build an HTML report in --report-dir.")] = True,
    report_dir: Annotated[Optional[Path], typer.Option("--report-dir", help="Report folder (default: OUT/report).")] = None,
    models_dir: ModelsDir = Path("models"),
    threads: Threads = None,
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast on CUDA (changes gradients; off by default).")] = False,
    fast_path: Annotated[bool, typer.Option("--fast-path/--no-fast-path", help="Attack only the points still robust at the previous eps where the attack allows it (pgd, bim); --no-fast-path attacks every point at every eps.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Without --models: a manifest entry whose checkpoint file is missing is an error (default: a warning that skips it).")] = False,
    quantize: Annotated[Optional[int], typer.Option("--quantize", help="Round every adversarial image to 8 or 16 bits per channel before scoring it, as saving it as a PNG would; the budget is kept and checked again. Rows record it in attack_params.")] = None,
) -> None:
    """Evaluate checkpoints under attacks over an eps grid; write OUT/results.csv.

    Under `torchrun --nproc-per-node N -m robust_attn sweep ...` the attacked examples are shared
    among the processes and the results equal a single-process run's; rank 0 writes them.
    """
    from ..distributed import init_from_env, local_device, shutdown

    set_threads(threads)
    ranks = init_from_env(device)  # under torchrun: join the process group (gloo on CPU, nccl on GPU)
    device = local_device(device)
    completed = False
    try:
        _sweep_and_report(attack, eps, eps_unit, models, attack_arg, dataset, data_dir, n, batch_size, seed, device,
                          out, per_example, report, report_dir, models_dir, amp, fast_path, ranks.is_writer, strict,
                          quantize)
        completed = True
    finally:
        shutdown(completed)


def _sweep_and_report(attack, eps, eps_unit, models, attack_arg, dataset, data_dir, n, batch_size, seed, device,
                      out, per_example, report, report_dir, models_dir, amp: bool, fast_path: bool, writer: bool,
                      strict: bool = False, quantize: int | None = None) -> None:
    from rich.console import Console

    from ..attacks import grid_name, parse_attack_args
    from ..sweep import RESULTS_FILE, run_sweep
    from .progress import CommandProgress

    # a bar in a terminal; one line per finished cell in logs
    with CommandProgress(eta=True, quiet=not writer) as bars:
        task = bars.add("sweep")

        def on_start(total: int) -> None:  # after validation, so a bad input prints one line only
            bars.update(task, total=total)
            bars.start()

        def on_cell(event) -> None:
            bars.update(task, completed=event.done, total=event.total,
                        description=f"{event.model} {event.attack} {grid_name(event.attack)}={event.eps_label}")
            resumed = " (stored)" if event.stored else ""
            bars.log(f"cell {event.done}/{event.total}: {event.model} {event.attack} {grid_name(event.attack)}={event.eps_label} "
                     f"accuracy {100 * event.accuracy:.1f}%{resumed}")

        frame = run_sweep(
            split_values(models), split_values(attack), eps, dataset, eps_unit=eps_unit,
            attack_args=parse_attack_args(attack_arg), data_dir=data_dir, models_dir=models_dir, n=n,
            batch_size=batch_size, seed=seed, device=device, out=out, per_example=per_example, amp=amp,
            fast_path=fast_path, on_start=on_start, on_cell=on_cell, provenance={"command": command_line()},
            strict=strict, on_admission=bars.admission, quantize=quantize,
        )
    if not writer:  # under torchrun, rank 0 alone reports
        return
    _print_tables(frame, Console(width=None if sys.stdout.isatty() else 160))
    typer.echo(f"wrote {out / RESULTS_FILE} ({len(frame)} rows)")
    if report:
        from ..report import build_report

        with bars.console.status("building report"):
            index = build_report([out], report_dir or out / "report", command=command_line())
        typer.echo(f"wrote {index}")
