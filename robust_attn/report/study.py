"""The study report: does an architecture change robustness, across training seeds?

Reads a study output folder only (``study.csv``, ``effects.csv``, ``per_seed.csv``, ``within_seed.csv``,
``members.csv``, ``provenance.json`` and the member sweep in ``sweep/``); it trains, loads and attacks
nothing, and imports nothing from the study, sweep or attack code, so a study folder copied elsewhere
can be reported on again. The page opens with the verdicts, because they are what a reader came for,
then shows the curves and numbers they rest on: the across-seed bands, the difference to the
baseline, robustness against clean accuracy, the per-eps effects, the within-seed McNemar view, the
sanity checks of the member sweeps and the study's provenance.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..files import ensure_dir
from ..results import Schema, read_table
from ..threat_models import resolve_threat, threat_summary
from ..study_files import (AUC, EFFECT_COLUMNS, EFFECTS_FILE, MEMBER_COLUMNS, MEMBERS_FILE, MIN_SEEDS,
                           PER_SEED_COLUMNS, PER_SEED_FILE, PROVENANCE_FILE, STUDY_COLUMNS, STUDY_FILE, SWEEP_DIR,
                           VERDICT_RULE, WITHIN_SEED_COLUMNS, WITHIN_SEED_FILE, Verdict)
from . import study_plots
from .study_plots import OTHER_PANEL
from .inputs import describe_missing, image_shapes, read_runs
from .kit.banner import sanity_banner
from .kit.inputs import require_folder
from ..files import slug
from .kit.labels import attack_labels
from .kit.provenance import human, page_header, versions_text
from .kit.render import Section, build_sections, write_page
from .sanity import Status, run_checks
from .kit.verdicts import eps_ranges

REPORT_DIR = "report"
_NUMERIC = {"eps", "n_seeds", "n_seeds_baseline", "mean", "std", "ci_low", "ci_high", "baseline_mean", "difference",
            "statistic", "df", "p_value", "p_holm", "seed", "value", "clean_accuracy", "accuracy",
            "baseline_accuracy", "mcnemar_p"}


def _schema(file: str, columns: Sequence[str]) -> Schema:
    """A study table as :func:`robust_attn.results.read_table` reads it: the numbers among its columns as numbers."""
    return Schema(file, "study", tuple(columns), frozenset(_NUMERIC & set(columns)))


# The tables a study folder must hold, and those it may lack (a study written before they existed).
REQUIRED = {name: _schema(name, cols) for name, cols in ((STUDY_FILE, STUDY_COLUMNS), (EFFECTS_FILE, EFFECT_COLUMNS),
                                                         (PER_SEED_FILE, PER_SEED_COLUMNS))}
OPTIONAL = {name: _schema(name, cols) for name, cols in ((WITHIN_SEED_FILE, WITHIN_SEED_COLUMNS),
                                                         (MEMBERS_FILE, MEMBER_COLUMNS))}

EPS = "eps"
METRIC_NAMES = {"accuracy": "per-eps accuracy", "worst_case_accuracy": "worst case (robust at every eps' \u2264 eps)"}
# A curve's metric as a verdict sentence names it: the verdict reads the curve's AUC.
METRIC_SENTENCE = {"accuracy": "accuracy (AUC over eps)", "worst_case_accuracy": "worst-case accuracy (AUC over eps)"}
VERDICT_CLASS = {Verdict.MORE: "more", Verdict.LESS: "less", Verdict.NONE: "none", Verdict.TOO_FEW: "few"}


@dataclass(frozen=True)
class StudyInputs:
    """A study output folder as read: its tables (with an ``attack_label`` column), its provenance and
    what the page should say about files that are missing."""

    folder: Path
    study: pd.DataFrame
    effects: pd.DataFrame
    per_seed: pd.DataFrame
    within_seed: pd.DataFrame | None
    members: pd.DataFrame | None
    provenance: dict[str, Any]
    notes: list[str]


# ------------------------------------------------------------------ reading

def _provenance(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        notes.append(f"{path.name} is missing: the study's provenance is unknown")
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} cannot be read ({exc}): the study's provenance is unknown".replace("\n", " "))
        return {}
    return value if isinstance(value, dict) else {}


def _labelled(frames: Sequence[pd.DataFrame | None]) -> list[pd.DataFrame | None]:
    """Every table with one ``attack_label`` per (attack, attack_params), shared across the tables so an
    attack reads the same in every section (``pgd (steps=20)`` beside ``pgd`` only where both ran)."""
    pairs = [p for f in frames if f is not None for p in zip(f["attack"], f["attack_params"])]
    labels = attack_labels(pairs)
    return [None if f is None else f.assign(attack_label=[labels[p] for p in zip(f["attack"], f["attack_params"])])
            for f in frames]


def read_study(study_dir: str | os.PathLike) -> StudyInputs:
    """Read a study output folder; :class:`UserError` if it is not one (missing folder or CSVs)."""
    folder = require_folder(study_dir, "study folder")
    absent = [name for name in REQUIRED if not (folder / name).is_file()]
    if absent:
        raise UserError(f"{folder} is not a study output folder: it lacks {', '.join(absent)} "
                        "(written by robust-attn study STUDY.toml --out DIR)")
    study, effects, per_seed = (read_table(folder, schema) for schema in REQUIRED.values())
    if study.empty:
        raise UserError(f"{folder / STUDY_FILE} holds no rows: nothing to report")
    notes: list[str] = []
    optional = []
    for name, schema in OPTIONAL.items():
        if (folder / name).is_file():
            optional.append(read_table(folder, schema))
        else:
            optional.append(None)
            notes.append(f"{name} is missing from {folder}")
    study, effects, per_seed, within = _labelled([study, effects, per_seed, optional[0]])
    return StudyInputs(folder, study, effects, per_seed, within, optional[1],
                       _provenance(folder / PROVENANCE_FILE, notes), notes)


# ------------------------------------------------------------------ tables

def _order(frame: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """Rows in reading order: per-eps accuracy before the worst case, attacks by label, then ``extra``."""
    rank = {m: i for i, m in enumerate(METRIC_NAMES)}
    keyed = frame.assign(_m=frame["metric"].map(lambda m: rank.get(m, len(rank))))
    return keyed.sort_values(["_m", "metric", "attack_label", *extra], kind="stable").drop(columns="_m")


def _interval(low: float, high: float) -> str:
    """'[71.2, 74.0]' in percent; 'n/a' where the interval is undefined (fewer than two seeds)."""
    return "n/a" if not (np.isfinite(low) and np.isfinite(high)) else f"[{100 * low:.1f}, {100 * high:.1f}]"


def _signed_interval(low: float, high: float) -> str:
    """'[+1.2, +4.0]' in points; 'n/a' where undefined."""
    return "n/a" if not (np.isfinite(low) and np.isfinite(high)) else f"[{100 * low:+.1f}, {100 * high:+.1f}]"


def _arm(arms: pd.DataFrame, architecture: str, row: dict[str, Any]) -> dict[str, Any]:
    """One architecture's auc row of study.csv for the attack and metric of an effects row."""
    hit = arms[(arms["architecture"] == architecture) & (arms["attack"] == row["attack"])
               & (arms["attack_params"] == row["attack_params"]) & (arms["metric"] == row["metric"])]
    if hit.empty:
        return {"mean": np.nan, "interval": "n/a", "n_seeds": np.nan}
    r = hit.iloc[0]
    return {"mean": r["mean"], "interval": _interval(r["ci_low"], r["ci_high"]), "n_seeds": r["n_seeds"]}


