"""Verdict words you can trust: the study's words are family-wise controlled (VERDICT_RULE), checked
by simulating whole studies through the study's own decision (per-seed values -> effects).

A simulated study has the shipped study's shape: two architectures x 5 training seeds, fgsm and
pgd over eps 0..8/255, both metrics, so 4 curves (AUC) and 36 per-eps comparisons. A seed's curves
are drawn with the mean and the across-seed standard deviation of the shipped ``vgg`` seeds at every
eps (measured by running ``studies/attention-vs-baseline.toml``: its per_seed.csv), correlated
through one factor per trained model (its clean accuracy loads 0.5 on it, every attacked eps 0.9;
the shipped seeds' neighbouring eps correlate 0.6 to 0.98). pgd's per-eps accuracy is its envelope
(the still-robust path) and 0 at eps >= 5/255 in every seed, as shipped. Under the null both
architectures are drawn from that one distribution; every study that prints any "more robust" or
"less robust" anywhere is a false verdict.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from robust_attn.study import stats as st
from robust_attn.study_files import ALPHA, AUC, VERDICT_RULE, Verdict

ROOT = Path(__file__).resolve().parents[1]
BASE, ATT = "vgg", "vgg-att3-concat-pc"
SEEDS = 5
EPS = np.arange(9) / 255
LABELS = ["0"] + [f"{k}/255" for k in range(1, 9)]
# The shipped vgg seeds, per eps 0..8/255 (eps 0: the clean pass, shared by the attacks).
MEAN = {"fgsm": np.array([0.7448, 0.3251, 0.1858, 0.1318, 0.1103, 0.0931, 0.0850, 0.0779, 0.0753]),
        "pgd": np.array([0.7448, 0.2075, 0.0393, 0.0062, 0.0013, 0, 0, 0, 0])}
SD = {"fgsm": np.array([0.0100, 0.0297, 0.0193, 0.0164, 0.0165, 0.0157, 0.0115, 0.0060, 0.0048]),
      "pgd": np.array([0.0100, 0.0375, 0.0174, 0.0046, 0.0018, 0, 0, 0, 0])}
CLEAN_LOADING, ATTACK_LOADING = 0.5, 0.9
NULL_STUDIES = 200
POWER_STUDIES = 200


def _loadings() -> np.ndarray:
    return np.array([CLEAN_LOADING] + [ATTACK_LOADING] * (len(EPS) - 1))


def simulate_seeds(rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """per_seed.csv of one simulated study (what :func:`robust_attn.study.stats.per_seed` writes).
    ``shift`` (in seed SDs): added to the attention arm's fgsm per-eps accuracy at every eps > 0, each
    eps by ``shift`` times its own across-seed SD (the worst case, the running minimum, follows)."""
    loadings = _loadings()
    rows = []
    for arch in (BASE, ATT):
        for seed in range(SEEDS):
            model = rng.standard_normal()  # how this training run came out
            clean_noise = rng.standard_normal()
            for attack in MEAN:
                noise = np.concatenate([[clean_noise], rng.standard_normal(len(EPS) - 1)])
                z = loadings * model + np.sqrt(1 - loadings ** 2) * noise
                accuracy = MEAN[attack] + SD[attack] * z
                if attack == "fgsm" and arch == ATT:
                    accuracy[1:] += shift * SD[attack][1:]
                accuracy = np.clip(accuracy, 0, 1)
                if attack == "pgd":  # the still-robust path: its per-eps number is its envelope
                    accuracy = np.minimum.accumulate(accuracy)
                for metric, values in (("accuracy", accuracy), ("worst_case_accuracy", np.minimum.accumulate(accuracy))):
                    common = {"architecture": arch, "seed": seed, "model": f"{arch}_seed{seed}", "attack": attack,
                              "attack_params": "{}", "metric": metric, "clean_accuracy": accuracy[0]}
                    rows += [{**common, "summary": "eps", "eps": e, "eps_label": label, "value": v}
                             for e, label, v in zip(EPS, LABELS, values)]
                    rows.append({**common, "summary": AUC, "eps": math.nan, "eps_label": AUC,
                                 "value": st.auc(EPS, values)})
    return pd.DataFrame(rows)


def simulate_effects(rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    return st.effects(simulate_seeds(rng, shift), {ATT: BASE})


@pytest.fixture(autouse=True)
def _no_gc_in_holm(monkeypatch):
    """statsmodels' Holm ends with a gc.collect() (0.1 s with this process's heap; it imports gc inside
    the function), which has no effect on the numbers; hundreds of simulated studies skip it."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


def any_word(effects: pd.DataFrame) -> bool:
    return bool(effects["verdict"].isin([Verdict.MORE, Verdict.LESS]).any())


def test_the_rule_is_holm_over_every_curve_not_per_metric():
    """The issue's case: 4 curves, two at Welch p = 0.017, two at 0.85. Holm over the 4 curves gives
    0.068 for the two: no verdict (per metric it gave 0.034 and "more robust" twice)."""
    frame = pd.DataFrame([{"architecture": ATT, "baseline": BASE, "attack": attack, "attack_params": "{}",
                           "metric": metric, "summary": AUC, "eps": math.nan, "eps_label": AUC, "n_seeds": 5,
                           "n_seeds_baseline": 5, "difference": 0.02, "p_value": p}
                          for (attack, metric), p in zip([("fgsm", "accuracy"), ("fgsm", "worst_case_accuracy"),
                                                          ("pgd", "accuracy"), ("pgd", "worst_case_accuracy")],
                                                         [0.017, 0.85, 0.017, 0.85])])
    out = st.decide(frame)
    assert list(out["p_holm"]) == pytest.approx([0.068, 1.0, 0.068, 1.0])
    assert set(out["verdict"]) == {Verdict.NONE}


