"""``robust-attn transfer``: adversarial examples crafted once per source, evaluated on every target."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .application import app
from .options import (
    AttackArgs,
    BatchSize,
    DataDir,
    Device,
    Eps,
    EpsUnit,
    EvalDataset,
    ModelsDir,
    Seed,
    Threads,
    command_line,
    set_threads,
    split_values,
)


def _print_transfer_tables(frame, console) -> None:
    """Per attack and eps: source x target accuracy (%) on the source's adversarial examples."""
    from rich.table import Table

    targets = list(dict.fromkeys(frame["target"]))
    for (attack, params), by_attack in frame.groupby(["attack", "attack_params"], sort=False):
        for label, cell in by_attack.groupby("eps_label", sort=False):
            table = Table(title=f"{attack} eps {label}: accuracy (%) of each target on the source's examples",
                          title_justify="left")
            table.add_column("source \\ target", no_wrap=True)
            present = [t for t in targets if t in set(cell["target"])]
            for target in present:
                table.add_column(target, justify="right")
            values = {(r.source, r.target): r.accuracy for r in cell.itertuples()}
            for source in dict.fromkeys(cell["source"]):
                table.add_row(source, *("-" if (source, t) not in values else f"{100 * values[source, t]:.1f}"
                                        for t in present))
            console.print(table)


@app.command("transfer")
def transfer_cmd(
    attack: Annotated[list[str], typer.Option("--attack", "-a", help="Eps-bounded label attack(s) to craft with; repeat or comma-separate.")],
    eps: Eps = "0:8:2",
    eps_unit: EpsUnit = "255",
    sources: Annotated[list[str] | None, typer.Option("--sources", "-s", help="Models the examples are crafted on: manifest names, checkpoint paths or globs (default: all of --models-dir).")] = None,
    targets: Annotated[list[str] | None, typer.Option("--targets", "-t", help="Models the examples are evaluated on (default: every model of --models-dir evaluated on each source's images).")] = None,
    attack_arg: AttackArgs = None,
    dataset: EvalDataset = None,
    data_dir: DataDir = None,
    n: Annotated[int | None, typer.Option("--n", "-n", "--examples", help="Evaluate the first N examples (default: all).")] = None,
    batch_size: BatchSize = 256,
    seed: Seed = 0,
    device: Device = "cpu",
    out: Annotated[Path, typer.Option("--out", help="Transfer results folder; rerunning on it resumes.")] = Path("results/transfer"),
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build the transfer report in OUT/report.")] = True,
    models_dir: ModelsDir = Path("models"),
    threads: Threads = None,
    strict: Annotated[bool, typer.Option("--strict", help="Default model set: a manifest entry whose checkpoint file is missing is an error.")] = False,
) -> None:
    """Craft adversarial examples once per source, attack and eps; evaluate them on every target.

    Writes OUT/transfer.csv (source x target x attack x eps: accuracy of the target on the source's
    examples, Wilson interval) and OUT/transfer_examples.csv. The diagonal (source = target) is the
    white-box per-eps accuracy, equal to `sweep --no-fast-path` for the same grid, seed, n and batch size.
    """
    from rich.console import Console

    from ..attacks import parse_attack_args
    from ..transfer import TRANSFER_FILE, run_transfer
    from .progress import CommandProgress

    set_threads(threads)
    # a bar in a terminal; one line per finished cell in logs
    with CommandProgress(eta=True) as bars:
        task = bars.add("transfer")

        def on_start(total: int) -> None:  # after validation, so a bad input prints one line only
            bars.update(task, total=total)
            bars.start()

        def on_cell(event) -> None:
            bars.update(task, completed=event.done, total=event.total,
                        description=f"{event.source} {event.attack} eps={event.eps_label}")
            accuracy = ", ".join(f"{t} {100 * a:.1f}%" for t, a in event.accuracy.items())
            bars.log(f"cell {event.done}/{event.total}: {event.source} {event.attack} eps={event.eps_label} -> "
                     f"{accuracy}{' (stored)' if event.stored else ''}", soft_wrap=True)

        frame = run_transfer(split_values(sources), split_values(targets), split_values(attack), eps, dataset,
                         eps_unit=eps_unit, attack_args=parse_attack_args(attack_arg), data_dir=data_dir,
                         models_dir=models_dir, n=n, batch_size=batch_size, seed=seed, device=device, out=out,
                         on_start=on_start, on_cell=on_cell, provenance={"command": command_line()}, strict=strict)
    _print_transfer_tables(frame, Console(width=None if sys.stdout.isatty() else 200))
    typer.echo(f"wrote {out / TRANSFER_FILE} ({len(frame)} rows)")
    if report:
        from ..report.transfer import build_transfer_report

        with bars.console.status("building report"):
            index = build_transfer_report(out, out / "report", command=command_line())
        typer.echo(f"wrote {index}")
