"""Page rendering shared by the report pages: one Jinja2 environment, autoescaped (model names and
commands are user-controlled), with the number filters every page uses."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd

from ...files import atomic_write_text

log = logging.getLogger(__name__)


def absent(value: Any) -> bool:
    """None or NaN: a number that could not be computed (an interval with one seed, a test without pairs)."""
    return value is None or bool(pd.isna(value))


State = TypeVar("State")


@dataclass(frozen=True)
class Section(Generic[State]):
    """One part of a page, so that adding one is its code and its partial: ``id`` is its anchor and names
    its partial, ``templates/PAGE_ID.html.j2``; ``title`` heads it and its line in the table of contents;
    ``build`` turns what the page read and computed into the names that partial reads (writing the files
    it links: CSVs, figures). A ``folded`` section is details a reader opens (closed by default), so that
    the page a researcher scrolls holds the answers and the figures, not every table behind them."""

    id: str
    title: str
    build: Callable[[State], Mapping[str, Any]]
    folded: bool = False


def build_sections(page: str, sections: Sequence[Section[State]], state: State) -> dict[str, Any]:
    """Every section's context, merged, and ``sections``: what ``page.html.j2`` lays out, in order (id,
    title, folded and the partial it includes), which is also the table of contents."""
    context: dict[str, Any] = {}
    for section in sections:
        context.update(section.build(state))
    return {**context, "sections": [{"id": s.id, "title": s.title, "folded": s.folded,
                                     "template": f"{page}_{s.id}.html.j2"} for s in sections]}


def render_page(template: str, context: Mapping[str, Any], missing_integer: str = "n/a", **extra: Any) -> str:
    """A page from its template (in ``robust_attn/report/templates``; each extends ``page.html.j2``, which
    includes the page's section partials) and context."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("robust_attn.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda v: "n/a" if absent(v) else f"{100 * v:.1f}"
    env.filters["points"] = lambda v: "n/a" if absent(v) else f"{100 * v:+.1f}"
    env.filters["pval"] = lambda v: "n/a" if absent(v) else (f"{v:.2g}" if v >= 1e-4 else "< 1e-4")
    env.filters["integer"] = lambda v: missing_integer if absent(v) else str(int(v))
    return env.get_template(template).render(**context, **extra)


def write_page(path: Path, template: str, context: Mapping[str, Any], started: float, *,
               missing_integer: str = "n/a", **extra: Any) -> Path:
    """Render a page (saying how long the report took since ``started``, a ``time.perf_counter()``) and
    write it atomically to ``path``; return ``path``."""
    context = {**context, "render_seconds": round(time.perf_counter() - started, 1)}
    written = atomic_write_text(path, render_page(template, context, missing_integer, **extra))
    log.info("report written to %s", written)
    return written


__all__ = ["Section", "absent", "build_sections", "render_page", "write_page"]
