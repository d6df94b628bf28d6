"""Sanity checks against gradient masking and broken evaluations (Carlini et al. 2019, "On
Evaluating Adversarial Robustness", arXiv:1902.06705, section 5; Athalye et al. 2018).

Each check reads result rows (and per-example outcomes where the folder has them) and returns PASS,
FAIL or NOT TESTED with the numbers behind it. Every check compares numbers that are not equal by
construction: per-eps accuracies (each eps attacked on its own), never the worst-case envelope, and
the attack run at eps 0, never the clean pass against itself. Comparisons whose outcome is fixed by
how a row was computed (a ``still-robust`` row is its envelope; a ``minimal`` attack is read from one
run at every budget) are left out and counted as such.

How a comparison "A should not be above B" decides (monotonicity, iterative vs single-step, noise vs
attack): with per-example outcomes of both on the same images, an exact one-sided McNemar test (a
binomial test on the discordant points: robust under A but not B, against the reverse), Holm-
corrected over the check's comparisons at a family-wise ``ALPHA`` = 1%, so the tiny increases that
randomness (noise, random starts, a handful of points on a small grid) produces do not FAIL a sound
evaluation while a real one does at any n. Without per-example outcomes: A above B by more than
``UNPAIRED_TOLERANCE`` (1 point).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..budget import BUDGET_ABS_SLACK, BUDGET_REL_SLACK, exceeds_budget
from ..results import AdmissionCheck, CheckStatus
from .kit.labels import CURVE, ITERATIVE, MODEL, NOISE, SINGLE_STEP, attention_objective, eps_key, natural_objective, of_kind
from .kit.stats import discordant, holm, mcnemar_exact, p_text

ALPHA = 0.01  # family-wise error rate of one check's paired tests
UNPAIRED_TOLERANCE = 0.01  # accuracy points, when a comparison has no per-example outcomes
EPS0_TOLERANCE = 0.001  # share of points whose outcome may differ at eps 0 (0 points below n = 1000)
LARGE_LINF_EPS = 32 / 255
NEAR_ZERO = 0.05
ZERO_GRADIENT_LIMIT = 0.10
MINIMAL = "minimal"
STILL_ROBUST = "still-robust"


Status = CheckStatus  # one enum for every check's outcome (results.py declares it for admission.csv)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str  # the numbers behind the status
    suggests: str = ""  # what a FAIL suggests
    masking: bool = False  # a FAIL is a gradient-masking symptom: name the attacks that do not need the CE gradient
    models: tuple[str, ...] = field(default_factory=tuple)  # the models a FAIL concerns


# ------------------------------------------------------------------ per-example outcomes

class Outcomes:
    """Per cell, the per-example ``robust`` outcomes (bool, by example index), where complete."""

    def __init__(self, examples: pd.DataFrame | None):
        self._cells: dict[tuple, np.ndarray] = {}
        if examples is None or examples.empty:
            return
        for key, g in examples.groupby([*CURVE, "eps_label"], sort=False):
            g = g.sort_values("index")
            if len(g) == int(key[2]) and g["index"].is_unique:
                self._cells[tuple(map(str, key))] = g["robust"].to_numpy().astype(bool)

    def get(self, row) -> np.ndarray | None:
        return self._cells.get(tuple(map(str, (row.model, row.dataset, row.n, row.attack, row.attack_params,
                                               row.eps_label))))


@dataclass(frozen=True)
class Comparison:
    """Is ``low`` (expected at most ``high``) above it? ``text`` names both."""

    text: str
    excess: float  # accuracy of low minus accuracy of high
    gained: int | None  # robust under low, not under high
    lost: int | None
    p: float | None  # one-sided exact McNemar p-value; None: no paired outcomes
    model: str
    low_tag: str = "the first"  # short names of the two sides, for the counts
    high_tag: str = "the second"

    def describe(self) -> str:
        base = f"{self.text} ({100 * self.excess:+.1f} points"
        if self.p is None:
            return base + ", no per-example data)"
        return base + (f"; {self.gained} points robust only under {self.low_tag}, {self.lost} only under {self.high_tag}; "
                       f"one-sided p {p_text(self.p)})")


def compare(low, high, outcomes: Outcomes, text: str, low_tag: str, high_tag: str) -> Comparison:
    """``low`` and ``high`` are result rows on the same images; ``low`` should not be above ``high``."""
    excess = float(low.accuracy - high.accuracy)
    a, b = outcomes.get(low), outcomes.get(high)
    if a is None or b is None or len(a) != len(b):
        return Comparison(text, excess, None, None, None, low.model, low_tag, high_tag)
    gained, lost = discordant(a, b)
    p = mcnemar_exact(gained, lost, "greater")
    return Comparison(text, excess, gained, lost, p, low.model, low_tag, high_tag)


def flagged(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons where ``low`` is significantly above ``high``: paired ones by Holm's step-down
    at family-wise ``ALPHA``, unpaired ones by more than ``UNPAIRED_TOLERANCE``."""
    paired = sorted((c for c in comparisons if c.p is not None), key=lambda c: c.p)
    reject, _ = holm([c.p for c in paired], ALPHA)
    out = [c for c, r in zip(paired, reject) if r]
    out += [c for c in comparisons if c.p is None and c.excess > UNPAIRED_TOLERANCE + 1e-12]
    return out


