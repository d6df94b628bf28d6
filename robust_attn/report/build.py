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
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import require_int
from ..files import atomic_write_text, ensure_dir
from ..results import write_csv
from . import plots
from .attention import attention_section, robustness_section
from .inputs import COLUMNS, RunInputs, describe_missing, image_shapes, read_runs
from .kit.inputs import NO_END, non_ce_gradient_attacks
from .kit.labels import slug
from .kit.pairing import is_variant
from .kit.provenance import page_header, run_rows
from .kit.render import render_page
from .sanity import Check, Status, run_checks
from .tables import across_attacks, ambiguous_baselines, attention_vs_baseline, html_tables, shown_models, summary_table

log = logging.getLogger(__name__)

SETTINGS = ("n", "seed", "batch_size", "device", "processes", "threads", "channels_last", "amp", "fast_path", "data_dir")


def attention_models(frame: pd.DataFrame, with_artifacts: Iterable[str] = ()) -> set[str]:
    """Models with spatial attention maps: those whose rows record maps (``attention_maps`` other than
    ``none``) and those the sweep saved attention artifacts for."""
    maps = frame["attention_maps"].astype(str).str.strip().str.lower()
    recorded = set(frame.loc[~maps.isin(["none", "", "nan"]), "model"])
    return recorded | (set(with_artifacts) & set(frame["model"]))


def variant_models(frame: pd.DataFrame) -> set[str]:
    """Models whose rows record a baseline architecture: attention variants of a backbone, maps or not."""
    return set(frame.loc[is_variant(frame["baseline"]).to_numpy(), "model"])


def masking_attacks(catalog: dict[str, dict[str, Any]], norm: str) -> list[str]:
    """The attacks a gradient-masking FAIL suggests running next: of the non-CE-gradient label attacks
    of ``norm`` in the catalog, the first (by name) of each kind (a gradient attack on another loss, a
    score-based search, a minimal-perturbation attack)."""
    firsts: dict[str, str] = {}
    for name in non_ce_gradient_attacks(catalog):
        entry = catalog[name]
        if entry.get("norm") == norm:
            firsts.setdefault(str(entry.get("kind")), name)
    return sorted(firsts.values())


def _next_attacks(checks: Sequence[Check], inputs: RunInputs) -> dict[str, Any] | None:
    """For gradient-masking FAILs: the attacks of the run logs' catalogs that do not depend on the
    cross-entropy gradient's scale, and a command that runs them on the models concerned (by checkpoint
    path where the run log records one)."""
    masking = [c for c in checks if c.status is Status.FAIL and c.masking]
    if not masking:
        return None
    paths = {c.get("name"): c.get("path") for r in inputs.runs for c in r.checkpoints}
    models = list(dict.fromkeys(m for c in masking for m in c.models))
    frame = inputs.results
    linf = bool((frame[frame["model"].isin(models)]["norm"] == "Linf").any()) or not models
    attacks = masking_attacks(inputs.catalog, "Linf" if linf else "L2")
    grid = "--eps 0:8:1" if linf else "--eps-unit raw --eps 0:1:0.25"
    command = (f"robust-attn sweep --models {','.join(str(paths.get(m) or m) for m in models)} "
               f"--attack {','.join(attacks)} {grid}" if models and attacks else None)
    return {"attacks": non_ce_gradient_attacks(inputs.catalog), "command": command, "checks": [c.name for c in masking]}


def _provenance(inputs: RunInputs) -> list[dict[str, Any]]:
    """Per results folder, every run that wrote to it (oldest first)."""
    out = []
    for folder in inputs.folders:
        runs = sorted((r for r in inputs.runs if r.folder == folder), key=lambda r: r.time or "")
        rows = run_rows(runs, SETTINGS)
        for row, r in zip(rows, runs):
            row.update(cells=len(r.planned), eps=", ".join(map(str, r.settings.get("eps_labels") or [])),
                       attacks=", ".join(_label(inputs, a) for a in r.attacks))
        out.append({"folder": folder, "runs": rows})
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
    write_csv(frame[[*COLUMNS, "attack_label"]], out / "results.csv")
    across = across_attacks(frame, inputs.examples)
    summary = summary_table(frame, across)
    write_csv(summary, out / "summary.csv")
    checks = run_checks(frame, inputs.examples, image_shapes(inputs))
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
        **page_header(command),
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
    """The page from its context (autoescaped: model names and commands are user-controlled)."""
    return render_page("index.html.j2", context, Status=Status)


__all__ = ["Check", "attention_vs_baseline", "build_report", "read_runs", "summary_table"]
