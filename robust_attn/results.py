"""Result records: one declared schema per file of a results folder, Wilson intervals, atomic CSV I/O,
and one reader per file kind.

This module is the one contract between the runs (sweep, transfer: they write a results folder) and
everything that reads one (report, study, regression gate): file names, columns and readers live
here, and nothing here imports a run, a model or an attack. Numbers stay numeric; text stays text
(a model named ``NA`` or ``123`` is a name); strings that a user controls (model names) are
neutralised against spreadsheet formula injection.

Rows describe themselves: the facts a report needs about a model (family, baseline, attention maps,
training threat model) and an attack (kind, whether it follows the CE gradient) are written by the
run from the registries (:mod:`robust_attn.run.identity`). A folder written by 0.3 lacks those
columns: the readers return them empty (``UNKNOWN``; ``ce_gradient`` NA), and the report fills them
through its one fallback path.
"""
from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError
from .files import atomic_write_text

log = logging.getLogger(__name__)

# The files of a results folder.
RESULTS_FILE = "results.csv"  # every finished cell the folder holds
EXAMPLES_FILE = "per_example.csv"  # every example of every cell
RUNS_FILE = "runs.jsonl"  # append-only log: a start and an end record per command that wrote here
ATTENTION_DIR = "attention"  # panel artifacts: attention maps clean and under attack (see robust_attn.sweep.panels)
CORRUPTIONS_DIR = "corruptions"  # one evaluation image under each common corruption at each severity (robust_attn.sweep.corrupted)
ADMISSION_FILE = "admission.csv"  # the admission checks each model passed or failed before it was attacked
# The files of a transfer folder (it has a runs.jsonl too).
TRANSFER_FILE = "transfer.csv"  # one row per source x target x attack x eps
TRANSFER_EXAMPLES_FILE = "transfer_examples.csv"  # one row per example of each

UNKNOWN = ""  # a descriptive column's value in a row written before rows described themselves (0.3)
STANDARD_TRAINING = "standard"  # training_threat_model of a checkpoint trained without adversarial examples
# A sweep cell: the columns that name the question a row of results.csv answers (the run's store refuses a
# second answer to it computed with other settings; per_example.csv rows join their row on them).
CELL = ("model", "dataset", "n", "attack", "attack_params", "eps_label")


@dataclass(frozen=True)
class ResultRow:
    """One (model, attack, eps) cell of a sweep."""

    model: str
    checkpoint_sha256: str
    architecture: str
    width: float
    trained_on: str
    # What the model is, from the model registry when the run happened (see robust_attn.run.identity).
    model_family: str  # ModelCfg.family; a user's model: its architecture string
    baseline: str  # the architecture a variant is compared against (ModelCfg.baseline); '' for a backbone or user model
    attention_maps: str  # an AttentionMaps value: 'none', 'distribution', 'gate' or 'rollout'
    training_threat_model: str  # the checkpoint's metadata; 'standard' when it trained on clean images only
    model_args: str  # canonical JSON of the architecture's arguments, defaults filled ('{}': none); '' for a user model
    dataset: str
    n: int
    attack: str
    attack_params: str  # canonical JSON
    norm: str
    objective: str  # what the attack maximises: 'misclassify' (label attacks) or 'attention' (attention-shift)
    attack_kind: str  # an AttackKind value: how the attack searches
    ce_gradient: bool  # the attack follows the cross-entropy gradient (stalls where the softmax saturates)
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


@dataclass(frozen=True)
class TransferRow:
    """One target under one source's adversarial examples at one eps (a row of ``transfer.csv``)."""

    source: str
    source_sha256: str
    # Both ends describe themselves as a results.csv row's model does (see ResultRow).
    source_architecture: str
    source_family: str
    source_baseline: str
    source_attention_maps: str
    source_training_threat_model: str
    source_trained_on: str  # the checkpoint's training data, as results.csv's trained_on
    source_training_seed: str  # the checkpoint's training seed (pairs seed replicas); '' for a user model
    source_model_args: str  # as results.csv's model_args
    target: str
    target_sha256: str
    target_architecture: str
    target_family: str
    target_baseline: str
    target_attention_maps: str
    target_training_threat_model: str
    target_trained_on: str
    target_training_seed: str
    target_model_args: str
    dataset: str
    n: int
    attack: str
    attack_params: str  # canonical JSON
    norm: str
    attack_kind: str  # an AttackKind value
    ce_gradient: bool
    eps: float  # raw units
    eps_label: str
    n_correct: int  # target correct on the source's adversarial examples
    accuracy: float
    ci_low: float  # Wilson 95%
    ci_high: float
    clean_accuracy: float  # the target's, on the same images
    white_box: bool  # source == target
    seed: int
    version: str
    seconds: float  # the (source, attack, eps) cell's wall time: crafting once + every target's forwards


