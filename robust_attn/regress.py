"""The regression gate: re-run a declared suite of sweeps on the shipped checkpoints and compare
every cell's n_correct (per-eps) and worst_case_n_correct (envelope) with the committed expectation.

The suite (``models/regress_suite.json``) lists checkpoints x attack x eps grid x dataset; the
expectation (``models/regress_expected.csv``) holds one row per cell. Deterministic attacks must
match exactly on CPU; randomised ones (seeded, so normally exact too) get a stated tolerance in
examples, because a different CPU's kernels may round a near-tie the other way.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from .attacks import get_attack_cfg
from .checkpoints import resolve_checkpoints
from .errors import UserError
from .files import atomic_write_text
from .results import Schema, frame_to_csv, read_table

SUITE_FILE = "regress_suite.json"
EXPECTED_FILE = "regress_expected.csv"
KEY = ["model", "dataset", "n", "attack", "attack_params", "eps_label"]
COUNTS = ("n_correct", "worst_case_n_correct")  # the per-eps number and the worst-case envelope
EXPECTED_COLUMNS = [*KEY, "checkpoint_sha256", *COUNTS]
EXPECTED = Schema(EXPECTED_FILE, "expected result", tuple(EXPECTED_COLUMNS), numeric=frozenset({"n", *COUNTS}))


@dataclass(frozen=True)
class SuiteEntry:
    attack: str
    eps: str
    eps_unit: str = "255"
    models: tuple[str, ...] = ()  # manifest names; empty: every checkpoint in the manifest
    dataset: str | None = None  # None: each checkpoint's embedded evaluation set
    n: int | None = None
    attack_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Suite:
    entries: tuple[SuiteEntry, ...]
    seed: int
    tolerance_deterministic: int
    tolerance_randomized: int


@dataclass(frozen=True)
class SuiteRun:
    """Suite entries that differ only in their attack, run as one sweep: each model's clean pass (with its
    input gradient) is made once for all of them instead of once per attack."""
    attacks: tuple[str, ...]
    entry: SuiteEntry  # the settings they share (its own attack is the first of ``attacks``)


def suite_runs(suite: Suite) -> list[SuiteRun]:
    """The suite's entries grouped into sweeps, in the order the suite first names each group. Grouped by
    their text (attack arguments are checked later, by the sweep, and need not be hashable); an attack named
    twice with the same settings is an error naming the suite file."""
    groups: dict[str, list[SuiteEntry]] = {}
    for entry in suite.entries:
        group = groups.setdefault(repr(replace(entry, attack="")), [])
        if any(e.attack == entry.attack for e in group):
            raise UserError(f"{SUITE_FILE} lists attack {entry.attack!r} twice with the same settings")
        group.append(entry)
    return [SuiteRun(tuple(e.attack for e in entries), entries[0]) for entries in groups.values()]


@dataclass(frozen=True)
class Diff:
    cell: str
    expected: str
    actual: str
    allowed: int


def read_suite(models_dir: str | os.PathLike) -> Suite:
    path = Path(models_dir) / SUITE_FILE
    if not path.is_file():
        raise UserError(f"regression suite {path} does not exist")
    try:
        raw = json.loads(path.read_text())
        entries = tuple(
            SuiteEntry(
                attack=e["attack"], eps=e["eps"], eps_unit=str(e.get("eps_unit", "255")),
                models=tuple(e.get("models", ())), dataset=e.get("dataset"), n=e.get("n"),
                attack_args=tuple(sorted(e.get("attack_args", {}).items())),
            )
            for e in raw["entries"]
        )
        tol = raw.get("tolerance", {})
        return Suite(entries, int(raw.get("seed", 0)), int(tol.get("deterministic", 0)), int(tol.get("randomized", 0)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a valid regression suite ({type(exc).__name__}: {exc})") from None


def run_suite(
    models_dir: str | os.PathLike, on_run: Callable[[int, int, SuiteRun], None] | None = None,
    batch_size: int = 256,
) -> pd.DataFrame:
    """Run every suite entry (entries that differ only in their attack as one sweep); the concatenated
    result rows."""
    from .sweep import run_sweep

    suite = read_suite(models_dir)
    runs = suite_runs(suite)
    frames = []
    for i, run in enumerate(runs):
        if on_run:
            on_run(i, len(runs), run)
        entry = run.entry
        refs = resolve_checkpoints(list(entry.models) or None, models_dir, strict=True)  # a gate skips nothing
        frames.append(run_sweep(refs, list(run.attacks), entry.eps, entry.dataset, eps_unit=entry.eps_unit,
                            attack_args=dict(entry.attack_args), models_dir=models_dir, n=entry.n,
                            batch_size=batch_size, seed=suite.seed, device="cpu"))
    return pd.concat(frames, ignore_index=True)


def read_expected(models_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(models_dir) / EXPECTED_FILE
    if not path.is_file():
        raise UserError(f"expected results {path} do not exist; create them with `robust-attn regress --update`")
    return read_table(path, EXPECTED)[EXPECTED_COLUMNS]


def compare(expected: pd.DataFrame, actual: pd.DataFrame, suite: Suite) -> list[Diff]:
    """Cells whose per-eps or worst-case count moved beyond the tolerance, plus cells present on one side only."""
    merged = expected.merge(actual[EXPECTED_COLUMNS], on=KEY, how="outer", suffixes=("_expected", "_actual"),
                            indicator="presence")
    diffs: list[Diff] = []
    for row in merged.itertuples(index=False):
        cell = f"{row.model} {row.attack} eps={row.eps_label} ({row.dataset}, n={row.n})"
        if row.presence != "both":
            side = "expected only" if row.presence == "left_only" else "new cell"
            diffs.append(Diff(cell, side if row.presence == "left_only" else "-", side if row.presence == "right_only" else "-", 0))
            continue
        allowed = suite.tolerance_randomized if get_attack_cfg(row.attack).randomized else suite.tolerance_deterministic
        if row.checkpoint_sha256_expected != row.checkpoint_sha256_actual:
            diffs.append(Diff(cell, f"sha256 {row.checkpoint_sha256_expected[:12]}", f"sha256 {row.checkpoint_sha256_actual[:12]}", 0))
        else:
            for count in COUNTS:
                want, got = int(getattr(row, f"{count}_expected")), int(getattr(row, f"{count}_actual"))
                if abs(want - got) > allowed:
                    diffs.append(Diff(f"{cell} {count}", str(want), str(got), allowed))
    return diffs


def write_expected(models_dir: str | os.PathLike, actual: pd.DataFrame) -> Path:
    path = Path(models_dir) / EXPECTED_FILE
    return atomic_write_text(path, frame_to_csv(actual[EXPECTED_COLUMNS].reset_index(drop=True)))