def verdict_rows(study: pd.DataFrame, effects: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per comparison x attack x metric on the AUC: each arm's across-seed mean with its
    interval (study.csv), the difference with its Welch interval, the tests and the verdict."""
    arms = study[study["summary"] == AUC]
    rows = []
    for r in _order(effects[effects["summary"] == AUC], "architecture", "baseline").to_dict("records"):
        rows.append({**r, "metric_label": METRIC_NAMES.get(r["metric"], r["metric"]),
                     "arm": _arm(arms, r["architecture"], r), "base": _arm(arms, r["baseline"], r),
                     "interval": _signed_interval(r["ci_low"], r["ci_high"]),
                     "verdict_class": VERDICT_CLASS.get(r["verdict"], "none")})
    return rows


def refusals(effects: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Where the verdict rule refused a word, by reason, per comparison: ``seeds`` where an arm has
    fewer than MIN_SEEDS seeds (the page says so in words rather than leaving blank cells to be read as
    'no effect'), ``spread`` where both arms have enough seeds but neither shows any spread (every seed
    the same number, e.g. 0% at large eps: no test). ``where`` names the curves and, for ``spread``,
    their eps."""
    refused = effects[effects["verdict"] == Verdict.TOO_FEW]
    few = (refused["n_seeds"] < MIN_SEEDS) | (refused["n_seeds_baseline"] < MIN_SEEDS)
    out: dict[str, list[dict[str, Any]]] = {"seeds": [], "spread": []}
    for reason, rows in (("seeds", refused[few]), ("spread", refused[~few])):
        for (arch, base), g in rows.groupby(["architecture", "baseline"], sort=True):
            curves = []
            for (label, metric), c in _order(g, "eps").groupby(["attack_label", "metric"], sort=False):
                points = [str(x) for x in c["eps_label"]] if reason == "spread" else []
                curves.append(f"{label} {METRIC_NAMES.get(metric, metric)}" + (f" at {', '.join(points)}" if points else ""))
            out[reason].append({"architecture": arch, "baseline": base, "n_seeds": _count(g["n_seeds"].min()),
                                "n_seeds_baseline": _count(g["n_seeds_baseline"].min()), "where": "; ".join(curves)})
    return out


def _count(n: float) -> int:
    return int(n) if np.isfinite(n) else 0


@dataclass(frozen=True)
class Comparison:
    """One architecture against its baseline on one curve's AUC, as the verdict sentence says it."""

    architecture: str
    verdict: Verdict
    difference: float  # architecture mean minus baseline mean (accuracy as a fraction)
    interval: str  # the difference's 95% Welch interval in points, '[+1.0, +5.2]', or 'n/a'
    p_holm: float
    n_seeds: int
    n_seeds_baseline: int
    eps: str  # where a per-eps verdict agrees with the curve's ('1/255-3/255'), '' where none does


@dataclass(frozen=True)
class StudyAnswer:
    """The verdict sentence of one baseline architecture, attack and metric (the study's own words,
    decided in effects.csv by :data:`~robust_attn.study_files.VERDICT_RULE`)."""

    baseline: str
    attack: str
    metric: str
    metric_label: str
    findings: tuple[Comparison, ...]  # "more robust" / "less robust", more first
    no_difference: tuple[Comparison, ...]
    too_few: tuple[Comparison, ...]  # "too few seeds for a verdict"


def study_answers(effects: pd.DataFrame) -> list[StudyAnswer]:
    """One :class:`StudyAnswer` per (baseline, attack, metric) of effects.csv's AUC rows, in that order (per-eps
    accuracy before the worst case), with the eps where the per-eps rows of the same curve carry the same
    word. Reads the verdicts; decides none."""
    per_eps = effects[effects["summary"] == EPS]
    out = []
    auc = _order(effects[effects["summary"] == AUC], "architecture").sort_values(["baseline", "attack_label"],
                                                                                 kind="stable")
    keys = ["baseline", "attack_label", "metric"]
    for (baseline, label, metric), rows in auc.groupby(keys, sort=False):
        found: dict[Verdict, list[Comparison]] = {}
        for r in rows.to_dict("records"):
            word = Verdict(r["verdict"]) if r["verdict"] in set(Verdict) else Verdict.TOO_FEW
            curve = per_eps[(per_eps["architecture"] == r["architecture"]) & (per_eps["baseline"] == baseline)
                            & (per_eps["attack_label"] == label) & (per_eps["metric"] == metric)].sort_values("eps")
            grid = [str(e) for e in curve["eps_label"]]
            hits = [str(e) for e in curve.loc[curve["verdict"] == word.value, "eps_label"]]
            found.setdefault(word, []).append(Comparison(
                str(r["architecture"]), word, float(r["difference"]), _signed_interval(r["ci_low"], r["ci_high"]),
                float(r["p_holm"]), _count(r["n_seeds"]), _count(r["n_seeds_baseline"]),
                eps_ranges(hits, grid) if hits and word in (Verdict.MORE, Verdict.LESS) else ""))
        out.append(StudyAnswer(str(baseline), str(label), str(metric), METRIC_SENTENCE.get(metric, metric),
                               (*found.get(Verdict.MORE, []), *found.get(Verdict.LESS, [])),
                               tuple(found.get(Verdict.NONE, [])),
                               tuple(c for w in (Verdict.TOO_FEW, Verdict.UNTESTED) for c in found.get(w, []))))
    return out


def too_few_notes(refused: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The banner's notes on comparisons the verdict rule could not judge (see :func:`refusals`)."""
    return [f"{f['architecture']} vs {f['baseline']}: too few seeds for a verdict ({f['n_seeds']} / "
            f"{f['n_seeds_baseline']} seeds; the rule needs {MIN_SEEDS} per arm)" for f in refused["seeds"]] + \
           [f"{f['architecture']} vs {f['baseline']}: no test where every seed gave the same number ({f['where']})"
            for f in refused["spread"]]


def per_eps_tables(effects: pd.DataFrame) -> list[dict[str, Any]]:
    """Per comparison x attack x metric: the difference at every eps with its interval, the unadjusted
    and (where the curve's verdict holds) the adjusted p, and the verdict."""
    rows = _order(effects[effects["summary"] == EPS], "architecture", "baseline", "eps")
    tables = []
    keys = ["architecture", "baseline", "metric", "attack_label"]
    for key, g in rows.groupby(keys, sort=False):
        head = dict(zip(keys, key))
        tables.append({**head, "metric_label": METRIC_NAMES.get(head["metric"], head["metric"]),
                       "rows": [{**r, "interval": _signed_interval(r["ci_low"], r["ci_high"]),
                                 "verdict_class": VERDICT_CLASS.get(r["verdict"], "none")}
                                for r in g.to_dict("records")]})
    return tables


def within_seed_tables(within: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Per comparison, the McNemar rows of each seed pair (same seed, same images), by attack and eps."""
    if within is None or within.empty:
        return []
    rows = _order(within, "architecture", "baseline", "seed", "eps")
    return [{"architecture": a, "baseline": b, "rows": g.to_dict("records")}
            for (a, b), g in rows.groupby(["architecture", "baseline"], sort=True)]


# ------------------------------------------------------------------ figures

def backbone_panels(effects: pd.DataFrame, architectures: Iterable[str]) -> dict[str, str]:
    """Which panel of the curves grid each architecture is drawn in: a baseline and the architectures
    compared with it (effects.csv) share the baseline's panel; any other goes to OTHER_PANEL."""
    panels: dict[str, str] = {}
    for arch, base in sorted(set(zip(effects["architecture"].astype(str), effects["baseline"].astype(str)))):
        panels.setdefault(base, base)
        panels.setdefault(arch, base)
    return {**{str(a): OTHER_PANEL for a in architectures}, **panels}


def _figures(inputs: StudyInputs, out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per attack x metric the curves grid and difference plot; per attack the clean-vs-robust plot."""
    study, effects, seeds = inputs.study, inputs.effects, inputs.per_seed
    palette = study_plots.architecture_palette([*study["architecture"], *seeds["architecture"],
                                                *effects["baseline"]])
    baselines = set(effects["baseline"])
    panels = backbone_panels(effects, study["architecture"])
    threat = str(inputs.provenance.get("training_threat") or "standard")
    trained = "" if threat == "standard" else f" ({threat}-trained)"  # in every figure title: the members' identity
    curves = []
    study_eps = _order(study[study["summary"] == EPS])
    for i, ((metric, label), arms) in enumerate(study_eps.groupby(["metric", "attack_label"], sort=False)):
        name = METRIC_NAMES.get(metric, metric)
        same = (seeds["summary"] == EPS) & (seeds["metric"] == metric) & (seeds["attack_label"] == label)
        diffs = effects[(effects["summary"] == EPS) & (effects["metric"] == metric) & (effects["attack_label"] == label)]
        stem = f"{i:02d}_{slug(label)}_{slug(metric)}"
        curves.append({
            "attack": label, "metric": metric, "metric_label": name,
            "curves_png": study_plots.curves_plot(arms, seeds[same], palette, baselines,
                                                  f"{name} under {label}{trained}: mean and 95% band across seeds", out,
                                                  f"curves_{stem}", panels),
            "difference_png": study_plots.difference_plot(diffs, palette,
                                                          f"{name} under {label}{trained}: difference to baseline", out,
                                                          f"difference_{stem}") if len(diffs) else None,
        })
    points = seeds[(seeds["summary"] == AUC) & (seeds["metric"] == "accuracy")]
    scatter = []
    for i, (label, g) in enumerate(points.groupby("attack_label", sort=True)):
        scatter.append({"attack": label, "png": study_plots.clean_vs_robust_plot(
            g, palette, f"{label}{trained}: one point per trained model", out, f"clean_vs_robust_{i:02d}_{slug(label)}")})
    return curves, scatter


# ------------------------------------------------------------------ member sweeps

@dataclass(frozen=True)
class MemberSanity:
    """The sanity checks of the member sweeps (``sweep/``) as the sweep report runs them: a study whose
    members fail a check has suspect verdicts too."""

    present: bool  # the member sweep could be read
    message: str | None  # why not, where not
    checks: list[Any]
    link: str | None  # the member sweep's own report, relative to the study page
    notes: list[str]  # the sweep folder's notes
    incomplete: list[dict[str, Any]]  # the banner's incomplete runs
    models: int


def member_sanity(study_dir: Path, out: Path) -> MemberSanity:
    """Read the member sweeps and run their checks; a missing or unreadable sweep is said, not raised."""
    sweep_dir = study_dir / SWEEP_DIR
    report = sweep_dir / REPORT_DIR / "index.html"
    link = Path(os.path.relpath(report, out)).as_posix() if report.is_file() else None
    if not sweep_dir.is_dir():
        return MemberSanity(False, f"the member sweeps are missing: {sweep_dir} does not exist, so their sanity "
                                   "checks were not run", [], link, [], [], 0)
    try:
        inputs = read_runs([sweep_dir])
    except UserError as exc:
        return MemberSanity(False, f"the member sweeps are missing: {exc}", [], link, [], [], 0)
    checks = run_checks(inputs.results, inputs.examples, image_shapes(inputs), inputs.admission)
    incomplete = [{"folder": r.folder, "command": r.command, "status": r.status,
                   "missing": describe_missing(r, inputs.labels)} for r in inputs.incomplete]
    return MemberSanity(True, None, checks, link, list(inputs.notes), incomplete,
                        int(inputs.results["model"].nunique()))


# ------------------------------------------------------------------ provenance

UNKNOWN = "unknown"


def _paths(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def provenance_context(inputs: StudyInputs) -> dict[str, Any]:
    """provenance.json as the page shows it (every value as a reader reads it, ``unknown`` where the file
    does not say), with the members (trained now or reused) from members.csv."""
    p = inputs.provenance
    versions = p.get("versions") if isinstance(p.get("versions"), dict) else {}
    baselines = p.get("baselines") if isinstance(p.get("baselines"), dict) else {}
    members = []
    if inputs.members is not None:
        trained = inputs.members["trained"].astype(str).str.strip().str.lower().isin(["true", "1"])
        members = inputs.members.assign(trained=trained).sort_values(["architecture", "seed"]).to_dict("records")
    wall = p.get("wall_seconds")
    seconds = wall if isinstance(wall, (int, float)) and not isinstance(wall, bool) else None
    return {**{k: human(p.get(k), UNKNOWN) for k in ("study", "file", "sha256", "started")},
            "name": p.get("study"), "description": p.get("description"),
            "command": human(p.get("command"), "Python API"),
            "wall_time": UNKNOWN if seconds is None else f"{seconds:.1f} s",
            "versions": versions_text(versions) or UNKNOWN,
            "baselines": sorted((str(k), str(v)) for k, v in baselines.items()),
            "trained": _paths(p.get("trained")), "reused": _paths(p.get("reused")), "members": members,
            # written since threat models exist; a study before them trained on clean images
            "training_threat": human(p.get("training_threat") or _recipe_threat(p), UNKNOWN)}


def _recipe_threat(provenance: dict[str, Any]) -> str | None:
    """The members' threat model as a study folder written before provenance named it records it: its
    recipe's threat keys, described as the study run describes them now; None without a recorded recipe."""
    spec = provenance.get("spec")
    train = spec.get("train", {}) if isinstance(spec, dict) else None  # no [train] keys: clean images
    if not isinstance(train, dict):
        return None
    try:
        return threat_summary(resolve_threat(train.get("threat_model") or "standard", train.get("threat_eps"),
                                             train.get("threat_steps"), train.get("threat_step_size"),
                                             train.get("trades_beta")).record())
    except UserError:  # a recipe this version cannot read: say so rather than guess
        return None


# ------------------------------------------------------------------ page

def _csv_links(folder: Path, out: Path, names: Iterable[str]) -> dict[str, str]:
    """Relative links from the page to the study's CSVs (they sit in the study folder, not copied)."""
    return {n: Path(os.path.relpath(folder / n, out)).as_posix() for n in names if (folder / n).is_file()}


@dataclass(frozen=True)
class StudyPage:
    """What the sections of the study page read: the folder as read and the figures drawn once."""

    inputs: StudyInputs
    out: Path
    curves: list[dict[str, Any]]  # per attack x metric: curves and difference plots (the first is the key figure)
    scatter: list[dict[str, Any]]  # per attack: clean vs robust
    sanity: MemberSanity
    csv: dict[str, str]  # the study's CSVs, linked


def verdict_table_section(page: StudyPage) -> dict[str, Any]:
    effects = page.inputs.effects
    return {"verdicts": verdict_rows(page.inputs.study, effects), "refusals": refusals(effects),
            "min_seeds": MIN_SEEDS, "csv": page.csv}


def curves_section(page: StudyPage) -> dict[str, Any]:
    return {"curves": page.curves}


def scatter_section(page: StudyPage) -> dict[str, Any]:
    return {"scatter": page.scatter}


def per_eps_section(page: StudyPage) -> dict[str, Any]:
    return {"per_eps": per_eps_tables(page.inputs.effects)}


def within_seed_section(page: StudyPage) -> dict[str, Any]:
    within = page.inputs.within_seed
    return {"within": within_seed_tables(within), "has_within": within is not None}


def sanity_section(page: StudyPage) -> dict[str, Any]:
    return {"sanity": page.sanity}


def provenance_section(page: StudyPage) -> dict[str, Any]:
    return {"provenance": provenance_context(page.inputs)}


# The study page's sections, in page order (each renders templates/study_ID.html.j2); the folded ones
# are details a reader opens. The answer itself (banner, verdict sentences, key figure) is the page's top.
SECTIONS: tuple[Section[StudyPage], ...] = (
    Section("verdict-table", "Verdict table", verdict_table_section),
    Section("curves", "Curves across seeds", curves_section),
    Section("differences", "Difference to baseline", curves_section),
    Section("clean-vs-robust", "Robustness vs clean accuracy", scatter_section),
    Section("sanity", "Sanity checks", sanity_section),
    Section("per-eps", "Per-eps effects", per_eps_section, folded=True),
    Section("within-seed", "Within-seed view", within_seed_section, folded=True),
    Section("provenance", "Provenance", provenance_section, folded=True),
)


def banner(page: StudyPage) -> dict[str, Any]:
    """What the page says above everything else: the member sweeps' checks (failures and untested ones
    named), their incomplete runs, and the notes: missing files, comparisons without a verdict."""
    sanity = page.sanity
    notes = [*([sanity.message] if sanity.message else []), *page.inputs.notes,
             *too_few_notes(refusals(page.inputs.effects)), *sanity.notes]
    return sanity_banner(sanity.checks, incomplete=sanity.incomplete, notes=notes, scope="of the member sweeps")


def verdict_context(page: StudyPage) -> dict[str, Any]:
    """The answer under the banner: a verdict sentence per baseline, attack and metric, and the key figure
    (the first curves grid: per-eps accuracy under the first attack)."""
    key = page.curves[0] if page.curves else None
    return {"answers": study_answers(page.inputs.effects), "verdict_rule": VERDICT_RULE,
            "key_figure": key["curves_png"] if key else None, "key_attack": key["attack"] if key else None,
            "key_metric": key["metric_label"] if key else None}


def build_study_report(study_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                       command: str | None = None) -> Path:
    """Write the study report (``index.html`` and its PNG + SVG plots) into ``out`` (default
    ``STUDY_DIR/report``) from a study output folder; return the path of ``index.html``."""
    started = time.perf_counter()
    inputs = read_study(study_dir)  # before anything is written: a wrong folder leaves no report behind
    folder = inputs.folder
    out_dir = ensure_dir(folder / REPORT_DIR if out is None else out, "report directory")
    csv = _csv_links(folder, out_dir, (STUDY_FILE, EFFECTS_FILE, PER_SEED_FILE, WITHIN_SEED_FILE, MEMBERS_FILE))
    page = StudyPage(inputs, out_dir, *_figures(inputs, out_dir), member_sanity(folder, out_dir), csv)
    context = {**page_header(command), **banner(page), **verdict_context(page),
               **build_sections("study", SECTIONS, page)}
    return write_page(out_dir / "index.html", "study.html.j2", context, started, missing_integer="?", Status=Status)


__all__ = ["SECTIONS", "Comparison", "MemberSanity", "StudyAnswer", "StudyInputs", "StudyPage", "backbone_panels",
           "build_study_report", "read_study", "study_answers"]
