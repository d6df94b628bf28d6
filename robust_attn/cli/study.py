"""``robust-attn study``: train what a study is missing, sweep every member, report across seeds."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import require_int
from .application import app
from .options import Device, Threads, command_line, set_threads


def _print_verdicts(effects, console) -> None:
    """The verdict table: per comparison, attack and metric, the across-seed difference of the
    normalised area under the accuracy-vs-eps curve, its 95% interval and what it says."""
    from rich.table import Table

    rows = effects[effects["summary"] == "auc"]
    table = Table(title="study verdicts (difference of normalised AUC, points, 95% interval across seeds)",
                  title_justify="left")
    for column in ("architecture", "baseline", "attack", "metric", "seeds", "difference", "95% interval", "p (Holm)",
                   "verdict"):
        table.add_column(column, justify="right" if column in ("seeds", "difference", "p (Holm)") else "left")
    for r in rows.itertuples():
        interval = "-" if r.ci_low != r.ci_low else f"[{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]"
        p = "-" if r.p_holm != r.p_holm else f"{r.p_holm:.2g}"
        table.add_row(r.architecture, r.baseline, r.attack, r.metric, f"{r.n_seeds}+{r.n_seeds_baseline}",
                      f"{100 * r.difference:+.1f}", interval, p, r.verdict)
    console.print(table)


@app.command("study")
def study_cmd(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML): recipe, architectures, seeds, evaluation.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Study folder (default: results/<study file name>); rerunning on it resumes.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Trainings at once (CPU threads are split between them).")] = 1,
    device: Device = "auto",
    threads: Threads = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build the study report in OUT/report.")] = True,
    n: Annotated[Optional[int], typer.Option("--n", "-n", "--examples", help="Evaluate the first N examples (overrides the study file's n; for a quick look).")] = None,
) -> None:
    """Train what a study is missing, sweep every (architecture, seed), and report across seeds.

    A checkpoint counts as present when its recorded training configuration and seed match the
    study's, whatever its file name; the study's own trainings go to OUT/checkpoints and resume
    after an interruption. Writes OUT/study.csv, effects.csv, per_seed.csv, within_seed.csv and
    OUT/report/index.html.
    """
    import dataclasses

    from rich.console import Console

    from ..attacks import grid_name
    from ..study import EFFECTS_FILE, STUDY_FILE, load_study
    from ..study.run import run_study
    from .progress import CommandProgress

    set_threads(threads)
    require_int("--jobs", jobs, 1)
    spec = load_study(study_file)
    if n is not None:
        spec = dataclasses.replace(spec, evaluation=dataclasses.replace(spec.evaluation, n=require_int("-n", n, 1)))
    out = out or Path("results") / study_file.stem
    # bars in a terminal; one line per epoch and per cell in logs
    with CommandProgress() as bars:
        tasks: dict[tuple[str, int], int] = {}
        sweep_task: list[int] = []

        def on_training(event) -> None:
            key = (event.architecture, event.seed)
            bars.start()
            if key not in tasks:
                tasks[key] = bars.add(f"train {event.architecture} seed {event.seed}", total=event.epochs)
            bars.update(tasks[key], completed=event.epoch)
            if event.epoch:
                bars.log(f"train {event.architecture} seed {event.seed}: epoch {event.epoch}/{event.epochs} "
                         f"test acc {event.test_accuracy:.4f}")

        def on_start(total: int) -> None:
            sweep_task.append(bars.add("sweep", total=total))
            bars.start()

        def on_cell(event) -> None:
            bars.update(sweep_task[0], completed=event.done,
                        description=f"sweep {event.model} {event.attack} {grid_name(event.attack)}={event.eps_label}")
            bars.log(f"cell {event.done}/{event.total}: {event.model} {event.attack} {grid_name(event.attack)}={event.eps_label} "
                     f"accuracy {100 * event.accuracy:.1f}%{' (stored)' if event.stored else ''}")

        result = run_study(spec, out, jobs=jobs, device=device, report=report, command=command_line(),
                           on_training=on_training, on_start=on_start, on_cell=on_cell)
    _print_verdicts(result.effects, Console(width=None if sys.stdout.isatty() else 160))
    typer.echo(f"wrote {out / STUDY_FILE}, {out / EFFECTS_FILE}")
    if result.report:
        typer.echo(f"wrote {result.report}")
