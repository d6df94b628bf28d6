"""Assemble a self-contained report directory from one or more sweep result directories.

Reads results.csv (+ per_example.csv and run.json when present). Everything but the attention
panels comes from those files; the panels load the checkpoints named in run.json (sha256
verified) and run a few forward passes, plus the panel attack on a handful of images.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import UserError, require_int
from ..files import atomic_write_text, ensure_dir
from ..results import RESULT_COLUMNS, read_results_csv, write_csv
from . import plots
from .sanity import Check, Status, run_checks

log = logging.getLogger(__name__)

ROW_KEY = ["model", "checkpoint_sha256", "dataset", "n", "attack", "attack_params", "eps"]


@dataclass(frozen=True)
class RunInputs:
    results: pd.DataFrame
    examples: pd.DataFrame | None
    runs: list[dict[str, Any]]


def read_runs(dirs: Sequence[str | os.PathLike]) -> RunInputs:
    """Merge several result directories; identical cells appearing twice are kept once."""
    if not dirs:
        raise UserError("no results directory given")
    frames, examples, runs = [], [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise UserError(f"results directory {d} does not exist")
        frames.append(read_results_csv(d / "results.csv"))
        if (d / "per_example.csv").is_file():
            examples.append(pd.read_csv(d / "per_example.csv", dtype={"eps_label": str}))
        if (d / "run.json").is_file():
            try:
                runs.append({**json.loads((d / "run.json").read_text()), "results_dir": str(d)})
            except json.JSONDecodeError as exc:
                raise UserError(f"{d / 'run.json'} is not valid JSON ({exc})") from None
    results = pd.concat(frames, ignore_index=True).drop_duplicates(ROW_KEY, keep="last").reset_index(drop=True)
    ex = pd.concat(examples, ignore_index=True).drop_duplicates(["model", "attack", "eps", "index"], keep="last") \
        if examples else None
    return RunInputs(results[list(RESULT_COLUMNS)], ex, runs)


def is_attention(architecture: str) -> bool:
    from ..models import get_model_cfg, list_models

    return architecture in list_models() and get_model_cfg(architecture).has_attention


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per (attack, model), accuracy and Wilson CI per eps (numeric columns)."""
    out = []
    for (attack, model), rows in frame.sort_values("eps").groupby(["attack", "model"], sort=True):
        first = rows.iloc[0]
        record: dict[str, Any] = {"attack": attack, "model": model, "architecture": first.architecture,
                                  "width": first.width, "dataset": first.dataset, "n": first.n,
                                  "clean_accuracy": first.clean_accuracy}
        for r in rows.itertuples():
            record[f"acc {r.eps_label}"] = r.accuracy
            record[f"ci_low {r.eps_label}"] = r.ci_low
            record[f"ci_high {r.eps_label}"] = r.ci_high
        out.append(record)
    return pd.DataFrame(out)


def _mcnemar_p(base_correct: np.ndarray, att_correct: np.ndarray) -> float:
    """Exact McNemar test on paired outcomes: a binomial test on the discordant pairs."""
    from scipy.stats import binomtest

    b = int((base_correct & ~att_correct).sum())
    c = int((~base_correct & att_correct).sum())
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def attention_vs_baseline(frame: pd.DataFrame, examples: pd.DataFrame | None) -> pd.DataFrame:
    """Per attention model, attack and eps: accuracy minus its baseline's (same width, training and
    evaluation data), with McNemar's p-value on the same images when per-example results exist."""
    rows = []
    base = frame[frame["architecture"] == "vgg"]
    # per (model, attack, eps) the per-example outcomes, indexed by example: grouped once, not per pair
    correct = {} if examples is None else {
        key: pd.Series((g["adv_pred"] == g["label"]).to_numpy(), index=g["index"].to_numpy())
        for key, g in examples.groupby(["model", "attack", "eps_label"], sort=False)
    }
    for r in frame[frame["architecture"].map(is_attention)].itertuples():
        match = base[(base["width"] == r.width) & (base["trained_on"] == r.trained_on) & (base["dataset"] == r.dataset)
                     & (base["n"] == r.n) & (base["attack"] == r.attack) & (base["attack_params"] == r.attack_params)
                     & (np.isclose(base["eps"], r.eps))]
        if match.empty:
            continue
        b = match.iloc[0]
        p = float("nan")
        att, bas = correct.get((r.model, r.attack, r.eps_label)), correct.get((b.model, r.attack, r.eps_label))
        if att is not None and bas is not None:
            paired = pd.concat({"att": att, "base": bas}, axis=1, join="inner")
            if len(paired) == r.n:
                p = _mcnemar_p(paired["base"].to_numpy(), paired["att"].to_numpy())
        rows.append({"model": r.model, "baseline": b.model, "attack": r.attack, "norm": r.norm, "eps": r.eps,
                     "eps_label": r.eps_label,
                     "accuracy": r.accuracy, "baseline_accuracy": b.accuracy, "difference": r.accuracy - b.accuracy,
                     "mcnemar_p": p})
    return pd.DataFrame(rows, columns=["model", "baseline", "attack", "norm", "eps", "eps_label", "accuracy",
                                       "baseline_accuracy", "difference", "mcnemar_p"])


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _html_table(frame: pd.DataFrame, attack: str) -> dict[str, Any]:
    """Rows of 'acc [lo, hi]' strings per eps with the best value per eps flagged."""
    rows = frame[frame["attack"] == attack].sort_values("eps")
    labels = rows.drop_duplicates("eps_label")["eps_label"].tolist()
    best = rows.groupby("eps_label")["accuracy"].max()
    body = []
    for model, r in rows.groupby("model", sort=True):
        by = {x.eps_label: x for x in r.itertuples()}
        cells = []
        for lab in labels:
            x = by.get(lab)
            cells.append(None if x is None else {
                "text": f"{100 * x.accuracy:.1f}", "ci": f"[{100 * x.ci_low:.1f}, {100 * x.ci_high:.1f}]",
                "best": bool(np.isclose(x.accuracy, best[lab]))})
        body.append({"model": model, "attention": is_attention(r["architecture"].iloc[0]), "cells": cells})
    return {"attack": attack, "labels": labels, "rows": body}


