"""Sanity checks against gradient masking and broken evaluations (Carlini et al. 2019,
"On Evaluating Adversarial Robustness", arXiv:1902.06705, section 5).

Each check reads only result rows and returns PASS, FAIL or NOT TESTED with the numbers behind it.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

ITERATIVE = ("bim", "pgd", "apgd-ce", "apgd-dlr", "autoattack")
SINGLE_STEP = "fgsm"
NOISE = {"Linf": "noise", "L2": "noise-l2"}
LARGE_EPS = 32 / 255
NEAR_ZERO = 0.05
TOL = 1e-12


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_TESTED = "NOT TESTED"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def _cells(frame: pd.DataFrame):
    return frame.sort_values("eps").groupby(["model", "dataset", "attack"], sort=True)


def check_eps_zero(frame: pd.DataFrame) -> Check:
    name = "eps = 0 equals clean accuracy"
    zero = frame[frame["eps"] == 0]
    if zero.empty:
        return Check(name, Status.NOT_TESTED, "no eps = 0 in the grid")
    bad = zero[(zero["accuracy"] - zero["clean_accuracy"]).abs() > TOL]
    if len(bad):
        r = bad.iloc[0]
        return Check(name, Status.FAIL, f"{len(bad)} cells differ, e.g. {r.model} {r.attack}: {r.accuracy:.4f} vs clean {r.clean_accuracy:.4f}")
    return Check(name, Status.PASS, f"{len(zero)} cells: accuracy at eps 0 equals clean accuracy")


def check_monotone(frame: pd.DataFrame) -> Check:
    name = "accuracy non-increasing in eps"
    failures = []
    for (model, _, attack), rows in _cells(frame):
        acc = rows["accuracy"].to_numpy()
        for i in range(1, len(acc)):
            if acc[i] > acc[i - 1] + TOL:
                failures.append(f"{model} {attack}: {acc[i - 1]:.4f} at {rows['eps_label'].iloc[i - 1]} -> "
                                f"{acc[i]:.4f} at {rows['eps_label'].iloc[i]}")
    if failures:
        return Check(name, Status.FAIL, f"{len(failures)} increases; " + "; ".join(failures[:3]))
    return Check(name, Status.PASS, f"{frame.groupby(['model', 'dataset', 'attack']).ngroups} curves, none increases")


def _paired(frame: pd.DataFrame, weaker: str, stronger: str) -> pd.DataFrame:
    keys = ["model", "dataset", "eps_label", "eps"]
    a = frame[frame["attack"] == weaker][keys + ["accuracy"]]
    b = frame[frame["attack"] == stronger][keys + ["accuracy"]]
    return a.merge(b, on=keys, suffixes=("_weak", "_strong"))


def check_iterative_vs_single_step(frame: pd.DataFrame) -> Check:
    name = "iterative attacks at least as strong as FGSM"
    pairs = [(it, _paired(frame, SINGLE_STEP, it)) for it in ITERATIVE]
    pairs = [(it, p) for it, p in pairs if len(p)]
    if not pairs:
        return Check(name, Status.NOT_TESTED, "needs fgsm and an iterative attack on the same models and eps")
    failures = [f"{it} {r.model} eps {r.eps_label}: {r.accuracy_strong:.4f} > fgsm {r.accuracy_weak:.4f}"
                for it, p in pairs for r in p.itertuples() if r.accuracy_strong > r.accuracy_weak + TOL]
    count = sum(len(p) for _, p in pairs)
    if failures:
        return Check(name, Status.FAIL, f"{len(failures)} of {count} cells; " + "; ".join(failures[:3]))
    return Check(name, Status.PASS, f"{count} cells: every iterative accuracy <= FGSM's")


def check_noise_weaker(frame: pd.DataFrame) -> Check:
    name = "random noise weaker than the attacks"
    failures, count = [], 0
    for norm, noise in NOISE.items():
        attacks = [a for a in frame.loc[frame["norm"] == norm, "attack"].unique() if a != noise]
        for attack in attacks:
            p = _paired(frame, attack, noise)
            p = p[p["eps"] > 0]
            count += len(p)
            failures += [f"{attack} {r.model} eps {r.eps_label}: noise {r.accuracy_strong:.4f} < {attack} {r.accuracy_weak:.4f}"
                         for r in p.itertuples() if r.accuracy_strong < r.accuracy_weak - TOL]
    if count == 0:
        return Check(name, Status.NOT_TESTED, "needs noise and an attack of the same norm at eps > 0")
    if failures:
        return Check(name, Status.FAIL, f"{len(failures)} of {count} cells; " + "; ".join(failures[:3]))
    return Check(name, Status.PASS, f"{count} cells: noise accuracy >= attack accuracy")


def check_large_eps(frame: pd.DataFrame) -> Check:
    name = f"accuracy near 0 at large eps (Linf >= 32/255: < {NEAR_ZERO:.0%})"
    linf = frame[(frame["norm"] == "Linf") & (~frame["attack"].isin(NOISE.values()))]
    big = linf[linf["eps"] >= LARGE_EPS - 1e-12]
    if big.empty:
        largest = linf["eps"].max() if len(linf) else 0
        return Check(name, Status.NOT_TESTED, f"largest Linf eps is {largest * 255:.3g}/255")
    at_max = big.sort_values("eps").groupby(["model", "dataset", "attack"]).tail(1)
    bad = at_max[at_max["accuracy"] >= NEAR_ZERO]
    if len(bad):
        r = bad.iloc[0]
        return Check(name, Status.FAIL, f"{len(bad)} curves stay high, e.g. {r.model} {r.attack}: {r.accuracy:.4f} at {r.eps_label}")
    return Check(name, Status.PASS, f"{len(at_max)} curves reach < {NEAR_ZERO:.0%}")


def run_checks(frame: pd.DataFrame) -> list[Check]:
    return [check(frame) for check in (check_eps_zero, check_monotone, check_iterative_vs_single_step,
                                       check_noise_weaker, check_large_eps)]
