"""The transfer report: do adversarial examples crafted on one model fool another?

Reads a transfer output folder only (``transfer.csv``, ``transfer_examples.csv``, ``runs.jsonl``; see
the transfer contract of issue 15); it loads, attacks and runs nothing and imports nothing from the
transfer, sweep or attack code, so a folder copied elsewhere can be reported on again. The page shows

* per attack and eps, a source x target heatmap of accuracy, the white-box diagonal outlined;
* the attention-vs-baseline asymmetry: the attention model's accuracy on examples crafted on its
  baseline against the baseline's accuracy on examples crafted on the attention model, with an exact
  McNemar test on the per-image transfer successes of the two directions (same images), Holm-corrected
  over every such test on the page (eps > 0) and said first, in words, per pair and attack;
* the sanity check "transfer is not stronger than white-box" (a transferred attack that beats the
  target's own white-box attack points to gradient masking of the target);
* the provenance of the runs that wrote the folder, and ``transfer_summary.csv``.

Which models are attention models, and which baseline goes with one, is read from what the transfer
run recorded per end of each cell (``source_*``/``target_*``: architecture, family, baseline
architecture, maps, training threat model): a model whose row names a baseline architecture is a
variant, and its baseline model is the one of that architecture trained alike (:mod:`.kit.pairing`).
Folders written by 0.3 lack these columns; :mod:`.legacy` fills them from the model names.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..files import ensure_dir
from ..study_files import ALPHA as VERDICT_ALPHA
from ..study_files import Verdict
from ..results import (
    RUNS_FILE, TRANSFER, TRANSFER_ENDS, TRANSFER_EXAMPLES, TRANSFER_EXAMPLES_FILE, TRANSFER_FILE, TRANSFER_MODEL_FACTS,
    Schema, read_table, write_csv,
)
from . import transfer_plots
from .kit.banner import sanity_banner
from .kit.inputs import Run, attack_catalog, attack_defaults, non_ce_gradient_attacks, read_runs_log, require_folder
from ..files import slug
from .kit.labels import attack_labels
from .kit.pairing import is_variant, match_baselines
from .kit.provenance import page_header, run_rows
from .kit.render import Section, absent, build_sections, write_page
from .kit.stats import discordant, holm, mcnemar_exact, p_text
from .legacy import describe_transfer
from .sanity import ALPHA, UNPAIRED_TOLERANCE, Check, Status
from .kit.verdicts import Finding, decide, findings

REPORT_DIR = "report"
SUMMARY_FILE = "transfer_summary.csv"
ASYMMETRY_FILE = "transfer_asymmetry.csv"

# The columns of transfer.csv and transfer_examples.csv this report needs (the others are shown where present).
CELL_COLUMNS = ("source", "target", "dataset", "n", "attack", "attack_params", "norm", "eps", "eps_label",
                "n_correct", "accuracy", "ci_low", "ci_high", "clean_accuracy")
EXAMPLE_COLUMNS = ("source", "target", "dataset", "n", "attack", "attack_params", "eps_label", "index", "robust")
# Numbers the report computes with: an empty one is an error, not a missing value.
_REQUIRED_NUMBERS = ("n", "eps", "n_correct", "accuracy", "index", "robust")
# One transfer cell: a source's adversarial examples of one attack at one eps, scored by one target.
CELL = ["source", "target", "dataset", "n", "attack", "attack_params", "eps_label"]
# How transfer_examples.csv keys a cell: the whole CELL, so a folder holding runs on two -n (or two
# evaluation sets) keeps each run's outcomes apart instead of mixing them into one ambiguous index.
PAIRED = CELL

# What a variant's baseline model shares with it besides the architecture the variant names.
# The training seed pairs seed replicas (vgg-att3-concat-pc_c10s_seed1 with vgg_c10s_seed1); the model
# arguments keep a depth-8 variant from a depth-20 backbone. An unknown value (a user's model, a folder
# that did not record it) matches any.
PAIR_MATCH = ["training_threat_model", "trained_on", "training_seed", "model_args"]
ATTENTION_RULE = ("a model is an attention model when the transfer run recorded a baseline architecture for it "
                  "(source_baseline, target_baseline: an attention, squeeze-and-excitation or CBAM variant of a "
                  "backbone); its baseline is the model of that architecture with the same training threat model, "
                  "training data, training seed and model arguments (source_/target_trained_on, _training_seed, "
                  "_model_args; a value that was not recorded matches any), when there is exactly one. Folders "
                  "written by robust-attn 0.3 record none of this: there a model name reads ARCH_SUFFIX and the baseline of vgg-att3-concat-pc_c10s is "
                  "vgg_c10s, of resnet-se_c10s_seed1 resnet_c10s_seed1.")


# ------------------------------------------------------------------ models

def model_descriptions(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per model (``model`` and TRANSFER_MODEL_FACTS) from the ``source_*``/``target_*`` columns
    of the cells it appears in (as a target where it is both)."""
    parts = [cells[[role, *(f"{role}_{c}" for c in TRANSFER_MODEL_FACTS)]].set_axis(
        ["model", *TRANSFER_MODEL_FACTS], axis=1) for role in TRANSFER_ENDS]
    return pd.concat(parts, ignore_index=True).astype(str).drop_duplicates("model", keep="last").reset_index(drop=True)