def _comparison_check(name: str, comparisons: list[Comparison], untested: str, passed: str, suggests: str,
                      extra: str = "") -> Check:
    if not comparisons:
        return Check(name, Status.NOT_TESTED, untested + extra)
    bad = flagged(comparisons)
    paired = sum(c.p is not None for c in comparisons)
    how = (f"{len(comparisons)} comparisons ({paired} on paired per-example outcomes, "
           f"{len(comparisons) - paired} by accuracy alone)")
    if bad:
        return Check(name, Status.FAIL, f"{len(bad)} of {how} fail: " + "; ".join(c.describe() for c in bad[:3])
                     + (" ..." if len(bad) > 3 else "") + extra, suggests, True, tuple(dict.fromkeys(c.model for c in bad)))
    worst = max(comparisons, key=lambda c: c.excess)
    detail = f"{how}; {passed}"
    if worst.excess > 0:
        detail += f"; largest non-significant increase: {worst.describe()}"
    return Check(name, Status.PASS, detail + extra)


def _curves(frame: pd.DataFrame) -> Iterable[tuple[tuple, pd.DataFrame]]:
    return frame.sort_values("eps").groupby(CURVE, sort=True)


def _name(row) -> str:
    return f"{row.model} {row.attack_label}"


# ------------------------------------------------------------------ the checks

def check_monotone(frame: pd.DataFrame, outcomes: Outcomes) -> Check:
    name = "per-eps accuracy non-increasing in eps"
    comparisons, by_construction = [], 0
    for _, rows in _curves(frame):
        rows = list(rows.itertuples())
        for prev, cur in zip(rows, rows[1:]):
            if cur.accuracy_method in (MINIMAL, STILL_ROBUST):
                by_construction += 1
                continue
            comparisons.append(compare(cur, prev, outcomes, f"{_name(cur)}: {100 * prev.accuracy:.1f}% at {prev.eps_label}"
                                                            f" -> {100 * cur.accuracy:.1f}% at {cur.eps_label}",
                                       f"eps {cur.eps_label}", f"eps {prev.eps_label}"))
    extra = f"; {by_construction} steps not tested (still-robust or minimal rows cannot increase)" if by_construction else ""
    return _comparison_check(
        name, comparisons, "no curve with two per-eps rows", "no significant increase",
        "a larger ball contains every smaller one, so an attack that finds fewer adversarial examples at a larger "
        "eps is failing where it should not: gradient masking, a stochastic model, or (for FGSM on an undefended "
        "model at large eps) a single step overshooting. Check it with an iterative or gradient-free attack.", extra)


