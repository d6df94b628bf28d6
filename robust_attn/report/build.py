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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError, require_int
from ..files import ensure_dir
from ..results import STANDARD_TRAINING, AdmissionCheck, write_csv
from . import corruption_plots, plots
from .attention import attention_section, robustness_section
from .corruption import FULL_BENCHMARK, is_corruption_row, read_strips, severity_curves, with_groups, write_tables
from .corruption import attention_vs_baseline as corruption_differences
from .corruption import summary as corruption_summary
from .inputs import COLUMNS, RunInputs, describe_missing, image_shapes, read_runs
from .kit.inputs import NO_END, non_ce_gradient_attacks
from ..files import slug
from .kit.banner import sanity_banner
from .kit.pairing import is_variant
from .kit.labels import NOISE, attention_objective
from .kit.provenance import human, page_header, run_rows
from .kit.render import Section, absent, build_sections, write_page
from .sanity import Check, Outcomes, Status, check_admission, check_eps_zero, run_checks
from .tables import (across_attacks, ambiguous_baselines, attention_vs_baseline, baseline_candidates, html_tables,
                     shown_models, summary_table)
from .kit.verdicts import SWEEP_VERDICT_RULE, answers, decide

# The run settings the provenance table shows, in that order.
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
            row.update(cells=len(r.planned), attacks=", ".join(_label(inputs, a) for a in r.attacks))
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
    decided: pd.DataFrame  # every variant vs its baseline per attack and eps, with the verdict (.verdicts.decide)
    panels: dict[tuple, str]  # (model, dataset, n) -> the title of its accuracy panel (evaluation set, backbone)
    roles: dict[str, str]  # model -> baseline / variant / model
    panel_images: int
    shift_images: int
    panel_attack: str | None
    panel_eps: float | None
    corruptions: pd.DataFrame | None = None  # the rows of common corruptions (with group, severity); None: none ran
    corruption_examples: pd.DataFrame | None = None
    corruption_baseline: str | None = None  # the model every mCE is relative to; None: each variant's own baseline


MODEL_KEY = ["model", "dataset", "n"]


def backbone_panels(frame: pd.DataFrame) -> tuple[dict[tuple, str], dict[str, str]]:
    """Which accuracy panel each model as evaluated (model, dataset, n) is drawn in, and its role there:
    a variant with one baseline model (:func:`.tables.baseline_candidates`) shares its baseline's panel,
    titled by the evaluation set and the backbone; every other model goes to its evaluation set's panel
    of other models. Decided from what the rows record, never from a name."""
    several_n = frame[["dataset", "n"]].drop_duplicates().shape[0] > frame["dataset"].nunique()
    architecture = dict(zip(frame["model"], frame["architecture"]))
    threat = dict(zip(frame["model"], frame["training_threat_model"].astype(str))) \
        if "training_threat_model" in frame else {}

    def where(dataset: str, n: int) -> str:
        return f"{dataset}, n={n}" if several_n else str(dataset)

    panels: dict[tuple, str] = {}
    roles: dict[str, str] = {}
    for (model, dataset, n), names in baseline_candidates(frame).items():
        if len(names) != 1:
            continue
        title = f"{where(dataset, n)}: {architecture.get(names[0], names[0])} ({names[0]})"
        if threat.get(names[0], STANDARD_TRAINING) != STANDARD_TRAINING:  # a pair shares its threat model
            title += f", {threat[names[0]]}-trained"
        panels[(model, dataset, n)] = panels[(names[0], dataset, n)] = title
        roles[model], roles[names[0]] = "variant", "baseline"
    for model, dataset, n in frame[MODEL_KEY].drop_duplicates().itertuples(index=False):
        panels.setdefault((model, dataset, n), f"{where(dataset, n)}: other models")
        roles.setdefault(model, "model")
    return panels, roles



# Which attack's curves the key figure shows, by the kind its rows record: the strongest kind that ran.
KEY_KINDS = ("iterative", "single-step", "score-based", "minimal-perturbation", "noise")