def model_order(models: pd.DataFrame, names) -> list[str]:
    """Family, then training data, then baseline before variants, then name: a baseline sits next to its
    variants."""
    info = models.set_index("model")
    variant = dict(zip(models["model"], is_variant(models["baseline"])))

    def key(m: str) -> tuple:
        return (info.at[m, "family"], info.at[m, "trained_on"], bool(variant[m]), m) if m in info.index else ("", "", False, m)
    return sorted(set(names), key=key)


@dataclass(frozen=True)
class TransferInputs:
    """A transfer output folder as read."""

    folder: Path
    cells: pd.DataFrame  # transfer.csv, one row per CELL, with attack_label, white_box and every described column
    examples: pd.DataFrame | None  # transfer_examples.csv
    runs: list[Run]  # runs.jsonl
    notes: list[str]
    models: pd.DataFrame  # one row per model: see model_descriptions
    catalog: dict[str, dict[str, Any]]  # every attack the runs could have run


def _check_cells(path: Path, cells: pd.DataFrame) -> None:
    if not cells["accuracy"].between(0, 1).all() or (cells["n"] <= 0).any():
        raise UserError(f"{path}: accuracy must lie in [0, 1] and n be positive")
    if not np.allclose(cells["n_correct"], cells["accuracy"] * cells["n"], atol=0.5):
        raise UserError(f"{path}: n_correct does not equal accuracy x n in some rows")


def _read(path: Path, schema: Schema, columns: Sequence[str]) -> pd.DataFrame:
    """One of the folder's tables through :mod:`robust_attn.results`' reader (``columns``: those the report
    needs), refused when it has no rows or an empty number the report computes with."""
    frame = read_table(path, schema, required=columns)
    if frame.empty:
        raise UserError(f"{path} holds no rows: nothing to report")
    for column in (c for c in _REQUIRED_NUMBERS if c in frame.columns):
        if frame[column].isna().any():
            raise UserError(f"{path}: column {column!r} has empty values")
    return frame


def read_transfer(folder: str | os.PathLike) -> TransferInputs:
    """Read a transfer output folder; one-line :class:`UserError` when it is not one."""
    folder = require_folder(folder, "transfer folder")
    path = folder / TRANSFER_FILE
    if not path.is_file():
        raise UserError(f"{folder} is not a transfer output folder: it lacks {TRANSFER_FILE} "
                        "(written by robust-attn transfer --out DIR)")
    cells = describe_transfer(_read(path, TRANSFER, CELL_COLUMNS))
    _check_cells(path, cells)
    notes: list[str] = []
    dupes = int(cells.duplicated(CELL, keep="last").sum())
    if dupes:
        notes.append(f"{TRANSFER_FILE} holds {dupes} repeated cells; the last row of each is shown")
        cells = cells.drop_duplicates(CELL, keep="last").reset_index(drop=True)
    examples = None
    if (folder / TRANSFER_EXAMPLES_FILE).is_file():
        examples = _read(folder / TRANSFER_EXAMPLES_FILE, TRANSFER_EXAMPLES, EXAMPLE_COLUMNS)
        if not examples["robust"].isin([0, 1]).all():
            raise UserError(f"{folder / TRANSFER_EXAMPLES_FILE}: column 'robust' must hold 0 or 1")
    else:
        notes.append(f"{TRANSFER_EXAMPLES_FILE} is missing from {folder}: no paired tests; the sanity check compares "
                     f"accuracies alone (more than {100 * UNPAIRED_TOLERANCE:g} point below the white box fails)")
    runs = read_runs_log(folder)
    if not (folder / RUNS_FILE).is_file():
        notes.append(f"{folder} has no run log ({RUNS_FILE}): its provenance is unknown")
    labels = attack_labels(zip(cells["attack"], cells["attack_params"]), attack_defaults(runs))
    cells = cells.assign(attack_label=[labels[p] for p in zip(cells["attack"], cells["attack_params"])],
                         white_box=cells["source"] == cells["target"])
    catalog = attack_catalog(runs, cells)
    return TransferInputs(folder, cells, examples, runs, notes, model_descriptions(cells), catalog)