def check_eps_zero(frame: pd.DataFrame, outcomes: Outcomes, examples: pd.DataFrame | None) -> Check:
    name = "attack at eps 0 equals the clean pass"
    zero = frame[(frame["eps"] == 0) & (frame["accuracy_method"] != MINIMAL)]
    if zero.empty:
        return Check(name, Status.NOT_TESTED, "no eps-bounded attack ran at eps = 0 (put 0 in the grid)")
    clean = _clean_correct(examples)
    bad, paired = [], 0
    for r in zero.itertuples():
        allowed = math.floor(EPS0_TOLERANCE * r.n)
        robust = outcomes.get(r)
        clean_r = clean.get((r.model, r.dataset, int(r.n), r.attack, r.attack_params))
        clean_n = int(round(r.clean_accuracy * r.n))
        if robust is not None and clean_r is not None and len(clean_r) == len(robust):
            paired += 1
            changed = int((robust != clean_r).sum())
            text = f"{changed} of {r.n} points change outcome"
        else:
            changed = abs(int(r.n_correct) - clean_n)
            text = f"{r.n_correct} vs {clean_n} correct"
        if changed > allowed:
            bad.append((r, f"{_name(r)}: {100 * r.accuracy:.1f}% at eps 0 vs clean {100 * r.clean_accuracy:.1f}% ({text})"))
    if bad:
        return Check(name, Status.FAIL, f"{len(bad)} of {len(zero)} curves differ: " + "; ".join(t for _, t in bad[:3]),
                     "an attack at eps 0 must return its input, so its accuracy equals the clean pass: a difference "
                     "means a stochastic model (randomised defence: its accuracy is a random variable; attack it with "
                     "expectation over transformation) or an attack that changes inputs at eps 0.",
                     False, tuple(dict.fromkeys(r.model for r, _ in bad)))
    return Check(name, Status.PASS, f"{len(zero)} curves ({paired} compared point by point, {len(zero) - paired} by "
                                    f"count): the attack at eps 0 gives the clean pass's outcomes (tolerance "
                                    f"{EPS0_TOLERANCE:.1%} of n, rounded down)")


def _clean_correct(examples: pd.DataFrame | None) -> dict[tuple, np.ndarray]:
    if examples is None or examples.empty:
        return {}
    zero = examples[examples["eps"] == 0]
    out = {}
    for key, g in zero.groupby(CURVE, sort=False):
        g = g.sort_values("index")
        out[(key[0], key[1], int(key[2]), key[3], key[4])] = (g["clean_pred"] == g["label"]).to_numpy()
    return out


def _same_eps_pairs(frame: pd.DataFrame, lows: pd.DataFrame, highs: pd.DataFrame):
    keyed = highs.assign(eps_k=highs["eps"].map(eps_key))
    index = {k: g for k, g in keyed.groupby([*MODEL, "eps_k"], sort=False)}
    for low in lows.assign(eps_k=lows["eps"].map(eps_key)).itertuples():
        g = index.get((low.model, low.dataset, low.n, low.eps_k))
        if g is not None:
            for high in g.itertuples():
                yield low, high


