"""Assemble a self-contained report directory from one or more results folders.

Reads results folders only (``results.csv``, ``per_example.csv``, ``runs.jsonl``, ``attention/*.npz``):
no checkpoint is loaded and no attack is run. Tables and plots lead with the per-eps accuracy (the
attack run at that eps alone) and show the worst case (robust to the attack at every eps' <= eps)
beside it. Every curve is a (model, dataset, n, attack, attack parameters): two runs of one attack
with different parameters are two curves.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import require_int
from ..files import atomic_write_text, ensure_dir
from ..results import RESULT_COLUMNS, write_csv
from . import plots
from .attention import attention_section, robustness_section
from .common import NON_CE_GRADIENT_ATTACKS, attention_models, slug, variant_models
from .inputs import NO_END, RunInputs, describe_missing, read_runs
from .sanity import Check, Status, run_checks
from .tables import across_attacks, ambiguous_baselines, attention_vs_baseline, html_tables, shown_models, summary_table

log = logging.getLogger(__name__)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _image_shapes(inputs: RunInputs) -> dict[str, tuple[int, ...]]:
    """Image shape (C, H, W) per evaluation dataset, where a run log or an artifact records it."""
    shapes: dict[str, tuple[int, ...]] = {}
    for run in inputs.runs:
        for c in run.checkpoints:
            shape = c.get("image_shape") if isinstance(c, dict) else None
            if isinstance(shape, list) and len(shape) == 3:
                shapes[str(c.get("evaluated_on"))] = tuple(int(v) for v in shape)
    datasets = inputs.results.drop_duplicates("model").set_index("model")["dataset"]
    for art in inputs.artifacts:
        if art.model in datasets.index and datasets[art.model] not in shapes:
            try:
                with np.load(art.path, allow_pickle=False) as z:
                    shapes[datasets[art.model]] = tuple(int(v) for v in z["x"].shape[1:])
            except Exception:  # the check falls back to the dataset's registered channels
                pass
    return shapes


def _next_attacks(checks: Sequence[Check], inputs: RunInputs) -> dict[str, Any] | None:
    """For gradient-masking FAILs: the attacks that do not depend on the cross-entropy gradient's
    scale, and a command that runs them on the models concerned (by checkpoint path where the run
    log records one)."""
    masking = [c for c in checks if c.status is Status.FAIL and c.masking]
    if not masking:
        return None
    paths = {c.get("name"): c.get("path") for r in inputs.runs for c in r.checkpoints if isinstance(c, dict)}
    models = list(dict.fromkeys(m for c in masking for m in c.models))
    frame = inputs.results
    linf = bool((frame[frame["model"].isin(models)]["norm"] == "Linf").any()) or not models
    attacks = [a for a in (("apgd-dlr", "square") if linf else ("cw", "deepfool")) if a in NON_CE_GRADIENT_ATTACKS]
    grid = "--eps 0:8:1" if linf else "--eps-unit raw --eps 0:1:0.25"
    command = (f"robust-attn sweep --models {','.join(str(paths.get(m) or m) for m in models)} "
               f"--attack {','.join(attacks)} {grid}" if models else None)
    return {"attacks": list(NON_CE_GRADIENT_ATTACKS), "command": command, "checks": [c.name for c in masking]}


def _provenance(inputs: RunInputs) -> list[dict[str, Any]]:
    """Per results folder, every run that wrote to it (oldest first)."""
    out = []
    for folder in inputs.folders:
        runs = []
        for r in sorted((r for r in inputs.runs if r.folder == folder), key=lambda r: r.time or ""):
            s = r.settings
            versions = s.get("versions") or {}
            runs.append({
                "run_id": r.run_id, "time": r.time, "command": r.command, "status": r.status,
                "ok": r.status == "finished", "wall_seconds": r.wall_seconds,
                "cells": len(r.planned), "missing": len(r.missing),
                "attacks": ", ".join(_label(inputs, a) for a in r.attacks if isinstance(a, dict)),
                "settings": ", ".join(f"{k} {s[k]}" for k in ("n", "seed", "batch_size", "device", "processes", "threads",
                                                              "channels_last", "amp", "fast_path", "data_dir")
                                      if k in s),
                "eps": ", ".join(map(str, s.get("eps_labels") or [])),
                "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
                "models": ", ".join(str(c.get("name")) for c in r.checkpoints if isinstance(c, dict)),
            })
        out.append({"folder": folder, "runs": runs})
    return out


def _label(inputs: RunInputs, attack: dict[str, Any]) -> str:
    """A run log's attack entry as the report labels it."""
    params = json.dumps(dict(attack.get("params") or {}), sort_keys=True, separators=(",", ":"))
    return inputs.labels.get((str(attack.get("name")), params), str(attack.get("name")))


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
    """Write ``index.html``, ``summary.csv``, ``results.csv``, ``sanity.csv``, ``attention_vs_baseline.csv``,
    ``attention_shift.csv``, ``attention_robustness.csv`` and the plots (PNG + SVG) into ``out_dir``; return the path of ``index.html``."""
    started = time.perf_counter()
    require_int("panel_images", panel_images, 0)
    require_int("shift_images", shift_images, 0)
    inputs = read_runs(result_dirs)
    out = ensure_dir(out_dir, "report directory")
    frame = inputs.results
    attention = attention_models(frame, (a.model for a in inputs.artifacts))  # with spatial maps
    variants = attention | variant_models(frame)  # attention of any kind: maps or channel gates (SE)
    write_csv(frame[[*RESULT_COLUMNS, "attack_label"]], out / "results.csv")
    across = across_attacks(frame, inputs.examples)
    summary = summary_table(frame, across)
    write_csv(summary, out / "summary.csv")
    checks = run_checks(frame, inputs.examples, _image_shapes(inputs))
    write_csv(pd.DataFrame([{"check": c.name, "status": c.status.value, "detail": c.detail, "suggests": c.suggests}
                            for c in checks]), out / "sanity.csv")
    labels = sorted(summary["attack_label"].unique(), key=lambda lab: (lab.startswith("worst case over"), lab))
    accuracy_plots = [(lab, plots.accuracy_plot(summary[summary["attack_label"] == lab], lab, variants, out,
                                                f"accuracy_{slug(lab)}")) for lab in labels]
    diffs = attention_vs_baseline(frame, inputs.examples, attention)
    write_csv(diffs, out / "attention_vs_baseline.csv")
    shown = shown_models(diffs)
    diff_plot = plots.difference_plot(shown, out, "attention_minus_baseline") if len(diffs) else None
    ambiguous = [f"{model} (evaluated on {dataset}, n={n}) is not compared with a baseline: {len(names)} models could "
                 f"be its baseline ({', '.join(names)}); compare architectures across such seeds with a study"
                 for (model, dataset, n), names in ambiguous_baselines(frame).items()]
    section = attention_section(inputs, out, panel_images, shift_images, panel_attack, panel_eps, attention)
    robustness = robustness_section(inputs, out, panel_images, shift_images, attention)
    incomplete = [{"folder": r.folder, "command": r.command, "status": r.status,
                   "missing": describe_missing(r, inputs.labels)} for r in inputs.incomplete]
    context = {
        "version": __version__,
        "git_commit": _git_commit(),
        "command": command,
        "provenance": _provenance(inputs),
        "no_end": NO_END,
        "checkpoints": frame.drop_duplicates(["model", "dataset", "n"])[
            ["model", "checkpoint_sha256", "architecture", "width", "trained_on", "dataset", "n", "clean_accuracy", "seed"]
        ].to_dict("records"),
        "checks": checks,
        "failures": [c for c in checks if c.status is Status.FAIL],
        "next_attacks": _next_attacks(checks, inputs),
        "incomplete": incomplete,
        "notes": [*inputs.notes, *ambiguous],
        "accuracy_plots": accuracy_plots,
        "tables": html_tables(summary, variants),
        "diffs": shown.to_dict("records"),
        "diff_plot": diff_plot,
        "has_examples": inputs.examples is not None,
        "panels": section.panels,
        "shift_png": section.shift_png,
        "panel_note": section.note,
        "mapless": sorted(variants - attention),
        "panel_attack": section.attack_label,
        "robustness": robustness.models,
        "robustness_csv": robustness.csv,
        "robustness_note": robustness.note,
    }
    context["render_seconds"] = round(time.perf_counter() - started, 1)
    return atomic_write_text(out / "index.html", render(context))


def render(context: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("robust_attn.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "n/a" if v is None or v != v else f"{100 * v:.1f}"
    env.filters["pval"] = lambda v: "n/a" if v is None or v != v else (f"{v:.2g}" if v >= 1e-4 else "< 1e-4")
    return env.get_template("index.html.j2").render(**context, Status=Status)


__all__ = ["Check", "attention_vs_baseline", "build_report", "read_runs", "summary_table"]
