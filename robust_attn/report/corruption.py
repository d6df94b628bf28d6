"""The report's common-corruptions section: accuracy under each corruption group vs severity, the mean
corruption accuracy (RobustBench's corruptions number), the corruption error relative to a baseline model
(Hendrycks & Dietterich's mCE), attention variants against their baselines, and a strip of one image under
each corruption at each severity.

Rows of corruptions are told apart by what they record (``objective`` natural, ``attack_kind`` corruption),
their groups come from the run logs' attack catalogs, and the strip from the images the sweep kept
(``corruptions/*.npz``): nothing here corrupts an image or loads a model.

Definitions (Hendrycks & Dietterich, ICLR 2019, section 3): with E(f, c, s) the top-1 error of model f under
corruption c at severity s, the corruption error is CE(f, c) = sum_s E(f, c, s) / sum_s E(base, c, s) and
mCE(f) = mean_c CE(f, c), in percent (the baseline has 100%). The mean corruption accuracy is the mean over
every (corruption, severity >= 1) cell, what RobustBench's corruptions board reports over 15 x 5 cells.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..results import CORRUPTIONS_DIR, write_csv
from .kit.labels import MODEL
from .kit.labels import natural_objective as is_corruption_row
from .tables import baseline_candidates

log = logging.getLogger(__name__)

GROUPS = ("noise", "blur", "weather", "digital")  # Hendrycks & Dietterich's groups, in their order
FULL_BENCHMARK = 15 * 5  # CIFAR-10-C's cells: 15 corruptions at 5 severities


def with_groups(frame: pd.DataFrame, catalog: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Corruption rows with ``group`` (from the run logs' catalogs; ``other`` where none recorded one) and
    ``severity`` (the grid value) columns."""
    groups = [str(catalog.get(a, {}).get("group") or "other") for a in frame["attack"]]
    return frame.assign(group=groups, severity=frame["eps"].round().astype(int))


def single_baselines(frame: pd.DataFrame) -> dict[tuple, str]:
    """Per variant (model, dataset, n) with exactly one candidate baseline model on the same images, that model."""
    return {k: v[0] for k, v in baseline_candidates(frame).items() if len(v) == 1}


def baselines(frame: pd.DataFrame, baseline: str | None) -> dict[tuple, str]:
    """Per model as evaluated, the model its mCE is relative to: ``baseline`` for every model of the same
    evaluation set when given, else a variant's own baseline model (one candidate only; see
    :func:`.tables.baseline_candidates`, the pairing of the attack sections), and a baseline model itself."""
    if baseline is not None:
        evaluated = frame.drop_duplicates(MODEL)
        sets = set(zip(evaluated.loc[evaluated["model"] == baseline, "dataset"],
                       evaluated.loc[evaluated["model"] == baseline, "n"]))
        return {tuple(k): baseline for k in evaluated[MODEL].itertuples(index=False) if (k[1], k[2]) in sets}
    pairs = single_baselines(frame)
    out = dict(pairs)
    for (_, dataset, n), base in pairs.items():
        out[(base, dataset, n)] = base
    return out


def mce(frame: pd.DataFrame, model: str, base: str, dataset: str, n: int) -> float:
    """mCE of ``model`` relative to ``base`` (a fraction; 1.0 = the baseline's) over the corruptions both
    ran at the same severities (>= 1); NaN where they share none or the baseline made no error."""
    cells = frame[(frame["dataset"] == dataset) & (frame["n"] == n) & (frame["severity"] >= 1)]
    mine = cells[cells["model"] == model].set_index(["attack", "severity"])["accuracy"]
    theirs = cells[cells["model"] == base].set_index(["attack", "severity"])["accuracy"]
    shared = mine.index.intersection(theirs.index)
    if not len(shared):
        return float("nan")
    errors = pd.DataFrame({"model": 1 - mine[shared], "base": 1 - theirs[shared]})
    sums = errors.groupby(level="attack").sum()
    sums = sums[sums["base"] > 0]
    return float((sums["model"] / sums["base"]).mean()) if len(sums) else float("nan")