def _by_norm(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of each norm, Linf first: attacks are only compared with attacks of their own norm."""
    norms = sorted(set(frame["norm"].astype(str)), key=lambda n: (n != "Linf", n))
    return [frame[frame["norm"].astype(str) == n] for n in norms]


def check_iterative_vs_single_step(frame: pd.DataFrame, outcomes: Outcomes) -> Check:
    name = "iterative attacks at least as strong as FGSM (per eps)"
    positive = frame[frame["eps"] > 0]
    comparisons = []
    for same in _by_norm(positive):
        for low, high in _same_eps_pairs(frame, same[of_kind(same, ITERATIVE)], same[of_kind(same, SINGLE_STEP)]):
            comparisons.append(compare(low, high, outcomes, f"{_name(low)} {100 * low.accuracy:.1f}% vs "
                                                            f"{high.attack_label} {100 * high.accuracy:.1f}% at "
                                                            f"{low.eps_label}", low.attack_label, high.attack_label))
    return _comparison_check(
        name, comparisons, "needs a single-step attack (fgsm) and an iterative attack of the same norm (bim, pgd, "
        "apgd-*, autoattack) on one model at one eps > 0",
        "no iterative attack significantly weaker than FGSM",
        "an iterative attack starts where FGSM's single step can go and takes more steps: one that leaves more "
        "points robust is misconfigured (too few steps, too small a step size) or follows masked gradients.")


def check_noise_weaker(frame: pd.DataFrame, outcomes: Outcomes) -> Check:
    name = "random noise weaker than the attacks (per eps)"
    positive = frame[frame["eps"] > 0]
    comparisons = []
    for same in _by_norm(positive):
        noise = of_kind(same, NOISE)
        for low, high in _same_eps_pairs(frame, same[~noise], same[noise]):
            comparisons.append(compare(low, high, outcomes, f"{_name(low)} {100 * low.accuracy:.1f}% vs {high.attack_label} "
                                                            f"{100 * high.accuracy:.1f}% at {low.eps_label}",
                                       low.attack_label, high.attack_label))
    return _comparison_check(
        name, comparisons, "needs random noise (noise, noise-l2) and an attack of the same norm on one model at one eps > 0",
        "no attack significantly weaker than random noise",
        "random noise of the same budget breaking more points than an attack means the attack's gradients carry "
        "no information (gradient masking, a non-differentiable or saturated model) or the attack is broken.")


def image_diameter(dataset: str, shapes: dict[str, tuple[int, ...]]) -> tuple[float, str]:
    """The L2 diameter sqrt(C*H*W) of [0, 1] images of ``dataset``, and where the shape came from."""
    if dataset in shapes:
        shape = shapes[dataset]
        return math.sqrt(math.prod(shape)), "x".join(map(str, shape))
    try:
        from ..data import get_dataset_cfg

        channels = get_dataset_cfg(dataset).in_channels
    except Exception:  # an unknown dataset: assume colour
        channels = 3
    return math.sqrt(channels * 32 * 32), f"{channels}x32x32 (assumed: every registered dataset is 32x32)"


def check_large_eps(frame: pd.DataFrame, shapes: dict[str, tuple[int, ...]] | None = None) -> Check:
    name = (f"attacks succeed at large budgets (Linf >= 32/255: < {NEAR_ZERO:.0%} left; L2 above the image diameter: "
            "none left; minimal attacks: no failures)")
    shapes = shapes or {}
    not_noise = frame[~of_kind(frame, NOISE)]
    tested, bad = [], []
    linf = not_noise[(not_noise["norm"] == "Linf") & ~of_kind(not_noise, SINGLE_STEP)
                     & (not_noise["eps"] >= LARGE_LINF_EPS - 1e-9)]
    for r in linf.sort_values("eps").groupby(CURVE).tail(1).itertuples():
        tested.append(r)
        if r.accuracy >= NEAR_ZERO:
            bad.append((r, f"{_name(r)} leaves {100 * r.accuracy:.1f}% at {r.eps_label}"))
    l2 = not_noise[not_noise["norm"] == "L2"]
    for r in l2.sort_values("eps").groupby(CURVE).tail(1).itertuples():
        diameter, shape = image_diameter(r.dataset, shapes)
        if r.eps > diameter:
            tested.append(r)
            if r.n_correct > 0:
                bad.append((r, f"{_name(r)} leaves {r.n_correct} of {r.n} points robust at L2 budget {r.eps_label}, "
                               f"above the diameter {diameter:.1f} of {shape} images"))
    minimal = frame[frame["accuracy_method"] == MINIMAL]
    for r in minimal.sort_values("attack_failures").groupby(CURVE).tail(1).itertuples():
        tested.append(r)
        if r.attack_failures > 0:
            bad.append((r, f"{_name(r)} found no adversarial example at all for {r.attack_failures} of {r.n} points "
                           "(they count as robust only because the attack failed)"))
    if not tested:
        largest = not_noise.loc[not_noise["norm"] == "Linf", "eps"].max()
        have = f"largest Linf eps {largest * 255:.3g}/255" if largest == largest else "no Linf attack"
        return Check(name, Status.NOT_TESTED, f"needs an iterative Linf attack at eps >= 32/255, an L2 attack above the "
                                              f"image diameter or a minimal-perturbation attack ({have}; FGSM and noise "
                                              "do not count: a single step can rise again at large eps)")
    if bad:
        return Check(name, Status.FAIL, f"{len(bad)} of {len(tested)} curves: " + "; ".join(t for _, t in bad[:3]),
                     "at budgets this large every input can be turned into another class: an attack that does not get "
                     "there follows masked gradients, takes too few or too small steps, or (a minimal attack) gives up.",
                     True, tuple(dict.fromkeys(r.model for r, _ in bad)))
    return Check(name, Status.PASS, f"{len(tested)} curves: " + "; ".join(
        f"{_name(r)} {100 * r.accuracy:.1f}% at {r.eps_label}" + (" (no failures)" if r.accuracy_method == MINIMAL else "")
        for r in tested[:3]) + (" ..." if len(tested) > 3 else ""))


def check_gradients(frame: pd.DataFrame) -> Check:
    name = f"input gradients informative (zero or non-finite for <= {ZERO_GRADIENT_LIMIT:.0%} of clean-correct points)"
    rows = frame[np.isfinite(frame["zero_gradient_fraction"].astype(float))]
    if rows.empty:
        return Check(name, Status.NOT_TESTED, "no gradient attack in these results (the diagnostic comes with the "
                                              "clean pass of gradient attacks)")
    per_model = rows.groupby(MODEL, sort=True)["zero_gradient_fraction"].max()
    bad = per_model[per_model > ZERO_GRADIENT_LIMIT]
    text = "; ".join(f"{m}: {100 * v:.1f}%" for (m, _, _), v in (bad if len(bad) else per_model).items())
    if len(bad):
        return Check(name, Status.FAIL,
                     f"{len(bad)} of {len(per_model)} models have exactly zero or non-finite input gradients at the "
                     f"clean input for a large share of their clean-correct points: {text}",
                     "gradient attacks have nothing to follow there (saturated softmax, a non-differentiable layer): their "
                     "accuracy overstates robustness. This is gradient masking.",
                     True, tuple(dict.fromkeys(m for m, _, _ in bad.index)))
    return Check(name, Status.PASS, f"{len(per_model)} models, share of clean-correct points with a zero or non-finite "
                                    f"input gradient: {text}")


def check_budget(frame: pd.DataFrame) -> Check:
    name = "perturbations within budget (eps-bounded attacks)"
    bounded = frame[frame["accuracy_method"] != MINIMAL]
    if bounded.empty:
        return Check(name, Status.NOT_TESTED, "no eps-bounded attack in these results")
    bad = [r for r in bounded.itertuples() if exceeds_budget(float(r.max_perturbation), float(r.eps))]
    if bad:
        return Check(name, Status.FAIL, f"{len(bad)} of {len(bounded)} cells: " + "; ".join(
            f"{_name(r)} at {r.eps_label}: largest {r.norm} perturbation {r.max_perturbation:.6g} > eps {r.eps:.6g}"
            for r in bad[:3]),
            "an eps-bounded attack whose outputs leave the eps-ball is broken: its numbers are not robust accuracy at "
            "that eps.", False, tuple(dict.fromkeys(r.model for r in bad)))
    ratio = (bounded["max_perturbation"] / bounded["eps"].where(bounded["eps"] > 0)).max()
    return Check(name, Status.PASS, f"{len(bounded)} cells: largest perturbation norm <= eps (float slack "
                                    f"{BUDGET_REL_SLACK:g} relative + {BUDGET_ABS_SLACK:g}); at most "
                                    f"{100 * ratio:.1f}% of the budget used" if ratio == ratio else
                 f"{len(bounded)} cells: largest perturbation norm <= eps")


_ADMISSION = {
    AdmissionCheck.DETERMINISTIC: (
        "admission: deterministic forward pass (the same batch twice gives the same logits)",
        "a random forward pass makes a gradient attack follow one random draw of the gradient: its accuracy is an upper "
        "bound. Attack the model with expectation over transformation (eot-pgd, autoattack-rand, or apgd-ce/apgd-dlr "
        "with --attack-arg eot_iter=20), or remove the randomness (RobustBench admits no random model to its leaderboard).", False),
    AdmissionCheck.GRADIENT: (
        f"admission: input gradients non-zero and finite (for <= {ZERO_GRADIENT_LIMIT:.0%} of the points)",
        "gradient attacks have nothing to follow where the input gradient is zero or not finite: their accuracy "
        "overstates robustness (gradient masking).", True),
    AdmissionCheck.CLEAN_ACCURACY: (
        "admission: clean accuracy as the checkpoint records it for the same images (within 1 point)",
        "the model does not see what it was trained on: wrong normalisation, channel order or resolution, or shuffled "
        "labels. Every number of it is suspect until the clean accuracy matches.", False),
}
GRADIENT_KINDS = (SINGLE_STEP, ITERATIVE, "minimal-perturbation")  # AttackKind values that follow gradients


def eot_iter(attack_params: str) -> int:
    """The EOT samples per gradient an attack's parameters ask for (1: a single draw)."""
    try:
        value = json.loads(attack_params).get("eot_iter", 1)
    except (ValueError, AttributeError):
        return 1
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1


def single_draw_attacks(frame: pd.DataFrame, model: str) -> list[str]:
    """The gradient attacks a model was evaluated with that took one draw of its gradient per step."""
    rows = frame[(frame["model"] == model) & frame["attack_kind"].astype(str).isin(GRADIENT_KINDS)]
    label = rows["attack_label"] if "attack_label" in rows.columns else rows["attack"]
    return sorted({str(lab) for lab, params in zip(label, rows["attack_params"]) if eot_iter(str(params)) <= 1})


def check_admission(admission: pd.DataFrame | None, frame: pd.DataFrame, which: AdmissionCheck) -> Check:
    """One of RobustBench's admission checks over every model, as the sweep made them before attacking."""
    name, suggests, masking = _ADMISSION[which]
    rows = None if admission is None else admission[(admission["check"] == which.value)
                                                    & admission["model"].isin(set(frame["model"]))]
    if rows is None or rows.empty:
        return Check(name, Status.NOT_TESTED, "the sweep that wrote these results made no admission checks "
                                              "(admission.csv is missing: written by robust-attn 0.5 and later)")
    failed = rows[rows["status"] == CheckStatus.FAIL.value]
    if len(failed):
        texts = []
        for r in failed.itertuples():
            text = f"{r.model} ({r.dataset}, n={r.n}): {r.detail}"
            if which is AdmissionCheck.DETERMINISTIC:
                plain = single_draw_attacks(frame, r.model)
                if plain:
                    text += f"; upper bounds, not estimates: its accuracy under {', '.join(plain)} (no EOT)"
            texts.append(text)
        return Check(name, Status.FAIL, f"{len(failed)} of {len(rows)} evaluations: " + "; ".join(texts[:3])
                     + (" ..." if len(texts) > 3 else ""), suggests, masking, tuple(dict.fromkeys(failed["model"])))
    untested = rows[rows["status"] == CheckStatus.NOT_TESTED.value]
    passed = rows[rows["status"] == CheckStatus.PASS.value]
    if passed.empty:
        return Check(name, Status.NOT_TESTED, f"{len(untested)} evaluations: " + "; ".join(
            f"{r.model}: {r.detail}" for r in untested.head(3).itertuples()) + (" ..." if len(untested) > 3 else ""))
    detail = f"{len(passed)} evaluations: " + "; ".join(f"{r.model}: {r.detail}" for r in passed.head(3).itertuples())
    detail += " ..." if len(passed) > 3 else ""
    if len(untested):
        detail += f"; not tested for {len(untested)} ({', '.join(untested['model'].head(3))}"
        detail += ", ...)" if len(untested) > 3 else ")"
    return Check(name, Status.PASS, detail)


def run_checks(frame: pd.DataFrame, examples: pd.DataFrame | None = None,
               shapes: dict[str, tuple[int, ...]] | None = None, admission: pd.DataFrame | None = None) -> list[Check]:
    """Every check on result rows with an ``attack_label`` column (see :func:`.common.with_labels`), the
    admission checks (``admission.csv``) first."""
    if "attack_label" not in frame.columns:
        frame = frame.assign(attack_label=frame["attack"])
    outcomes = Outcomes(examples)
    # Attacks on the attention maps (attention-shift) keep labels by design: the label-attack checks
    # (gradient diagnostic, monotone, iterative vs single step, noise weaker, large eps) do not apply
    # to them. eps 0 and the budget do.
    aimed = attention_objective(frame).to_numpy()
    # Common corruptions (a study of them, a folder read as one) are no attack: a severity is no budget, and
    # whether accuracy falls with it is the corruption's property, not a check on an evaluation. eps 0 (the
    # clean images) and the admission checks apply to them.
    natural = natural_objective(frame).to_numpy()
    label = frame[~aimed & ~natural]
    skipped = frame[aimed].drop_duplicates(CURVE)
    corrupted = frame[natural].drop_duplicates(CURVE)
    note = (f"; {len(skipped)} curve{'s' if len(skipped) != 1 else ''} of attacks on the attention maps "
            f"({', '.join(sorted(set(skipped['attack_label'].astype(str))))}) left out: they keep labels by design"
            if len(skipped) else "")
    note += (f"; {len(corrupted)} curve{'s' if len(corrupted) != 1 else ''} of common corruptions left out: a "
             "severity is no attack budget" if len(corrupted) else "")

    def label_only(check: Check) -> Check:
        return replace(check, detail=check.detail + note) if note else check

    return [
        *(check_admission(admission, frame, which) for which in AdmissionCheck),
        label_only(check_gradients(label)),
        check_eps_zero(frame, outcomes, examples),
        label_only(check_monotone(label, outcomes)),
        label_only(check_iterative_vs_single_step(label, outcomes)),
        label_only(check_noise_weaker(label, outcomes)),
        label_only(check_large_eps(label, shapes)),
        check_budget(frame[~natural]),
    ]
