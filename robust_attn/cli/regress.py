"""``robust-attn regress``: the regression suite on the shipped checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .application import app
from .options import ModelsDir, Threads, set_threads


@app.command("regress")
def regress_cmd(
    models_dir: ModelsDir = Path("models"),
    update: Annotated[bool, typer.Option("--update", help="Rewrite the expected results and print what moved.")] = False,
    threads: Threads = None,
) -> None:
    """Re-run the regression suite on the shipped checkpoints; exit 1 if any cell moved."""
    from rich.console import Console
    from rich.table import Table

    from ..regress import compare, read_expected, read_suite, run_suite, write_expected

    set_threads(threads)
    suite = read_suite(models_dir)
    err = Console(stderr=True)
    actual = run_suite(models_dir, on_run=lambda i, total, r: err.print(f"[{i + 1}/{total}] {','.join(r.attacks)} eps {r.entry.eps}"))
    expected_path = models_dir / "regress_expected.csv"
    try:
        diffs = compare(read_expected(models_dir), actual, suite) if (expected_path.exists() or not update) else []
    except UserError as exc:  # --update replaces an expectation of an older format; without it, that is the error
        if not update:
            raise
        err.print(f"replacing {expected_path}: {exc}")
        diffs = []
    if diffs:
        table = Table("cell", "expected", "actual", "tolerance",
                      title=f"{len(diffs)} of {len(actual)} regression cells moved", title_justify="left")
        for d in diffs:
            table.add_row(d.cell, d.expected, d.actual, str(d.allowed))
        Console(width=200).print(table)
    if update:
        typer.echo(f"wrote {write_expected(models_dir, actual)} ({len(actual)} cells)")
        return
    if diffs:
        raise typer.Exit(1)
    typer.echo(f"regression suite passed: {len(actual)} cells match")
