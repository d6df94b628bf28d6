"""The ``robust-attn`` typer application and its global options; the commands register on it from
their own modules (see :mod:`robust_attn.cli`)."""
from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="robust-attn",
    help="Adversarial-robustness evaluation of the 'Learn To Pay Attention' CNNs.",
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Dataset utilities.", no_args_is_help=True)
app.add_typer(data_app, name="data")

state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