def test_per_eps_words_only_on_a_curve_whose_verdict_holds():
    """Per-eps rows at p = 0.001 get no word while their curve has none; once it has one, they are
    Holm-adjusted over the per-eps rows of the curves that hold, and only those."""
    def rows(curve_p: float) -> pd.DataFrame:
        common = {"architecture": ATT, "baseline": BASE, "attack_params": "{}", "metric": "accuracy",
                  "n_seeds": 5, "n_seeds_baseline": 5, "difference": 0.03}
        return pd.DataFrame(
            [{**common, "attack": a, "summary": AUC, "eps": math.nan, "eps_label": AUC, "p_value": p}
             for a, p in (("fgsm", curve_p), ("pgd", 0.9))]
            + [{**common, "attack": a, "summary": "eps", "eps": e, "eps_label": str(e), "p_value": p}
               for a in ("fgsm", "pgd") for e, p in ((1, 0.001), (2, 0.02), (3, 0.5))])
    closed = st.decide(rows(0.2))
    assert set(closed.loc[closed.summary == AUC, "verdict"]) == {Verdict.NONE}
    # per-eps rows outside every family (p = 0.001 unadjusted) carry no claim either way, not "no difference"
    assert set(closed.loc[closed.summary == "eps", "verdict"]) == {Verdict.UNTESTED}
    assert closed.loc[closed.summary == "eps", "p_holm"].isna().all()
    opened = st.decide(rows(0.001))
    fgsm = opened[(opened.attack == "fgsm") & (opened.summary == "eps")]
    assert list(fgsm["p_holm"]) == pytest.approx([0.003, 0.04, 0.5])  # Holm over fgsm's 3 per-eps rows alone
    assert list(fgsm["verdict"]) == [Verdict.MORE, Verdict.MORE, Verdict.NONE]
    pgd = opened[(opened.attack == "pgd") & (opened.summary == "eps")]
    assert pgd["p_holm"].isna().all() and set(pgd["verdict"]) == {Verdict.UNTESTED}
    assert opened.loc[opened.summary == AUC, "verdict"].tolist() == [Verdict.MORE, Verdict.NONE]


def test_too_few_seeds_gets_no_word_and_stays_out_of_the_family():
    frame = pd.DataFrame([{"architecture": ATT, "baseline": BASE, "attack": a, "attack_params": "{}",
                           "metric": "accuracy", "summary": AUC, "eps": math.nan, "eps_label": AUC,
                           "n_seeds": n, "n_seeds_baseline": 5, "difference": 0.02, "p_value": 0.01}
                          for a, n in (("fgsm", 2), ("pgd", 5))])
    out = st.decide(frame)
    assert list(out["verdict"]) == [Verdict.TOO_FEW, Verdict.MORE]
    assert math.isnan(out["p_holm"][0]) and out["p_holm"][1] == pytest.approx(0.01)


def test_null_studies_print_a_false_verdict_word_at_most_five_percent_of_the_time():
    """200 studies of an architecture against itself: the share with any verdict word anywhere (4
    curves, 36 per-eps rows) is within 5% up to binomial noise (one-sided, at 1%: at most 18 of 200).
    Reading words off the unadjusted intervals would exceed that bound on the same studies: the
    simulation tells a rule that controls the rate from one that does not."""
    rng = np.random.default_rng(20240521)
    words, unadjusted = 0, 0
    for _ in range(NULL_STUDIES):
        effects = simulate_effects(rng)
        words += any_word(effects)
        unadjusted += bool((effects["p_value"] < ALPHA).any())
    bound = scipy_stats.binom.ppf(0.99, NULL_STUDIES, ALPHA)
    print(f"null: {words}/{NULL_STUDIES} studies with a verdict word (allowed {bound:.0f}); "
          f"{unadjusted}/{NULL_STUDIES} with an unadjusted p < {ALPHA}")
    assert words <= bound, f"{words} of {NULL_STUDIES} null studies printed a verdict word (allowed {bound:.0f})"
    assert unadjusted > 2 * bound


def test_a_two_seed_sd_difference_on_one_curve_is_found_in_most_studies():
    """The attention arm's fgsm per-eps accuracy raised by 2 across-seed SDs at every eps > 0 (its
    worst case follows; nothing else differs). The fgsm curve's verdict must read "more robust" in
    most of 200 studies (52% of 1000 with 5 seeds; 68% with 6: Holm over 4 curves costs power that
    only seeds buy back), and "less robust" may appear no more often than a false word may."""
    rng = np.random.default_rng(7)
    found, per_eps, wrong = 0, 0, 0
    for _ in range(POWER_STUDIES):
        effects = simulate_effects(rng, shift=2.0)
        curve = effects[(effects.summary == AUC) & (effects.attack == "fgsm") & (effects.metric == "accuracy")]
        found += int(curve["verdict"].iloc[0] == Verdict.MORE)
        per_eps += int(((effects.summary == "eps") & (effects.verdict == Verdict.MORE)).any())
        wrong += int((effects["verdict"] == Verdict.LESS).any())
    print(f"power: the curve's verdict in {found}/{POWER_STUDIES} studies, a per-eps word in {per_eps}/{POWER_STUDIES}")
    assert found > POWER_STUDIES / 2
    assert wrong <= scipy_stats.binom.ppf(0.99, POWER_STUDIES, ALPHA)


def test_readme_and_report_state_the_rule_in_the_codes_words():
    readme = " ".join((ROOT / "README.md").read_text().split())
    section = readme[readme.index("## Studies: architectures across training seeds"):readme.index("<!-- study:start -->")]
    assert " ".join(VERDICT_RULE.split()) in section