# ------------------------------------------------------------------ paired outcomes

class Outcomes:
    """Per transfer cell, the per-image ``robust`` outcomes (bool, indexed by image index)."""

    def __init__(self, examples: pd.DataFrame | None):
        self._cells: dict[tuple[str, ...], pd.Series] = {}
        if examples is None:
            return
        for key, g in examples.groupby(PAIRED, sort=False):
            if g["index"].is_unique:
                self._cells[tuple(map(str, key))] = pd.Series(g["robust"].to_numpy().astype(bool),
                                                              index=g["index"].to_numpy())

    def get(self, row: dict[str, Any]) -> pd.Series | None:
        return self._cells.get(tuple(str(row[k]) for k in PAIRED))

    def paired(self, a: dict[str, Any], b: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """The outcomes of two cells on the same images (each complete: ``n`` images), or None."""
        x, y = self.get(a), self.get(b)
        if x is None or y is None or len(x) != int(a["n"]) or len(y) != int(b["n"]):
            return None
        both = pd.concat({"a": x, "b": y}, axis=1, join="inner")
        if len(both) != len(x) or len(both) != len(y):
            return None
        return both["a"].to_numpy(bool), both["b"].to_numpy(bool)


def _index(cells: pd.DataFrame) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(str(r[k]) for k in CELL): r for r in cells.to_dict("records")}


def _key(row: dict[str, Any], source: str, target: str) -> tuple[str, ...]:
    return tuple(str(v) for v in (source, target, *(row[k] for k in CELL[2:])))


# ------------------------------------------------------------------ asymmetry

ASYMMETRY_COLUMNS = ["attention", "baseline", "dataset", "n", "attack", "attack_params", "attack_label", "norm", "eps",
                     "eps_label", "to_attention_accuracy", "to_attention_ci_low", "to_attention_ci_high",
                     "to_baseline_accuracy", "to_baseline_ci_low", "to_baseline_ci_high", "difference",
                     "fooled_only_attention", "fooled_only_baseline", "mcnemar_p", "attention_white_box_accuracy",
                     "baseline_white_box_accuracy", "attention_clean_accuracy", "baseline_clean_accuracy"]


@dataclass(frozen=True)
class Pairing:
    pairs: list[tuple[str, str]]  # (attention model, baseline) with both directions somewhere
    unpaired: list[str]  # attention models whose baseline is not in the folder
    one_way: list[tuple[str, str]]  # pairs with one transfer direction only


def pairing(cells: pd.DataFrame, models: pd.DataFrame) -> Pairing:
    """Each variant with its baseline model (:mod:`.kit.pairing`, matching PAIR_MATCH): a pair where both
    ran as source and target, one way where not; unpaired where no single baseline is in the folder."""
    sources, targets = set(cells["source"]), set(cells["target"])
    candidates = match_baselines(models, ["model"], PAIR_MATCH)
    pairs, unpaired, one_way = [], [], []
    for a in model_order(models, (k[0] for k in candidates)):
        found = candidates[(a,)]
        if len(found) != 1:
            unpaired.append(a)
            continue
        b = found[0]
        if a in sources and a in targets and b in sources and b in targets:
            pairs.append((a, b))
        else:
            one_way.append((a, b))
    return Pairing(pairs, unpaired, one_way)