def build_report(
    result_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    panel_images: int = 8,
    shift_images: int = 64,
    panel_attack: str | None = None,
    panel_eps: float | None = None,
    command: str | None = None,
) -> Path:
    """Write ``index.html``, ``summary.csv``, ``results.csv``, ``attention_vs_baseline.csv`` and the
    plots (PNG + SVG) into ``out_dir``; return the path of ``index.html``."""
    started = time.perf_counter()
    require_int("panel_images", panel_images, 0)
    require_int("shift_images", shift_images, 0)
    inputs = read_runs(result_dirs)
    out = ensure_dir(out_dir, "report directory")
    frame = inputs.results
    write_csv(frame, out / "results.csv")
    summary = summary_table(frame)
    write_csv(summary, out / "summary.csv")
    checks = run_checks(frame)
    attention_flags = {m: is_attention(a) for m, a in frame.groupby("model")["architecture"].first().items()}
    attacks = sorted(frame["attack"].unique())
    accuracy_plots = [(a, plots.accuracy_plot(frame, a, attention_flags, out, f"accuracy_{_slug(a)}")) for a in attacks]
    diffs = attention_vs_baseline(frame, inputs.examples)
    write_csv(diffs, out / "attention_vs_baseline.csv")
    diff_plot = plots.difference_plot(diffs, out, "attention_minus_baseline") if len(diffs) else None
    from .attention import attention_section

    panels, shift_png, panel_note = attention_section(inputs, out, panel_images, shift_images, panel_attack, panel_eps)
    context = {
        "version": __version__,
        "git_commit": _git_commit(),
        "command": command,
        "runs": inputs.runs,
        "checkpoints": frame.drop_duplicates(["model", "dataset", "n"])[
            ["model", "checkpoint_sha256", "architecture", "width", "trained_on", "dataset", "n", "clean_accuracy", "seed"]
        ].to_dict("records"),
        "checks": checks,
        "failures": [c for c in checks if c.status is Status.FAIL],
        "accuracy_plots": accuracy_plots,
        "tables": [_html_table(frame, a) for a in attacks],
        "diffs": diffs.to_dict("records"),
        "diff_plot": diff_plot,
        "has_examples": inputs.examples is not None,
        "panels": panels,
        "shift_png": shift_png,
        "panel_note": panel_note,
    }
    context["render_seconds"] = round(time.perf_counter() - started, 1)
    html = render(context)
    return atomic_write_text(out / "index.html", html)


def render(context: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("robust_attn.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "n/a" if v is None or v != v else f"{100 * v:.1f}"
    env.filters["pval"] = lambda v: "n/a" if v is None or v != v else (f"{v:.2g}" if v >= 1e-4 else "< 1e-4")
    return env.get_template("index.html.j2").render(**context, Status=Status)


def _slug(text: str) -> str:
    """A file-name-safe form of a user-controlled name (no path separators, no dots at the start)."""
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "unnamed"


__all__ = ["Check", "build_report", "read_runs", "summary_table", "attention_vs_baseline"]