@dataclass(frozen=True)
class TransferExampleRow:
    """One example of one row of transfer.csv (paired tests between sources or targets)."""

    source: str
    target: str
    dataset: str
    n: int
    attack: str
    attack_params: str
    eps: float
    eps_label: str
    index: int  # position in the evaluation set
    label: int
    clean_pred: int  # the target on the clean image
    adv_pred: int  # the target on the source's adversarial example
    robust: int  # 1: adv_pred == label


class AdmissionCheck(StrEnum):
    """The checks RobustBench applies before it admits a model, run by a sweep on each model before any attack."""

    DETERMINISTIC = "deterministic forward"  # the same batch twice gives the same logits
    GRADIENT = "input gradient"  # non-zero and finite for the evaluation images
    CLEAN_ACCURACY = "clean accuracy as recorded"  # equals the checkpoint's record for the same images


class CheckStatus(StrEnum):
    """The outcome of a check: an admission check here, a report's sanity check (``report.sanity.Status``)."""

    PASS = "PASS"
    FAIL = "FAIL"
    NOT_TESTED = "NOT TESTED"


@dataclass(frozen=True)
class AdmissionRow:
    """One admission check of one model on one set of evaluation images (a row of ``admission.csv``)."""

    model: str
    checkpoint_sha256: str
    dataset: str
    data_sha256: str
    n: int
    check: str  # an AdmissionCheck value
    status: str  # an CheckStatus value
    measured: float  # largest logit difference; share of zero/non-finite gradients; clean accuracy
    expected: float  # its bound: the tolerance; the limit; the recorded clean accuracy (NaN: none recorded)
    detail: str  # the sentence the sweep's log and the report show
    version: str


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
ADMISSION_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AdmissionRow))
EXAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ExampleRow))
TRANSFER_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TransferRow))
TRANSFER_EXAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TransferExampleRow))
# The columns rows gained when they began to describe themselves: a 0.3 folder lacks them.
MODEL_FACTS = ("model_family", "baseline", "attention_maps", "training_threat_model", "model_args")
ATTACK_FACTS = ("attack_kind", "ce_gradient")
DESCRIPTIVE_COLUMNS: tuple[str, ...] = (*MODEL_FACTS, *ATTACK_FACTS)
# What transfer.csv records about each end of a cell (as ``source_*`` and ``target_*``).
TRANSFER_MODEL_FACTS = ("architecture", "family", "baseline", "attention_maps", "training_threat_model", "trained_on",
                        "training_seed", "model_args")
TRANSFER_ENDS = ("source", "target")
TRANSFER_DESCRIPTIVE_COLUMNS: tuple[str, ...] = (
    *(f"{end}_{fact}" for end in TRANSFER_ENDS for fact in TRANSFER_MODEL_FACTS), *ATTACK_FACTS,
)
_STRING_COLUMNS = {f.name for f in fields(ResultRow) if f.type == "str"} | {"eps_label"}
# booleans that a row read back from 0.3 leaves unknown (None): written as an empty field, not as 'None'
_BOOLEAN_COLUMNS = {f.name for row in (ResultRow, TransferRow) for f in fields(row) if f.type == "bool"}
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def row_from_record(row_type: type, record: Mapping[str, Any], descriptive: Sequence[str] = ()) -> Any:
    """A row dataclass from its stored dict; the ``descriptive`` columns a 0.3 record lacks come back
    unknown (``UNKNOWN``, ``ce_gradient`` None), so a folder written by 0.3 still resumes."""
    missing = {c: None if c == "ce_gradient" else UNKNOWN for c in descriptive if c not in record}
    return row_type(**record, **missing)


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
        if frame[column].dtype == object and column not in _BOOLEAN_COLUMNS:
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


# ------------------------------------------------------------------ reading

@dataclass(frozen=True)
class Schema:
    """How to read one file kind: its columns, which are numbers and which booleans (the rest is text),
    and which a file written by an older version may lack."""

    file: str
    what: str  # as an error names it: 'result', 'transfer'
    columns: tuple[str, ...]
    numeric: frozenset[str] = frozenset()
    boolean: frozenset[str] = frozenset()
    optional: tuple[str, ...] = ()

    @classmethod
    def of(cls, file: str, what: str, row_type: type, optional: Sequence[str] = ()) -> Schema:
        """The schema of a row dataclass: ``int``/``float`` fields numeric, ``bool`` fields boolean."""
        types = {f.name: f.type for f in fields(row_type)}
        return cls(file, what, tuple(types), frozenset(k for k, t in types.items() if t in ("int", "float")),
                   frozenset(k for k, t in types.items() if t == "bool"), tuple(optional))


