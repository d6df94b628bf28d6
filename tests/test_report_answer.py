"""The sweep page answers first: the sanity checks' state, a verdict per evaluation set, backbone and attack
(the study's words, Holm-controlled), one key figure; panels and "best" only within what is comparable."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from robust_attn.report import build_report
from robust_attn.report.build import backbone_panels
from robust_attn.report.tables import html_tables
from robust_attn.report.kit.verdicts import answers, decide, eps_ranges
from robust_attn.study_files import Verdict
from robust_attn.sweep import run_sweep

from .pages import section, text, top_html

GRID = ["0", "1/255", "2/255", "3/255", "4/255"]


def _diffs(differences: dict[str, list[float]], p: dict[str, list[float]], dataset: str = "cifar10-embedded",
           baseline: str = "vgg_c10s") -> pd.DataFrame:
    rows = []
    for model, diff in differences.items():
        for k, (d, pv) in enumerate(zip(diff, p[model])):
            rows.append({"model": model, "baseline": baseline, "attack": "fgsm", "attack_params": "{}",
                         "attack_label": "fgsm", "norm": "Linf", "eps": k / 255, "eps_label": GRID[k], "accuracy": 0.5 + d,
                         "baseline_accuracy": 0.5, "difference": d, "mcnemar_p": pv, "worst_case_accuracy": 0.5 + d,
                         "baseline_worst_case_accuracy": 0.5, "dataset": dataset, "n": 932})
    return pd.DataFrame(rows)


def test_a_verdict_word_needs_holm_over_the_whole_page_and_eps_zero_is_not_in_the_family():
    # p = 0.02 at one eps passes alone but not among 8 tests; p = 1e-5 passes Holm over them
    diffs = _diffs({"att-a": [0.10, 0.06, 0.05, 0.0, -0.04], "att-b": [0.0, 0.01, 0.0, 0.0, 0.0]},
                   {"att-a": [1e-9, 1e-5, 1e-5, 1.0, 0.02], "att-b": [1.0, 0.5, 1.0, 1.0, 1.0]})
    decided = decide(diffs)
    a = decided[decided["model"] == "att-a"].set_index("eps_label")
    assert a.loc["0", "verdict"] == Verdict.UNTESTED.value and np.isnan(a.loc["0", "p_holm"])  # clean accuracy
    assert a.loc["1/255", "verdict"] == a.loc["2/255", "verdict"] == Verdict.MORE.value
    assert a.loc["4/255", "verdict"] == Verdict.NONE.value  # 0.02 * 6 remaining tests > 0.05
    assert a.loc["1/255", "p_holm"] == pytest.approx(8e-5)  # the smallest of 8 tests, times 8
    flipped = decide(diffs.assign(difference=-diffs["difference"]))
    assert flipped.loc[(flipped["model"] == "att-a") & (flipped["eps_label"] == "1/255"), "verdict"].item() == \
        Verdict.LESS.value
    untested = decide(diffs.assign(mcnemar_p=np.nan))
    assert set(untested["verdict"]) == {Verdict.UNTESTED.value}
    noise = decide(diffs.assign(attack_kind="noise"))  # random noise is no attack: no verdict, not in the family
    assert set(noise["verdict"]) == {Verdict.UNTESTED.value}
    mixed = decide(pd.concat([diffs.assign(attack_kind="single-step"), diffs.assign(attack_kind="noise")]))
    assert mixed["p_holm"].notna().sum() == 8


def test_answers_say_where_and_how_much_per_dataset_backbone_and_attack():
    diffs = pd.concat([
        _diffs({"att-a": [0.1, 0.06, 0.05, 0.0, 0.08], "att-b": [0.0] * 5},
               {"att-a": [1e-9, 1e-6, 1e-6, 1.0, 1e-6], "att-b": [1.0] * 5}),
        _diffs({"att-f": [0.0, -0.07, 0.0, 0.0, 0.0]}, {"att-f": [1.0, 1e-7, 1.0, 1.0, 1.0]},
               dataset="fashion-mnist-embedded", baseline="vgg_fmnist"),
    ])
    (cifar, fmnist) = answers(decide(diffs), {"vgg_c10s": "vgg", "vgg_fmnist": "vgg"})
    assert (cifar.dataset, cifar.baseline, cifar.architecture, cifar.attack) == ("cifar10-embedded", "vgg_c10s", "vgg", "fgsm")
    (found,) = cifar.findings
    assert (found.model, found.verdict, found.eps) == ("att-a", Verdict.MORE, "1/255-2/255, 4/255")
    assert (found.largest, found.largest_at) == (pytest.approx(0.08), "4/255")
    assert cifar.no_difference == ("att-b",) and cifar.untested == ()
    assert [(f.model, f.verdict, f.eps) for f in fmnist.findings] == [("att-f", Verdict.LESS, "1/255")]


def test_eps_ranges_follow_the_grid():
    assert eps_ranges(["3/255", "1/255", "2/255"], GRID) == "1/255-3/255"
    assert eps_ranges(["4/255", "1/255"], GRID) == "1/255, 4/255"
    assert eps_ranges([], GRID) == ""


def _summary(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"source": "attack", "model": m, "dataset": d, "n": 100, "training_threat_model": "standard",
                          "attack_label": "fgsm", "norm": "Linf", "eps": 0.0, "eps_label": "0", "accuracy": acc,
                          "ci_low": acc - 0.05, "ci_high": acc + 0.05, "worst_case_accuracy": acc,
                          "accuracy_method": "per-eps"} for m, d, acc in rows])


def test_best_is_only_within_one_evaluation_set():
    tables = html_tables(_summary([("vgg_fmnist", "fashion-mnist", 0.93), ("vgg_c10s", "cifar10", 0.78),
                                   ("vgg-att_c10s", "cifar10", 0.70)]), set())
    by_where = {t["where"]: {r["model"]: r["cells"][0]["best"] for r in t["rows"]} for t in tables}
    assert by_where == {"cifar10, n=100": {"vgg-att_c10s": False, "vgg_c10s": True},
                        "fashion-mnist, n=100": {"vgg_fmnist": False}}  # one model alone is no "best"


def test_panels_are_evaluation_set_by_backbone_from_the_columns():
    frame = pd.DataFrame([
        {"model": "base", "architecture": "mynet", "baseline": "", "dataset": "d1", "n": 10},
        {"model": "variant", "architecture": "mynet-att", "baseline": "mynet", "dataset": "d1", "n": 10},
        {"model": "lonely", "architecture": "other", "baseline": "", "dataset": "d1", "n": 10},
        {"model": "base", "architecture": "mynet", "baseline": "", "dataset": "d2", "n": 10},
    ])
    panels, roles = backbone_panels(frame)
    assert panels[("variant", "d1", 10)] == panels[("base", "d1", 10)] == "d1: mynet (base)"
    assert panels[("lonely", "d1", 10)] == "d1: other models" and panels[("base", "d2", 10)] == "d2: other models"
    assert roles == {"variant": "variant", "base": "baseline", "lonely": "model"}
    # an adversarially trained pair: its own panel, titled with its training threat model
    robust = frame.assign(training_threat_model="standard")
    robust = pd.concat([robust, pd.DataFrame([
        {"model": "base_at", "architecture": "mynet", "baseline": "", "dataset": "d1", "n": 10,
         "training_threat_model": "pgd 8/255 (7 steps of 2/255)"},
        {"model": "variant_at", "architecture": "mynet-att", "baseline": "mynet", "dataset": "d1", "n": 10,
         "training_threat_model": "pgd 8/255 (7 steps of 2/255)"}])], ignore_index=True)
    panels, _ = backbone_panels(robust)
    assert panels[("variant", "d1", 10)] == "d1: mynet (base)"
    assert panels[("variant_at", "d1", 10)] == panels[("base_at", "d1", 10)] == \
        "d1: mynet (base_at), pgd 8/255 (7 steps of 2/255)-trained"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("answer")
    run_sweep(["vgg_c10s", "vgg-att2-concat-pc_c10s", "vgg-att3-concat-pc_c10s", "vgg_fmnist",
               "vgg-att3-concat-pc_fmnist"], ["fgsm"], "0:4:1", n=48, out=out / "results", per_example=True,
              provenance={"command": "robust-attn sweep --attack fgsm (test)"})
    index = build_report([out / "results"], out / "report", panel_images=2, shift_images=8)
    return index.read_text(), out / "report"


def test_the_top_of_the_page_is_the_checks_the_verdicts_and_one_key_figure(page):
    html, folder = page
    top = top_html(html)
    assert top.index('id="banner"') < top.index('id="verdicts"') < top.index('class="key-figure"')
    words = text(top)
    assert re.search(r"Sanity checks: \d+ of \d+ passed, \d+ not tested", words)
    assert "not tested: iterative attacks at least as strong as FGSM (per eps): needs a single-step attack" in words
    for backbone in ("vgg (vgg_c10s), cifar10-embedded (n=48), fgsm:", "vgg (vgg_fmnist), fashion-mnist-embedded (n=48), fgsm:"):
        assert backbone in words
    decided = pd.read_csv(folder / "attention_vs_baseline.csv")
    assert {"p_holm", "verdict"} <= set(decided.columns)
    said = set(decided.loc[decided["eps"] > 0, "verdict"])
    assert said <= {v.value for v in Verdict} and Verdict.UNTESTED.value not in said
    for model in ("vgg-att2-concat-pc_c10s", "vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc_fmnist"):
        rows = decided[(decided["model"] == model) & (decided["eps"] > 0)]
        if set(rows["verdict"]) == {Verdict.NONE.value}:  # what the file says, the page says
            assert re.search(rf"{model}[^.]* against vgg_(c10s|fmnist): no detectable difference", words), model
        else:
            word = next(v for v in (Verdict.MORE.value, Verdict.LESS.value) if v in set(rows["verdict"]))
            assert f"{model} {word} than" in words, model
    key = re.search(r'class="key-figure"><img src="([^"]+)"', top).group(1)
    assert key == "accuracy_fgsm.png" and (folder / key).stat().st_size > 0


def test_details_are_folded_and_placeholders_are_one_line(page):
    html, _ = page
    for part in ("summary", "attention-under-attack", "attention-robustness", "provenance"):
        block = html[:html.index(f'id="{part}"')]
        opening = block[block.rindex("<details"):]
        assert opening.startswith('<details class="section">'), part  # closed: no "open" attribute
    for part in ("accuracy", "attention-vs-baseline", "sanity"):
        assert f'<section id="{part}">' in html
    robustness = text(section(html, "attention-robustness"))
    assert robustness.count("No attention-shift or pgd attention artifact for") == 1
    assert "vgg-att2-concat-pc_c10s, vgg-att3-concat-pc_c10s, vgg-att3-concat-pc_fmnist" in robustness
    provenance = text(section(html, "provenance"))
    assert "n 48" in provenance and "data dir the embedded images" in provenance
    assert not re.search(r"\b(None|True|False|nan)\b", provenance), provenance