def asymmetry_table(cells: pd.DataFrame, outcomes: Outcomes, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per (attention model A, baseline B), attack and eps where both directions ran: A's accuracy on
    examples crafted on B (baseline -> attention) and B's on examples crafted on A (attention ->
    baseline), their difference (positive: A resists its baseline's examples better than B resists
    A's) and the exact two-sided McNemar p-value on the per-image transfer successes (1 - robust) of
    the two directions, which are evaluated on the same images."""
    index = _index(cells)
    rows = []
    for a, b in pairs:
        for r in cells[(cells["source"] == b) & (cells["target"] == a)].sort_values(["attack_label", "eps"]).to_dict(
                "records"):
            back = index.get(_key(r, a, b))
            if back is None:
                continue
            p, only_att, only_base = np.nan, np.nan, np.nan
            paired = outcomes.paired(r, back)
            if paired is not None:
                to_att, to_base = paired
                only_att, only_base = discordant(to_base, to_att)
                p = mcnemar_exact(only_att, only_base)
            wa, wb = index.get(_key(r, a, a)), index.get(_key(r, b, b))
            rows.append({"attention": a, "baseline": b, "dataset": r["dataset"], "n": r["n"], "attack": r["attack"],
                         "attack_params": r["attack_params"], "attack_label": r["attack_label"], "norm": r["norm"],
                         "eps": r["eps"], "eps_label": r["eps_label"],
                         "to_attention_accuracy": r["accuracy"], "to_attention_ci_low": r["ci_low"],
                         "to_attention_ci_high": r["ci_high"], "to_baseline_accuracy": back["accuracy"],
                         "to_baseline_ci_low": back["ci_low"], "to_baseline_ci_high": back["ci_high"],
                         "difference": r["accuracy"] - back["accuracy"], "fooled_only_attention": only_att,
                         "fooled_only_baseline": only_base, "mcnemar_p": p,
                         "attention_white_box_accuracy": wa["accuracy"] if wa else np.nan,
                         "baseline_white_box_accuracy": wb["accuracy"] if wb else np.nan,
                         "attention_clean_accuracy": r["clean_accuracy"],
                         "baseline_clean_accuracy": back["clean_accuracy"]})
    return pd.DataFrame(rows, columns=ASYMMETRY_COLUMNS)


# ------------------------------------------------------------------ the page's answer: asymmetry verdicts

TRANSFER_VERDICT_RULE = (
    f"A pair's words need a Holm-adjusted p < {VERDICT_ALPHA:g} in one family: every asymmetry test on this page "
    "(each attention model and its baseline, per attack and eps > 0; eps 0 is the clean-accuracy gap, not "
    "transfer), each an exact two-sided McNemar test on the images fooled in one direction only, so that when "
    "no attention model differs from its baseline the chance of any claimed difference on the page is at most "
    f"{VERDICT_ALPHA:.0%}. These are the weights evaluated here, one training seed per model."
)


def decide_asymmetry(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (:func:`asymmetry_table`) with ``p_holm`` and ``verdict`` by TRANSFER_VERDICT_RULE: the words
    of :class:`~robust_attn.study_files.Verdict`, "more robust" where the attention model resists its
    baseline's examples better than the baseline resists its own; rows outside the family (eps 0, no
    per-image outcomes) get ``Verdict.UNTESTED``."""
    return decide(table, VERDICT_ALPHA)


@dataclass(frozen=True)
class TransferAnswer:
    """The verdict sentence of one attention model, its baseline and one attack."""

    attention: str
    baseline: str
    attack: str
    where: str  # the evaluation set ('cifar10-subset, n=40') where the page holds several, else ''
    findings: tuple[Finding, ...]  # where the attention model resists better (more) or worse (less)
    tested: bool  # some eps > 0 has a paired test
    largest: float  # among the tested eps: the largest difference (points as a fraction, signed; NaN untested)
    largest_at: str  # its eps
    largest_p: float  # and its Holm p


def transfer_answers(decided: pd.DataFrame) -> list[TransferAnswer]:
    """One :class:`TransferAnswer` per pair, evaluation set and attack of :func:`decide_asymmetry`'s rows,
    with the eps ranges (over the pair's grid) where a word holds and the largest difference among them."""
    several = decided[["dataset", "n"]].drop_duplicates().shape[0] > 1
    out = []
    keys = ["attention", "baseline", "dataset", "n", "attack_label"]
    for (a, b, dataset, n, label), rows in decided.groupby(keys, sort=True):
        grid = [str(e) for e in rows.sort_values("eps").drop_duplicates("eps_label")["eps_label"]]
        found = findings(rows, str(a), grid)
        tested = rows[rows["verdict"] != Verdict.UNTESTED.value]
        top = tested.loc[tested["difference"].abs().idxmax()] if len(tested) else None
        out.append(TransferAnswer(str(a), str(b), str(label), f"{dataset}, n={int(n)}" if several else "",
                                  tuple(found), top is not None,
                                  float("nan") if top is None else float(top["difference"]),
                                  "" if top is None else str(top["eps_label"]),
                                  float("nan") if top is None else float(top["p_holm"])))
    return out


# ------------------------------------------------------------------ sanity: transfer not stronger than white box

CHECK_NAME = "transfer is not stronger than white-box"
SUGGESTS = ("Gradient masking of the target: its own white-box attack is weaker than one transferred from another "
            "model, so its gradients mislead the attack (obfuscated gradients, Athalye et al. 2018) and its white-box "
            "numbers overstate its robustness. Evaluate it with attacks that do not depend on the cross-entropy "
            "gradient's scale: {attacks}.")


def white_box_comparisons(cells: pd.DataFrame, outcomes: Outcomes) -> pd.DataFrame:
    """Per transfer cell (source != target) whose target was also attacked white-box (same attack,
    parameters, eps, images): the white-box accuracy, the difference, the images robust under the
    white-box attack but fooled by the transfer (``gained``) and the reverse (``lost``), the one-sided
    exact McNemar p-value (white box robust more often than transfer) and its Holm adjustment over all
    comparisons at family-wise ``ALPHA``; ``flagged``: transfer significantly stronger (without
    per-example outcomes: lower by more than ``UNPAIRED_TOLERANCE``)."""
    index = _index(cells)
    rows = []
    for r in cells[~cells["white_box"]].to_dict("records"):
        wb = index.get(_key(r, r["target"], r["target"]))
        row = {**{k: r[k] for k in CELL}, "accuracy": r["accuracy"], "white_box_accuracy": np.nan, "difference": np.nan, "gained": np.nan,
               "lost": np.nan, "p": np.nan, "p_holm": np.nan, "flagged": False, "tested": wb is not None}
        if wb is not None:
            row["white_box_accuracy"] = wb["accuracy"]
            row["difference"] = r["accuracy"] - wb["accuracy"]
            paired = outcomes.paired(wb, r)
            if paired is None:
                row["flagged"] = bool(wb["accuracy"] - r["accuracy"] > UNPAIRED_TOLERANCE + 1e-12)
            else:
                white, transfer = paired
                row["gained"], row["lost"] = discordant(white, transfer)
                row["p"] = mcnemar_exact(row["gained"], row["lost"], "greater")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*CELL, "accuracy", "white_box_accuracy", "difference", "gained", "lost", "p", "p_holm",
                                        "flagged", "tested"])
    numbers = ["accuracy", "white_box_accuracy", "difference", "gained", "lost", "p", "p_holm"]
    frame = frame.astype({**cells[CELL].dtypes.to_dict(), **dict.fromkeys(numbers, float), "flagged": bool,
                          "tested": bool})
    paired = frame["p"].notna()
    if paired.any():
        reject, p_holm = holm(frame.loc[paired, "p"].to_numpy(float), ALPHA)
        frame.loc[paired, "p_holm"] = p_holm
        frame.loc[paired, "flagged"] = reject
    return frame


