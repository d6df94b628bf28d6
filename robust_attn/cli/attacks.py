"""``robust-attn attacks``: the attack registry, with what each attack is and its parameters."""
from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import UserError
from .application import app


@app.command("attacks")
def attacks_cmd(
    pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'apgd-*' or '*eot*', or 'corruptions'.")] = "*",
) -> None:
    """List registered attacks: norm, kind, whether they follow gradients or randomness, parameters with defaults."""
    from rich.console import Console
    from rich.table import Column, Table

    from ..attacks import CORRUPTIONS, expand_attack_names, get_attack_cfg, list_attacks

    names = expand_attack_names([CORRUPTIONS]) if pattern == CORRUPTIONS else list_attacks(pattern)
    if not names:
        import difflib
        import fnmatch

        group = fnmatch.fnmatchcase(CORRUPTIONS, pattern) or difflib.get_close_matches(pattern, [CORRUPTIONS], 1, 0.6)
        hint = f"; did you mean {CORRUPTIONS!r}, the common corruptions?" if group else ""
        raise UserError(f"no attack matches {pattern!r}{hint} (attacks: {', '.join(list_attacks())})")
    table = Table(Column("attack", no_wrap=True), "norm", "kind", "gradient", "parameters (defaults)", "what it does")
    for name in names:
        cfg = get_attack_cfg(name)
        gradient = "CE" if cfg.ce_gradient else "yes" if cfg.uses_gradient else "no"
        params = ", ".join(f"{k}={v}" for k, v in sorted(cfg.defaults.items())) or "-"
        table.add_row(name, cfg.norm.value, cfg.kind.value, gradient, params, cfg.description)
    Console(width=None if sys.stdout.isatty() else 200).print(table)
