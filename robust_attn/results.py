"""Result records: one declared schema for result rows, the files of a results folder, Wilson
intervals, atomic CSV I/O.

This module is the one contract between the sweep (which writes a results folder) and the report
(which reads it): file names, columns and readers live here. Numbers stay numeric (the CSV
round-trips through pandas with numeric dtypes); strings that a user controls (model names) are
neutralised against spreadsheet formula injection.
"""
from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path

import pandas as pd

from .errors import UserError
from .files import atomic_write_text

log = logging.getLogger(__name__)

# The files of a results folder.
RESULTS_FILE = "results.csv"  # every finished cell the folder holds
EXAMPLES_FILE = "per_example.csv"  # every example of every cell
RUNS_FILE = "runs.jsonl"  # append-only log: a start and an end record per command that wrote here
ATTENTION_DIR = "attention"  # panel artifacts: attention maps clean and under attack (see robust_attn.sweep.panels)


@dataclass(frozen=True)
class ResultRow:
    """One (model, attack, eps) cell of a sweep."""

    model: str
    checkpoint_sha256: str
    architecture: str
    width: float
    trained_on: str
    dataset: str
    n: int
    attack: str
    attack_params: str  # canonical JSON
    norm: str
    objective: str  # what the attack maximises: 'misclassify' (label attacks) or 'attention' (attention-shift)
    eps: float  # raw units
    eps_label: str  # '8/255' or '0.5'
    # The attack run at this eps alone: what torchattacks, foolbox and the paper call accuracy under the attack.
    n_correct: int
    accuracy: float
    ci_low: float  # Wilson 95%
    ci_high: float
    # The worst case over everything this attack tried at eps' <= eps (a point broken at any of them counts as broken).
    worst_case_n_correct: int
    worst_case_accuracy: float
    worst_case_ci_low: float
    worst_case_ci_high: float
    accuracy_method: str  # an AccuracyMethod value: how the per-eps number was computed
    clean_accuracy: float
    zero_gradient_fraction: float  # clean-correct points with an all-zero or non-finite input gradient; NaN: no gradient used
    max_perturbation: float  # largest perturbation norm among the examples attacked at this eps
    attack_failures: int  # minimal-perturbation attacks: clean-correct points they could not make adversarial
    # Attention attacks: mean over every evaluated point of the Jensen-Shannon distance (base 2) between the
    # attention maps on the attack's output and on the clean image, averaged over attended layers; NaN otherwise.
    attention_shift: float
    seed: int
    version: str
    seconds: float


@dataclass(frozen=True)
class ExampleRow:
    """One example at one eps of one (model, data, attack): for paired comparisons in reports."""

    model: str
    dataset: str
    n: int
    attack: str
    attack_params: str
    eps: float
    eps_label: str
    index: int  # position in the evaluation dataset
    label: int
    clean_pred: int
    adv_pred: int  # prediction on the attack's output at this eps
    perturbation_norm: float
    attention_shift: float  # attention attacks: this example's shift (see ResultRow.attention_shift); NaN otherwise
    robust: int  # 1: adv_pred is the label (per-eps)
    worst_case_robust: int  # 1: robust at every eps' <= eps this attack tried
    outcome: str  # an Outcome value


class AccuracyMethod(StrEnum):
    """How a row's per-eps accuracy was computed."""

    PER_EPS = "per-eps"  # every point attacked at this eps
    STILL_ROBUST = "still-robust"  # only points robust at the previous eps attacked; broken ones carried over
    MINIMAL = "minimal"  # one minimal-perturbation run, read at this budget


class Outcome(StrEnum):
    """What happened to one example at one eps."""

    CLEAN_ERROR = "clean-error"  # misclassified without attack
    BROKEN = "broken"
    ROBUST = "robust"  # classified correctly on the attack's output (counted in n_correct)
    ATTACK_FAILED = "attack-failed"  # a minimal-perturbation attack returned no adversarial example at all


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
EXAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ExampleRow))
_STRING_COLUMNS = {f.name for f in fields(ResultRow) if f.type == "str"} | {"eps_label"}
# read back as text whatever they look like (a sha256 of digits only, a label like '1')
_TEXT_DTYPES = {"checkpoint_sha256": str, "eps_label": str, "attack_params": str}
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (scipy's implementation)."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def csv_safe(value: str) -> str:
    """Prefix a quote to strings a spreadsheet would run as a formula."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def rows_frame(rows: list, columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows (flat dataclasses) as a frame with ``columns``; text columns as str.

    Reads each row's ``__dict__`` rather than ``dataclasses.asdict``, which deep-copies every value:
    the sweep rebuilds results.csv after each cell, and asdict made that a third of a small sweep."""
    frame = pd.DataFrame([vars(r) for r in rows], columns=list(columns))
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype(str)
    return frame


def frame_to_csv(frame: pd.DataFrame) -> str:
    safe = frame.copy()
    for column in safe.columns:
        if column in _STRING_COLUMNS or safe[column].dtype == object:
            safe[column] = safe[column].map(lambda v: csv_safe(v) if isinstance(v, str) else v)
    buf = io.StringIO()
    safe.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, frame_to_csv(frame))


def _read_sweep_csv(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A CSV a sweep wrote, text columns kept as text, its declared columns checked: one-line errors."""
    try:
        frame = pd.read_csv(path, dtype=_TEXT_DTYPES)
    except Exception as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}".splitlines()[0]) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks {what} columns {missing}")
    return frame


def read_results_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results CSV written by a sweep (or the results folder holding it), checking its columns."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"results file {path} does not exist")
    return _read_sweep_csv(path, RESULT_COLUMNS, "result")


def read_examples_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a per-example CSV written by a sweep, checking its columns."""
    return _read_sweep_csv(Path(path), EXAMPLE_COLUMNS, "per-example")


def accuracy_table(frame: pd.DataFrame, attack: str, value: str = "accuracy") -> pd.DataFrame:
    """Models x eps (in grid order) of one column (per-eps ``accuracy`` or ``worst_case_accuracy``) for
    one attack: the wide view of tidy rows."""
    rows = frame[frame["attack"] == attack]
    order = rows.drop_duplicates("eps_label").sort_values("eps")["eps_label"].tolist()
    table = rows.pivot_table(index="model", columns="eps_label", values=value, aggfunc="first", sort=False)
    return table[order]


def read_run_log(folder: str | os.PathLike) -> list[dict]:
    """Every record of a results folder's run log (empty when it has none)."""
    path = Path(folder) / RUNS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping a damaged line of %s", path)
    return records