def summary(frame: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One row per model as evaluated: clean accuracy, mean corruption accuracy (and per group), the cells
    it averages, mCE and the model it is relative to."""
    pairs = baselines(frame, baseline)
    records = []
    for (model, dataset, n), rows in frame.groupby(MODEL, sort=True):
        cells = rows[rows["severity"] >= 1]
        record: dict[str, Any] = {
            "model": model, "dataset": dataset, "n": int(n), "architecture": rows["architecture"].iloc[0],
            "training_threat_model": rows["training_threat_model"].iloc[0],
            "clean_accuracy": float(rows["clean_accuracy"].iloc[0]),
            "mean_corruption_accuracy": float(cells["accuracy"].mean()) if len(cells) else float("nan"),
            "cells": len(cells), "corruptions": cells["attack"].nunique(),
        }
        for group in GROUPS:
            in_group = cells[cells["group"] == group]
            record[f"{group}_accuracy"] = float(in_group["accuracy"].mean()) if len(in_group) else float("nan")
        base = pairs.get((model, dataset, n))
        record["mce_baseline"] = base or ""
        record["mce"] = mce(frame, model, base, dataset, n) if base else float("nan")
        records.append(record)
    return pd.DataFrame.from_records(records)


def severity_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per model, group and severity, averaged over the group's corruptions (severity 0: clean)."""
    return (frame.groupby([*MODEL, "group", "severity"], as_index=False)["accuracy"].mean()
            .sort_values([*MODEL, "group", "severity"]))


def attention_vs_baseline(frame: pd.DataFrame, examples: pd.DataFrame | None) -> pd.DataFrame:
    """Per variant with one baseline model: mean corruption accuracy minus the baseline's, overall and per
    group, and, with per-example results, the two-sided Wilcoxon signed-rank p-value over the images of the
    per-image accuracy averaged over every corruption cell (one seed: the images are the unit, so a verdict
    about architectures still needs a study across training seeds)."""
    pairs = single_baselines(frame)
    cells = frame[frame["severity"] >= 1]
    records = []
    for (model, dataset, n), base in sorted(pairs.items()):
        mine = cells[(cells["model"] == model) & (cells["dataset"] == dataset) & (cells["n"] == n)]
        theirs = cells[(cells["model"] == base) & (cells["dataset"] == dataset) & (cells["n"] == n)]
        shared = set(zip(mine["attack"], mine["severity"])) & set(zip(theirs["attack"], theirs["severity"]))
        if not shared:
            continue
        keep = lambda f: f[[(a, s) in shared for a, s in zip(f["attack"], f["severity"])]]  # noqa: E731
        mine, theirs = keep(mine), keep(theirs)
        record: dict[str, Any] = {"model": model, "baseline": base, "dataset": dataset, "n": int(n),
                                  "cells": len(shared), "difference": mine["accuracy"].mean() - theirs["accuracy"].mean()}
        for group in GROUPS:
            a, b = mine[mine["group"] == group], theirs[theirs["group"] == group]
            record[f"{group}_difference"] = a["accuracy"].mean() - b["accuracy"].mean() if len(a) and len(b) else np.nan
        record["p_value"] = _paired_p(examples, model, base, dataset, n, shared) if examples is not None else np.nan
        records.append(record)
    return pd.DataFrame.from_records(records)


def _paired_p(examples: pd.DataFrame, model: str, base: str, dataset: str, n: int, shared: set) -> float:
    from scipy.stats import wilcoxon

    rows = examples[(examples["dataset"] == dataset) & (examples["n"] == n) & (examples["eps"].round() >= 1)]
    rows = rows[[(a, int(round(e))) in shared for a, e in zip(rows["attack"], rows["eps"])]]
    per_image = rows.groupby(["model", "index"])["robust"].mean()
    if model not in per_image.index.get_level_values(0) or base not in per_image.index.get_level_values(0):
        return float("nan")
    diff = (per_image[model] - per_image[base]).dropna()
    if not (diff != 0).any():
        return 1.0
    return float(wilcoxon(diff).pvalue)


@dataclass(frozen=True)
class Strip:
    """One evaluation image under every corruption at every severity, as the sweep kept it."""

    dataset: str
    index: int  # of the image in the evaluation set
    label: int
    severities: list[int]
    rows: list[tuple[str, str, np.ndarray]]  # (corruption, group, uint8 S x C x H x W)


def read_strips(folders: Sequence[str | Path]) -> list[Strip]:
    """The strips of the folders' ``corruptions/`` artifacts, one per evaluation set (first seed found). A
    strip has one grid of severities, the first one read: a corruption swept on another grid is left out of
    it, with a warning."""
    by_set: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for path in sorted(Path(folder, CORRUPTIONS_DIR).glob("*/*.npz")):
            with np.load(path, allow_pickle=False) as z:
                key = str(path.parent.name)
                entry = by_set.setdefault(key, {"dataset": str(z["dataset"]), "index": int(z["index"]),
                                                "label": int(z["label"]),
                                                "severities": [int(s) for s in z["severities"]], "rows": {}})
                if [int(s) for s in z["severities"]] == entry["severities"]:
                    entry["rows"].setdefault(str(z["corruption"]), (str(z["group"]), z["images"].copy()))
                elif str(z["corruption"]) not in entry["rows"]:
                    log.warning("the %s strip shows severities %s; %s (severities %s, %s) is left out of it",
                                entry["dataset"], entry["severities"], z["corruption"],
                                [int(s) for s in z["severities"]], path)
    order = {g: i for i, g in enumerate(GROUPS)}
    return [Strip(e["dataset"], e["index"], e["label"], e["severities"],
                  [(name, group, images) for name, (group, images) in
                   sorted(e["rows"].items(), key=lambda kv: order.get(kv[1][0], len(order)))])
            for e in by_set.values()]


def write_tables(out: Path, table: pd.DataFrame, diffs: pd.DataFrame) -> None:
    write_csv(table, out / "corruptions.csv")
    write_csv(diffs, out / "corruptions_attention_vs_baseline.csv")


__all__ = ["FULL_BENCHMARK", "GROUPS", "Strip", "attention_vs_baseline", "baselines", "is_corruption_row", "mce",
           "read_strips", "severity_curves", "summary", "with_groups", "write_tables"]
