"""``robust-attn report``: an HTML + CSV report from sweep result folders."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError
from .application import app
from .options import Threads, command_line, set_threads


@app.command("report")
def report_cmd(
    results: Annotated[list[Path], typer.Argument(help="One or more sweep result folders (merged).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: RESULTS/report for one folder).")] = None,
    panel_images: Annotated[int, typer.Option("--panel-images", help="Images in the attention panels (0: none).")] = 8,
    shift_images: Annotated[int, typer.Option("--shift-images", help="Images for the attention-shift curve.")] = 64,
    panel_attack: Annotated[Optional[str], typer.Option("--panel-attack", help="Attack for the panels (default: fgsm).")] = None,
    corruption_baseline: Annotated[Optional[str], typer.Option("--corruption-baseline", help="Model every mCE (common corruptions) is relative to, as Hendrycks & Dietterich use one baseline for all (default: each attention model's own baseline).")] = None,
    threads: Threads = None,
) -> None:
    """Build an HTML + CSV report from sweep result folders (it reads their files only)."""
    from ..report import build_report

    set_threads(threads)
    if out is None:
        if len(results) != 1:
            raise UserError("several results folders: pass --out for the merged report")
        out = results[0] / "report"
    index = build_report(results, out, panel_images=panel_images, shift_images=shift_images,
                         panel_attack=panel_attack, command=command_line(), corruption_baseline=corruption_baseline)
    typer.echo(f"wrote {index}")
