"""The one progress display every long command uses: rich bars on stderr in a terminal, plain lines
in logs (where bars would only be noise), stopped however the command ends."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class CommandProgress:
    """Bars for a command's tasks. ``status``: a free-text column (the training loss) instead of a
    done/total count; ``eta``: an estimated-time-left column; ``quiet``: print nothing (ranks other
    than rank 0 under torchrun). The bars appear on :meth:`start` (after validation, so a bad input
    prints one line only); :meth:`log` lines appear only where there are no bars."""

    def __init__(self, *, status: bool = False, eta: bool = False, quiet: bool = False, enabled: bool = True):
        self.console = Console(stderr=True, quiet=quiet)
        self.live = enabled and self.console.is_terminal
        columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn()]
        columns.append(TextColumn("{task.fields[status]}") if status else MofNCompleteColumn())
        columns.append(TimeElapsedColumn())
        if eta:
            columns += [TimeRemainingColumn()] if status else [TextColumn("eta"), TimeRemainingColumn()]
        self.progress = Progress(*columns, console=self.console, disable=not self.live)

    def add(self, description: str, total: int | None = None, **fields: Any) -> int:
        """A new bar; returns its id for :meth:`update`."""
        return self.progress.add_task(description, total=total, **fields)

    def update(self, task: int, **changes: Any) -> None:
        self.progress.update(task, **changes)

    def start(self) -> None:
        """Show the bars (once; a no-op in logs)."""
        if self.live and not self.progress.live.is_started:
            self.progress.start()

    def print(self, text: str, **options: Any) -> None:
        """A line shown in a terminal and in logs alike."""
        self.console.print(text, highlight=False, **options)

    def log(self, text: str, **options: Any) -> None:
        """A line for logs only: where bars are shown, they say it already."""
        if not self.live:
            self.print(text, **options)

    def admission(self, row: Any) -> None:
        """One admission check's line (a sweep's ``on_admission``); a FAIL is logged as a warning already."""
        if row.status != "FAIL":
            self.print(f"admission {row.status}: {row.model}: {row.check}: {row.detail}", soft_wrap=True)

    def stop(self) -> None:
        """Take the bars down (safe to call twice)."""
        self.progress.stop()

    def __enter__(self) -> CommandProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