def _pair_text(r: dict[str, Any], labels: dict[tuple[str, str], str]) -> str:
    return (f"{r['source']} \u2192 {r['target']}, {labels.get((r['attack'], r['attack_params']), r['attack'])} "
            f"eps {r['eps_label']}")


def _describe(r: dict[str, Any], labels: dict[tuple[str, str], str]) -> str:
    text = (f"{_pair_text(r, labels)}: transfer {100 * r['accuracy']:.1f}% vs white box "
            f"{100 * r['white_box_accuracy']:.1f}% ({100 * r['difference']:+.1f} points")
    if absent(r["p"]):
        return text + ", no per-example data)"
    return text + (f"; {int(r['gained'])} images fooled only by the transfer, {int(r['lost'])} only by the white-box "
                   f"attack; one-sided p {p_text(r['p'])}, Holm p {p_text(r['p_holm'])})")


def check_transfer_vs_white_box(cells: pd.DataFrame, comparisons: pd.DataFrame, attacks: Sequence[str] = ()) -> Check:
    """PASS / FAIL / NOT TESTED, with the numbers behind it; a FAIL suggests ``attacks`` (those of the run
    logs' catalogs that do not follow the cross-entropy gradient)."""
    labels = dict(zip(zip(cells["attack"], cells["attack_params"]), cells["attack_label"]))
    tested = comparisons[comparisons["tested"]]
    untested = sorted(set(comparisons.loc[~comparisons["tested"], "target"]))
    extra = (f"; not tested (never attacked white-box at that attack and eps): targets {', '.join(untested)}"
             if untested else "")
    if tested.empty:
        return Check(CHECK_NAME, Status.NOT_TESTED, "no white-box diagonal (no target was also a source under the same "
                     "attack and eps), so no transfer can be compared with a target's own white-box attack" + extra
                     if len(comparisons) else "no transfer cell (every source is its own only target)")
    paired = int(tested["p"].notna().sum())
    how = (f"{len(tested)} comparisons ({paired} on paired per-image outcomes, Holm-corrected at {100 * ALPHA:g}% "
           f"family-wise; {len(tested) - paired} by accuracy alone)")
    bad = tested[tested["flagged"]].sort_values("difference").to_dict("records")
    if bad:
        return Check(CHECK_NAME, Status.FAIL,
                     f"{len(bad)} of {how} fail: " + "; ".join(_describe(r, labels) for r in bad[:5])
                     + (" ..." if len(bad) > 5 else "") + extra,
                     SUGGESTS.format(attacks=", ".join(attacks) or "none recorded"), True,
                     tuple(dict.fromkeys(r["target"] for r in bad)))
    detail = f"{how}; no transfer source is significantly stronger than the target's own white-box attack"
    worst = tested.sort_values("difference").iloc[0].to_dict()
    if worst["difference"] < 0:
        detail += f"; largest non-significant drop: {_describe(worst, labels)}"
    return Check(CHECK_NAME, Status.PASS, detail + extra)


