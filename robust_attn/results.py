"""Result records: one declared schema for result rows, Wilson intervals, atomic CSV I/O.

Numbers stay numeric (the CSV round-trips through pandas with numeric dtypes); strings that a
user controls (model names) are neutralised against spreadsheet formula injection.
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from .errors import UserError
from .files import atomic_write_text


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
    eps: float  # raw units
    eps_label: str  # '8/255' or '0.5'
    n_correct: int
    accuracy: float
    ci_low: float  # Wilson 95%
    ci_high: float
    clean_accuracy: float
    seed: int
    version: str
    seconds: float


@dataclass(frozen=True)
class ExampleRow:
    """One example at one eps of one (model, attack): for paired comparisons in reports."""

    model: str
    attack: str
    eps: float
    eps_label: str
    index: int  # position in the evaluation dataset
    label: int
    clean_pred: int
    adv_pred: int
    perturbation_norm: float


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
EXAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ExampleRow))
_STRING_COLUMNS = {f.name for f in fields(ResultRow) if f.type == "str"} | {"eps_label"}
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
    frame = pd.DataFrame([asdict(r) for r in rows], columns=list(columns))
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


def read_results_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results CSV written by a sweep, checking its columns."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise UserError(f"results file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype={"checkpoint_sha256": str, "eps_label": str})
    except Exception as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}".splitlines()[0]) from None
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks result columns {missing}")
    return frame


def accuracy_table(frame: pd.DataFrame, attack: str) -> pd.DataFrame:
    """Models x eps (in grid order) accuracy for one attack: the wide view of tidy rows."""
    rows = frame[frame["attack"] == attack]
    order = rows.drop_duplicates("eps_label").sort_values("eps")["eps_label"].tolist()
    table = rows.pivot_table(index="model", columns="eps_label", values="accuracy", aggfunc="first", sort=False)
    return table[order]
