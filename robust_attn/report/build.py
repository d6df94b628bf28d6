"""Assemble a self-contained report directory from one or more results folders.

Reads results folders only (``results.csv``, ``per_example.csv``, ``runs.jsonl``, ``attention/*.npz``):
no checkpoint is loaded and no attack is run. Tables and plots lead with the per-eps accuracy (the
attack run at that eps alone) and show the worst case (robust to the attack at every eps' <= eps)
beside it. Every curve is a (model, dataset, n, attack, attack parameters): two runs of one attack
with different parameters are two curves.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import require_int
from ..files import ensure_dir
from ..results import write_csv
from . import plots
from .attention import attention_section, robustness_section
from .inputs import COLUMNS, RunInputs, describe_missing, image_shapes, read_runs
from .kit.inputs import NO_END, non_ce_gradient_attacks
from ..files import slug
from .kit.pairing import is_variant
from .kit.provenance import page_header, run_rows
from .kit.render import Section, build_sections, write_page
from .sanity import Check, Status, run_checks
from .tables import across_attacks, ambiguous_baselines, attention_vs_baseline, html_tables, shown_models, summary_table

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


@dataclass(frozen=True)
class SweepPage:
    """What the sections of the sweep page read: the folders as read and what the page computed once."""

    inputs: RunInputs
    out: Path
    attention: set[str]  # models with spatial maps
    variants: set[str]  # attention of any kind: maps or channel gates (SE)
    summary: pd.DataFrame
    checks: list[Check]
    panel_images: int
    shift_images: int
    panel_attack: str | None
    panel_eps: float | None


def provenance_section(page: SweepPage) -> dict[str, Any]:
    frame = page.inputs.results
    return {"provenance": _provenance(page.inputs), "no_end": NO_END,
            "checkpoints": frame.drop_duplicates(["model", "dataset", "n"])[
                ["model", "checkpoint_sha256", "architecture", "width", "trained_on", "dataset", "n", "clean_accuracy",
                 "seed"]].to_dict("records")}


def accuracy_section(page: SweepPage) -> dict[str, Any]:
    summary = page.summary
    labels = sorted(summary["attack_label"].unique(), key=lambda lab: (lab.startswith("worst case over"), lab))
    return {"accuracy_plots": [(lab, plots.accuracy_plot(summary[summary["attack_label"] == lab], lab, page.variants,
                                                         page.out, f"accuracy_{slug(lab)}")) for lab in labels]}


def summary_section(page: SweepPage) -> dict[str, Any]:
    return {"tables": html_tables(page.summary, page.variants)}


def baseline_section(page: SweepPage) -> dict[str, Any]:
    diffs = attention_vs_baseline(page.inputs.results, page.inputs.examples, page.attention)
    write_csv(diffs, page.out / "attention_vs_baseline.csv")
    shown = shown_models(diffs)
    return {"diffs": shown.to_dict("records"), "has_examples": page.inputs.examples is not None,
            "diff_plot": plots.difference_plot(shown, page.out, "attention_minus_baseline") if len(diffs) else None}


def under_attack_section(page: SweepPage) -> dict[str, Any]:
    section = attention_section(page.inputs, page.out, page.panel_images, page.shift_images, page.panel_attack,
                                page.panel_eps, page.attention)
    return {"panels": section.panels, "shift_png": section.shift_png, "panel_note": section.note,
            "mapless": sorted(page.variants - page.attention), "panel_attack": section.attack_label}


def robustness_of_attention_section(page: SweepPage) -> dict[str, Any]:
    robustness = robustness_section(page.inputs, page.out, page.panel_images, page.shift_images, page.attention)
    return {"robustness": robustness.models, "robustness_csv": robustness.csv, "robustness_note": robustness.note}


def sanity_section(page: SweepPage) -> dict[str, Any]:
    return {"checks": page.checks}


# The sweep page's sections, in page order (each renders templates/sweep_ID.html.j2).
SECTIONS: tuple[Section[SweepPage], ...] = (
    Section("provenance", provenance_section),
    Section("accuracy", accuracy_section),
    Section("summary", summary_section),
    Section("attention-vs-baseline", baseline_section),
    Section("attention-under-attack", under_attack_section),
    Section("attention-robustness", robustness_of_attention_section),
    Section("sanity", sanity_section),
)


def banner(page: SweepPage) -> dict[str, Any]:
    """What the page says above everything else: failed checks, what to run next, incomplete folders, notes."""
    inputs, checks = page.inputs, page.checks
    ambiguous = [f"{model} (evaluated on {dataset}, n={n}) is not compared with a baseline: {len(names)} models could "
                 f"be its baseline ({', '.join(names)}); compare architectures across such seeds with a study"
                 for (model, dataset, n), names in ambiguous_baselines(inputs.results).items()]
    return {"failures": [c for c in checks if c.status is Status.FAIL], "next_attacks": _next_attacks(checks, inputs),
            "incomplete": [{"folder": r.folder, "command": r.command, "status": r.status,
                            "missing": describe_missing(r, inputs.labels)} for r in inputs.incomplete],
            "notes": [*inputs.notes, *ambiguous]}


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
    attention = attention_models(frame, (a.model for a in inputs.artifacts))
    write_csv(frame[[*COLUMNS, "attack_label"]], out / "results.csv")
    summary = summary_table(frame, across_attacks(frame, inputs.examples))
    write_csv(summary, out / "summary.csv")
    checks = run_checks(frame, inputs.examples, image_shapes(inputs))
    write_csv(pd.DataFrame([{"check": c.name, "status": c.status.value, "detail": c.detail, "suggests": c.suggests}
                            for c in checks]), out / "sanity.csv")
    page = SweepPage(inputs, out, attention, attention | variant_models(frame), summary, checks, panel_images,
                     shift_images, panel_attack, panel_eps)
    context = {**page_header(command), **banner(page), **build_sections("sweep", SECTIONS, page)}
    return write_page(out / "index.html", "sweep.html.j2", context, started, Status=Status)


__all__ = ["SECTIONS", "Check", "SweepPage", "attention_vs_baseline", "build_report", "read_runs", "summary_table"]