def _main_attack(summary: pd.DataFrame, frame: pd.DataFrame) -> str | None:
    """The attack of the page's key figure: of the attacks on the labels (not on the maps), the one of the
    strongest kind that ran (KEY_KINDS: an iterative attack before FGSM, random noise last), by name among
    equals."""
    own = frame[~attention_objective(frame)] if len(frame) else frame
    own = own if len(own) else frame
    if own.empty:
        return None
    rank = {kind: i for i, kind in enumerate(KEY_KINDS)}
    labels = own.drop_duplicates("attack_label")
    best = min(zip(labels["attack_kind"].astype(str), labels["attack_label"]),
               key=lambda kl: (rank.get(kl[0], len(rank)), kl[1]))
    return best[1] if best[1] in set(summary["attack_label"]) else None


def provenance_section(page: SweepPage) -> dict[str, Any]:
    frame = page.inputs.results
    return {"provenance": _provenance(page.inputs), "no_end": NO_END,
            "checkpoints": _checkpoint_rows(frame)}


def _checkpoint_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per model as evaluated for the provenance table; what a row did not record (a user model's
    width, training data or seed) reads "unknown"."""
    rows = frame.drop_duplicates(MODEL_KEY)[["model", "checkpoint_sha256", "architecture", "width", "trained_on",
                                              "training_threat_model", "dataset", "n", "clean_accuracy",
                                              "seed"]].to_dict("records")
    return [{**row, **{k: human(None if absent(row[k]) else row[k], "unknown") for k in ("width", "trained_on", "seed")}}
            for row in rows]


def accuracy_section(page: SweepPage) -> dict[str, Any]:
    summary = page.summary
    labels = sorted(summary["attack_label"].unique(), key=lambda lab: (lab.startswith("worst case over"), lab))
    main = _main_attack(summary, page.inputs.results)

    def grid(label: str, metric: str) -> str:
        what = "per eps" if metric == "accuracy" else "worst case (robust at every eps' <= eps)"
        return plots.accuracy_grid(summary[summary["attack_label"] == label], page.panels, page.roles, metric,
                                   f"accuracy under {label}, {what} (bands: Wilson 95% CI)", page.out,
                                   f"accuracy_{slug(label)}" + ("" if metric == "accuracy" else "_worst_case"))
    return {"accuracy_plots": [(lab, grid(lab, "accuracy")) for lab in labels if lab != main],
            "key_attack": main, "key_figure": grid(main, "accuracy") if main else None,
            "worst_case_plots": [(lab, grid(lab, "worst_case_accuracy")) for lab in labels
                                 if not lab.startswith("worst case over")]}


def summary_section(page: SweepPage) -> dict[str, Any]:
    return {"tables": html_tables(page.summary, page.variants)}


def baseline_section(page: SweepPage) -> dict[str, Any]:
    decided = page.decided
    write_csv(decided, page.out / "attention_vs_baseline.csv")
    shown = shown_models(decided)
    return {"diffs": shown.to_dict("records"), "has_examples": page.inputs.examples is not None,
            "diff_plot": plots.difference_heatmap(decided, page.out, "attention_minus_baseline") if len(decided) else None,
            "verdict_rule": SWEEP_VERDICT_RULE}


def under_attack_section(page: SweepPage) -> dict[str, Any]:
    section = attention_section(page.inputs, page.out, page.panel_images, page.shift_images, page.panel_attack,
                                page.panel_eps, page.attention)
    return {"panels": section.panels, "shift_png": section.shift_png, "panel_note": section.note,
            "mapless": sorted(page.variants - page.attention), "panel_attack": section.attack_label}


def robustness_of_attention_section(page: SweepPage) -> dict[str, Any]:
    robustness = robustness_section(page.inputs, page.out, page.panel_images, page.shift_images, page.attention)
    return {"robustness": robustness.models, "robustness_csv": robustness.csv, "robustness_note": robustness.note,
            "robustness_missing": robustness.missing, "robustness_command": robustness.command}


def corruptions_section(page: SweepPage) -> dict[str, Any]:
    """Common corruptions: the mean corruption accuracy and mCE per model, accuracy vs severity per group,
    attention variants against their baselines, and one image under every corruption at every severity."""
    rows = page.corruptions
    if rows is None or rows.empty:
        return {"corruptions": None}
    table = corruption_summary(rows, page.corruption_baseline)
    diffs = corruption_differences(rows, page.corruption_examples)
    write_tables(page.out, table, diffs)
    _, roles = backbone_panels(rows)
    strips = [(strip, corruption_plots.strip_figure(strip, page.out, f"corruption_strip_{slug(strip.dataset)}"))
              for strip in read_strips(page.inputs.folders)]
    return {"corruptions": {
        "table": table.to_dict("records"), "diffs": diffs.to_dict("records"), "full": FULL_BENCHMARK,
        "figure": corruption_plots.severity_figure(severity_curves(rows), roles, page.out, "corruption_severity"),
        "strips": [{"dataset": s.dataset, "index": s.index, "label": s.label, "png": png} for s, png in strips],
        "baseline": page.corruption_baseline, "has_examples": page.corruption_examples is not None,
    }}


def sanity_section(page: SweepPage) -> dict[str, Any]:
    return {"checks": page.checks}


# The sweep page's sections, in page order (each renders templates/sweep_ID.html.j2); the folded ones are
# details a reader opens.
SECTIONS: tuple[Section[SweepPage], ...] = (
    Section("accuracy", "Accuracy vs eps", accuracy_section),
    Section("attention-vs-baseline", "Attention vs baseline", baseline_section),
    Section("sanity", "Sanity checks", sanity_section),
    Section("corruptions", "Common corruptions", corruptions_section),
    Section("summary", "Per-eps tables", summary_section, folded=True),
    Section("attention-under-attack", "Attention maps, clean vs adversarial", under_attack_section, folded=True),
    Section("attention-robustness", "Is the attention itself robust?", robustness_of_attention_section, folded=True),
    Section("provenance", "Provenance", provenance_section, folded=True),
)


def banner(page: SweepPage) -> dict[str, Any]:
    """What the page says above everything else: the sanity checks' state (failures and untested checks
    named), what to run next, incomplete folders, notes."""
    inputs, checks = page.inputs, page.checks
    ambiguous = [f"{model} (evaluated on {dataset}, n={n}) is not compared with a baseline: {len(names)} models could "
                 f"be its baseline ({', '.join(names)}); compare architectures across such seeds with a study"
                 for (model, dataset, n), names in ambiguous_baselines(inputs.results).items()]
    incomplete = [{"folder": r.folder, "command": r.command, "status": r.status,
                   "missing": describe_missing(r, inputs.labels)} for r in inputs.incomplete]
    return sanity_banner(checks, incomplete=incomplete, notes=[*inputs.notes, *ambiguous],
                         next_attacks=_next_attacks(checks, inputs))


def verdict_context(page: SweepPage) -> dict[str, Any]:
    """The answer under the banner: a verdict sentence per evaluation set, backbone and attack."""
    architecture = dict(zip(page.inputs.results["model"], page.inputs.results["architecture"]))
    attacks = page.decided[page.decided["attack_kind"].astype(str) != NOISE]  # noise is no attack: no verdict
    return {"answers": answers(attacks, architecture) if len(attacks) else [],
            "verdict_rule": SWEEP_VERDICT_RULE, "has_examples": page.inputs.examples is not None,
            "variant_count": len(page.variants)}


def build_report(
    result_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    panel_images: int = 8,
    shift_images: int = 64,
    panel_attack: str | None = None,
    panel_eps: float | None = None,
    command: str | None = None,
    corruption_baseline: str | None = None,
) -> Path:
    """Write ``index.html``, ``summary.csv``, ``results.csv``, ``sanity.csv``, ``attention_vs_baseline.csv``,
    ``attention_shift.csv``, ``attention_robustness.csv`` and the plots (PNG + SVG) into ``out_dir``; return the path of ``index.html``."""
    started = time.perf_counter()
    require_int("panel_images", panel_images, 0)
    require_int("shift_images", shift_images, 0)
    inputs = read_runs(result_dirs)
    out = ensure_dir(out_dir, "report directory")
    natural = is_corruption_row(inputs.results)
    corruptions = with_groups(inputs.results[natural], inputs.catalog) if natural.any() else None
    if corruption_baseline is not None and (corruptions is None or corruption_baseline not in set(corruptions["model"])):
        raise UserError(f"--corruption-baseline {corruption_baseline!r}: no model of that name ran common corruptions "
                        f"in these folders")
    corruption_examples = None
    if natural.any() and inputs.examples is not None:
        corruption_examples = inputs.examples[inputs.examples["attack"].isin(set(corruptions["attack"]))]
    write_csv(inputs.results[[*COLUMNS, "attack_label"]], out / "results.csv")  # every row read, corruptions too
    if natural.all():  # corruptions only: the page shows their section and where they came from
        return _corruption_page(inputs, out, corruptions, corruption_examples, corruption_baseline, command, started)
    inputs = split_off(inputs, natural)
    frame = inputs.results
    attention = attention_models(frame, (a.model for a in inputs.artifacts))
    summary = summary_table(frame, across_attacks(frame, inputs.examples))
    write_csv(summary, out / "summary.csv")
    checks = run_checks(frame, inputs.examples, image_shapes(inputs), inputs.admission)
    write_csv(pd.DataFrame([{"check": c.name, "status": c.status.value, "detail": c.detail, "suggests": c.suggests}
                            for c in checks]), out / "sanity.csv")
    decided = decide(attention_vs_baseline(frame, inputs.examples, attention))
    panels, roles = backbone_panels(frame)
    page = SweepPage(inputs, out, attention, attention | variant_models(frame), summary, checks, decided, panels, roles,
                     panel_images, shift_images, panel_attack, panel_eps, corruptions, corruption_examples,
                     corruption_baseline)
    context = {**page_header(command), **banner(page), **verdict_context(page), **build_sections("sweep", SECTIONS, page)}
    return write_page(out / "index.html", "sweep.html.j2", context, started, Status=Status)


def split_off(inputs: RunInputs, natural: pd.Series) -> RunInputs:
    """``inputs`` without the rows (and per-example outcomes) of common corruptions: the accuracy, attention and
    sanity sections are about attacks, whose eps is a distance."""
    results = inputs.results[~natural.to_numpy()].reset_index(drop=True)
    examples = inputs.examples
    if examples is not None:
        examples = examples[examples["attack"].isin(set(results["attack"]))].reset_index(drop=True)
    return replace(inputs, results=results, examples=examples)


# A page of common corruptions alone: no attack ran, so no eps curve, attention under attack or label-attack check.
CORRUPTION_SECTIONS: tuple[Section[SweepPage], ...] = (
    Section("corruptions", "Common corruptions", corruptions_section),
    Section("sanity", "Sanity checks", sanity_section),
    Section("provenance", "Provenance", provenance_section, folded=True),
)


def _corruption_page(inputs: RunInputs, out: Path, corruptions: pd.DataFrame, examples: pd.DataFrame | None,
                     baseline: str | None, command: str | None, started: float) -> Path:
    frame = inputs.results
    # the checks that apply to corruptions: the admission checks, and severity 0 equals the clean pass
    checks = [*(check_admission(inputs.admission, frame, which) for which in AdmissionCheck),
              check_eps_zero(frame, Outcomes(inputs.examples), inputs.examples)]
    write_csv(pd.DataFrame([{"check": c.name, "status": c.status.value, "detail": c.detail, "suggests": c.suggests}
                            for c in checks], columns=["check", "status", "detail", "suggests"]), out / "sanity.csv")
    page = SweepPage(inputs, out, set(), set(), pd.DataFrame(), checks, pd.DataFrame(), {}, {}, 0, 0, None, None,
                     corruptions, examples, baseline)
    context = {**page_header(command), **banner(page), "answers": [], "verdict_rule": SWEEP_VERDICT_RULE, "corruption_only": True,
               "has_examples": examples is not None, "variant_count": 0,
               **build_sections("sweep", CORRUPTION_SECTIONS, page)}
    return write_page(out / "index.html", "sweep.html.j2", context, started, Status=Status)


__all__ = ["SECTIONS", "Check", "SweepPage", "attention_vs_baseline", "build_report", "read_runs", "summary_table"]