RESULTS = Schema.of(RESULTS_FILE, "result", ResultRow, DESCRIPTIVE_COLUMNS)
EXAMPLES = Schema.of(EXAMPLES_FILE, "per-example", ExampleRow)
TRANSFER = Schema.of(TRANSFER_FILE, "transfer", TransferRow, TRANSFER_DESCRIPTIVE_COLUMNS)
TRANSFER_EXAMPLES = Schema.of(TRANSFER_EXAMPLES_FILE, "per-example transfer", TransferExampleRow)
ADMISSION = Schema.of(ADMISSION_FILE, "admission", AdmissionRow)
_TRUE, _FALSE = {"True", "true", "1"}, {"False", "false", "0"}


def read_table(path: str | os.PathLike, schema: Schema, *, required: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one CSV of ``schema`` (``path`` may be the folder holding ``schema.file``): text stays text (a
    model named 'NA' is not a missing value), declared numbers become numbers (an empty field NaN),
    booleans become a nullable boolean; the columns checked (``required``: the ones the caller needs,
    default every column the schema does not mark optional); an optional column the file lacks comes
    back empty (``UNKNOWN``, booleans NA). Every problem is a one-line :class:`UserError`."""
    path = Path(path)
    if path.is_dir():
        path = path / schema.file
    if not path.is_file():
        raise UserError(f"{schema.what} file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pandas' parser and empty-file errors are ValueErrors
        raise UserError(f"cannot read {path} as CSV: {exc}".splitlines()[0]) from None
    needed = [c for c in schema.columns if c not in schema.optional] if required is None else list(required)
    missing = [c for c in needed if c not in frame.columns]
    if missing:  # a whole-schema check says the file is not of its kind; a caller's, what that caller lacks
        raise UserError(f"{path} lacks {schema.what} columns {missing}" if required is None
                        else f"{path} lacks the columns {missing} needed from a {schema.what} file")
    for column in schema.optional:
        if column not in frame.columns:
            frame[column] = UNKNOWN
    for column in schema.numeric & set(frame.columns):
        try:
            frame[column] = pd.to_numeric(frame[column].replace("", np.nan))
        except (ValueError, TypeError):
            raise UserError(f"{path}: column {column!r} holds a value that is not a number") from None
    for column in schema.boolean & set(frame.columns):
        frame[column] = frame[column].map(lambda v: True if v in _TRUE else False if v in _FALSE else pd.NA)
        frame[column] = frame[column].astype("boolean" if frame[column].isna().any() else bool)
    order = [c for c in schema.columns if c in frame.columns]
    return frame[order + [c for c in frame.columns if c not in order]]


def read_results_csv(path: str | os.PathLike) -> pd.DataFrame:
    """``results.csv`` (or the results folder holding it): every :data:`RESULT_COLUMNS` column, those a 0.3
    folder lacks empty (see :data:`DESCRIPTIVE_COLUMNS`)."""
    return read_table(path, RESULTS)


def read_examples_csv(path: str | os.PathLike) -> pd.DataFrame:
    """``per_example.csv`` (or the folder holding it), columns checked."""
    return read_table(path, EXAMPLES)


def read_transfer_csv(path: str | os.PathLike) -> pd.DataFrame:
    """``transfer.csv`` (or the folder holding it): every :data:`TRANSFER_COLUMNS` column, those a 0.3 folder
    lacks empty (see :data:`TRANSFER_DESCRIPTIVE_COLUMNS`)."""
    return read_table(path, TRANSFER)


def read_transfer_examples_csv(path: str | os.PathLike) -> pd.DataFrame:
    """``transfer_examples.csv`` (or the folder holding it), columns checked."""
    return read_table(path, TRANSFER_EXAMPLES)


def read_admission_csv(path: str | os.PathLike) -> pd.DataFrame:
    """``admission.csv`` (or the folder holding it), columns checked."""
    return read_table(path, ADMISSION)


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


def read_runs(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The commands that wrote to a folder, in the order they started: each start record of its run log
    with its end record's ``status`` and ``wall_seconds`` (None for a run that never ended: it crashed
    or is still running)."""
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    for record in read_run_log(folder):
        if not isinstance(record, dict) or "run_id" not in record:
            continue
        if record.get("event") == "start":
            starts[str(record["run_id"])] = record
        elif record.get("event") == "end":
            ends[str(record["run_id"])] = record
    return [{**s, "status": ends.get(k, {}).get("status"), "wall_seconds": ends.get(k, {}).get("wall_seconds")}
            for k, s in starts.items()]
