"""Page rendering shared by the report pages: one Jinja2 environment, autoescaped (model names and
commands are user-controlled), with the number filters every page uses."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def absent(value: Any) -> bool:
    """None or NaN: a number that could not be computed (an interval with one seed, a test without pairs)."""
    return value is None or bool(pd.isna(value))


def render_page(template: str, context: Mapping[str, Any], missing_integer: str = "n/a", **extra: Any) -> str:
    """A page from its template (in ``robust_attn/report/templates``) and context; the templates'
    section partials are included from ``sections/``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("robust_attn.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "n/a" if absent(v) else f"{100 * v:.1f}"
    env.filters["points"] = lambda v: "n/a" if absent(v) else f"{100 * v:+.1f}"
    env.filters["pval"] = lambda v: "n/a" if absent(v) else (f"{v:.2g}" if v >= 1e-4 else "< 1e-4")
    env.filters["integer"] = lambda v: missing_integer if absent(v) else str(int(v))
    return env.get_template(template).render(**context, **extra)


__all__ = ["absent", "render_page"]
