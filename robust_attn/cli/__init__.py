"""The ``robust-attn`` command: a thin typer layer over the library, one module per command.

``options`` holds the option types several commands share, ``progress`` the one progress display,
``application`` the typer application (``app``); each command module registers its command on it. Heavy imports
(torch, pandas, rich) happen inside the commands so ``--help`` is instant. A
:class:`~robust_attn.errors.UserError` or a click usage error becomes one stderr line and exit
status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys

import typer

try:  # typer >= 0.25 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer depends on click itself
    import click.exceptions as click_exceptions

from ..errors import UserError
from .application import app, state

# Importing a command's module registers it; this order is the order of ``--help``.
from . import models, attacks, train, sweep, report, claims, regress, study, transfer, data  # noqa: E402,F401,I001
from .models import count_macs

__all__ = ["app", "click_exceptions", "count_macs", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user mistakes exit 2 with one stderr line, Ctrl-C exits 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv[1:]:  # a global option, accepted after the subcommand too
        argv = ["--debug", *[a for a in argv if a != "--debug"]]
    try:
        rc = app(args=argv, standalone_mode=False)  # typer turns Ctrl-C into exit code 130
    except UserError as exc:
        if state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click_exceptions.UsageError as exc:
        print(f"error: {exc.format_message()}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        rc = 130
    if rc == 130:
        print("interrupted: finished work is saved; rerun the same command to resume", file=sys.stderr)
    sys.exit(rc if isinstance(rc, int) else 0)