# ------------------------------------------------------------------ tables for the page and the CSV

SUMMARY_COLUMNS = ["source", "target", "source_kind", "target_kind", "dataset", "n", "attack", "attack_params",
                   "attack_label", "norm", "eps", "eps_label", "white_box", "n_correct", "accuracy", "ci_low", "ci_high",
                   "clean_accuracy", "target_white_box_accuracy", "difference_to_white_box", "fooled_only_by_transfer",
                   "fooled_only_by_white_box", "sanity_p", "sanity_p_holm", "sanity_flagged"]


def model_kinds(models: pd.DataFrame) -> dict[str, str]:
    """Per model: ``attention`` (a variant), ``baseline`` (a variant's baseline candidate) or ``other``."""
    variant = dict(zip(models["model"], is_variant(models["baseline"])))
    wanted = {b for found in match_baselines(models, ["model"], PAIR_MATCH).values() for b in found}
    return {m: "attention" if variant[m] else "baseline" if m in wanted else "other" for m in models["model"]}


def summary_table(cells: pd.DataFrame, comparisons: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """transfer_summary.csv: one row per cell, with the target's white-box accuracy and the check's test."""
    kinds = model_kinds(models)
    merged = cells.merge(comparisons.drop(columns=["tested", "accuracy"]), on=CELL, how="left")
    merged["flagged"] = merged["flagged"].astype("boolean").fillna(False).astype(bool)
    out = merged.rename(columns={"white_box_accuracy": "target_white_box_accuracy",
                                 "difference": "difference_to_white_box", "gained": "fooled_only_by_transfer",
                                 "lost": "fooled_only_by_white_box", "p": "sanity_p", "p_holm": "sanity_p_holm",
                                 "flagged": "sanity_flagged"})
    own = out["white_box"]
    out.loc[own, "target_white_box_accuracy"] = out.loc[own, "accuracy"]
    out = out.assign(source_kind=out["source"].map(kinds), target_kind=out["target"].map(kinds))
    order = {m: i for i, m in enumerate(model_order(models, models["model"]))}
    out = out.assign(_s=out["source"].map(order), _t=out["target"].map(order))
    out = out.sort_values(["dataset", "n", "attack_label", "eps", "_s", "_t"], kind="stable")
    return out[SUMMARY_COLUMNS].reset_index(drop=True)


def _figures(cells: pd.DataFrame, models: pd.DataFrame, out: Path, attention: set[str]) -> list[dict[str, Any]]:
    """Per (dataset, n, attack): one heatmap per eps."""
    groups = []
    keys = ["dataset", "n", "attack_label"]
    for i, (key, g) in enumerate(cells.sort_values(["attack_label", "eps"]).groupby(keys, sort=True)):
        dataset, n, label = key
        sources, targets = model_order(models, g["source"]), model_order(models, g["target"])
        maps = []
        for j, (eps_label, e) in enumerate(g.groupby("eps_label", sort=False)):
            title = f"{label} at eps {eps_label} ({dataset}, n = {int(n)}): target accuracy (%)"
            maps.append({"eps_label": eps_label,
                         "png": transfer_plots.heatmap(e, sources, targets, attention, title, out,
                                                       f"heatmap_{i:02d}_{slug(label)}_{j:02d}"),
                         "white_box": int(e["white_box"].sum()), "cells": len(e)})
        groups.append({"dataset": dataset, "n": int(n), "attack": label, "maps": maps})
    return groups


def _asymmetry_groups(table: pd.DataFrame, out: Path) -> list[dict[str, Any]]:
    """One figure and table group per attack and evaluation set: pairs evaluated on different data (a
    Fashion-MNIST pair beside CIFAR-10 pairs) never share an axis."""
    groups = []
    several = table[["dataset", "n"]].drop_duplicates().shape[0] > 1
    for i, ((label, dataset, n), g) in enumerate(table.groupby(["attack_label", "dataset", "n"], sort=True)):
        heading = f"{label}, {dataset} (n={int(n)})" if several else str(label)
        png = transfer_plots.asymmetry_plot(g, f"transfer asymmetry under {heading}", out,
                                            f"asymmetry_{i:02d}_{slug(heading)}")
        groups.append({"attack": heading, "png": png,
                       "pairs": [{"attention": a, "baseline": b, "rows": r.sort_values("eps").to_dict("records")}
                                 for (a, b), r in g.groupby(["attention", "baseline"], sort=False)]})
    return groups


def _models(cells: pd.DataFrame, models: pd.DataFrame, pairs: Pairing) -> list[dict[str, Any]]:
    names = set(models["model"])
    kinds = model_kinds(models)
    paired = dict([*pairs.pairs, *pairs.one_way])
    wanted = dict(zip(models["model"], models["baseline"]))
    threat = dict(zip(models["model"], models["training_threat_model"]))
    sha: dict[str, str] = {}
    for role in ("source", "target"):
        if f"{role}_sha256" in cells:
            sha.update({m: s for m, s in zip(cells[role], cells[f"{role}_sha256"]) if s})
    clean = cells.drop_duplicates(["target", "dataset", "n"])
    out = []
    for m in model_order(models, names):
        c = clean[clean["target"] == m]
        base = paired.get(m)
        out.append({"model": m, "kind": kinds[m], "baseline": base,
                    "wanted_baseline": f"a {wanted[m]} model" if kinds[m] == "attention" and base is None else None,
                    "source": m in set(cells["source"]), "target": m in set(cells["target"]),
                    "training_threat_model": threat.get(m, "unknown"),
                    "sha256": sha.get(m), "clean": [(r["dataset"], int(r["n"]), r["clean_accuracy"])
                                                    for r in c.to_dict("records")]})
    return out


# The run settings the provenance table shows, in that order.
SETTINGS = ("n", "seed", "batch_size", "device", "processes", "threads", "channels_last", "data_dir")


def provenance_context(inputs: TransferInputs) -> dict[str, Any]:
    """The runs that wrote the folder (oldest first, settings as a reader reads them) and what
    transfer.csv says about seed and version."""
    cells = inputs.cells
    unique = {k: ", ".join(sorted({str(v) for v in cells[k]})) for k in ("seed", "version") if k in cells}
    return {"runs": run_rows(inputs.runs, SETTINGS), "has_log": (inputs.folder / RUNS_FILE).is_file(), **unique}


# ------------------------------------------------------------------ page

@dataclass(frozen=True)
class TransferPage:
    """What the sections of the transfer page read: the folder as read and what the page computed once."""

    inputs: TransferInputs
    out: Path
    pairs: Pairing
    asymmetry: pd.DataFrame  # asymmetry_table with p_holm and verdict (decide_asymmetry)
    comparisons: pd.DataFrame
    check: Check
    heatmaps: list[dict[str, Any]]  # per (dataset, n, attack): one heatmap per eps (see _figures)


def heatmaps_section(page: TransferPage) -> dict[str, Any]:
    return {"heatmaps": page.heatmaps}


def asymmetry_section(page: TransferPage) -> dict[str, Any]:
    write_csv(page.asymmetry, page.out / ASYMMETRY_FILE)
    return {"asymmetry": _asymmetry_groups(page.asymmetry, page.out), "pairing": page.pairs, "rule": ATTENTION_RULE,
            "has_examples": page.inputs.examples is not None, "asymmetry_file": ASYMMETRY_FILE,
            "verdict_alpha": VERDICT_ALPHA}


def sanity_section(page: TransferPage) -> dict[str, Any]:
    cells, comparisons = page.inputs.cells, page.comparisons
    write_csv(summary_table(cells, comparisons, page.inputs.models), page.out / SUMMARY_FILE)
    labels = dict(zip(zip(cells["attack"], cells["attack_params"]), cells["attack_label"]))
    flagged = [{**r, "attack_label": labels[(r["attack"], r["attack_params"])]}
               for r in comparisons[comparisons["flagged"]].sort_values("difference").to_dict("records")]
    return {"alpha": ALPHA, "tolerance": UNPAIRED_TOLERANCE, "summary_file": SUMMARY_FILE, "check": page.check,
            "flagged": flagged}


def provenance_section(page: TransferPage) -> dict[str, Any]:
    return {"models": _models(page.inputs.cells, page.inputs.models, page.pairs),
            "provenance": provenance_context(page.inputs), "folder": str(page.inputs.folder)}


# The transfer page's sections, in page order (each renders templates/transfer_ID.html.j2); the folded
# ones are details a reader opens (every eps' heatmap: the key one, the largest eps of the main attack, is at
# the page's top). The answer (banner, verdict sentences, key heatmap) is the page's top.
SECTIONS: tuple[Section[TransferPage], ...] = (
    Section("heatmaps", "Source x target accuracy at every eps", heatmaps_section, folded=True),
    Section("asymmetry", "Transfer asymmetry", asymmetry_section),
    Section("sanity", "Sanity check", sanity_section),
    Section("provenance", "Provenance", provenance_section, folded=True),
)


def banner(page: TransferPage) -> dict[str, Any]:
    """What the page says first: the check "transfer is not stronger than white-box" (a FAIL names the
    transfers that beat the white box), the folder's notes and the attention models left unpaired."""
    pairs = page.pairs
    notes = [*page.inputs.notes,
             *(f"{a}: no single baseline model in this folder (none, or several trained alike), so no asymmetry"
               for a in pairs.unpaired),
             *(f"{a} / {b}: one transfer direction only (each must be a source and a target), so no asymmetry"
               for a, b in pairs.one_way)]
    return sanity_banner([page.check], notes=notes)


def verdict_context(page: TransferPage) -> dict[str, Any]:
    """The answer under the banner: a sentence per attention model, its baseline and attack, and the key
    figure (the heatmap of the first attack at its largest eps)."""
    key = page.heatmaps[0] if page.heatmaps else None
    last = key["maps"][-1] if key and key["maps"] else None
    return {"answers": transfer_answers(page.asymmetry), "verdict_rule": TRANSFER_VERDICT_RULE,
            "has_examples": page.inputs.examples is not None, "folder": str(page.inputs.folder),
            "key_figure": last["png"] if last else None, "key_attack": key["attack"] if key else None,
            "key_eps": last["eps_label"] if last else None}


def build_transfer_report(folder: str | os.PathLike, out: str | os.PathLike | None = None,
                          command: str | None = None) -> Path:
    """Write the transfer report (``index.html``, ``transfer_summary.csv``, ``transfer_asymmetry.csv``
    and the PNG + SVG figures) into ``out`` (default ``FOLDER/report``) from a transfer output folder;
    return the path of ``index.html``. One-line :class:`UserError` when the folder is not one."""
    started = time.perf_counter()
    inputs = read_transfer(folder)  # before anything is written: a wrong folder leaves no report behind
    out_dir = ensure_dir(inputs.folder / REPORT_DIR if out is None else out, "report directory")
    cells, models = inputs.cells, inputs.models
    outcomes = Outcomes(inputs.examples)
    pairs = pairing(cells, models)
    comparisons = white_box_comparisons(cells, outcomes)
    check = check_transfer_vs_white_box(cells, comparisons, non_ce_gradient_attacks(inputs.catalog))
    attention = set(models.loc[is_variant(models["baseline"]).to_numpy(), "model"])
    page = TransferPage(inputs, out_dir, pairs, decide_asymmetry(asymmetry_table(cells, outcomes, pairs.pairs)),
                        comparisons, check, _figures(cells, models, out_dir, attention))
    context = {**page_header(command), **banner(page), **verdict_context(page),
               **build_sections("transfer", SECTIONS, page)}
    return write_page(out_dir / "index.html", "transfer.html.j2", context, started, Status=Status)


__all__ = ["SECTIONS", "TRANSFER_VERDICT_RULE", "TransferAnswer", "TransferInputs", "TransferPage", "asymmetry_table",
           "build_transfer_report", "decide_asymmetry", "model_descriptions", "pairing", "read_transfer",
           "transfer_answers", "white_box_comparisons"]
