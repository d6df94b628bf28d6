"""The study report on synthetic study folders: the CSVs of the study contract written with pandas,
so these tests need no training, no sweep and no checkpoint."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robust_attn.errors import UserError
from robust_attn.report.study import backbone_panels, build_study_report
from robust_attn.results import RESULT_COLUMNS
from robust_attn.study.stats import decide
from robust_attn.study_files import VERDICT_RULE

from .pages import section, text, top_html

BASE = "vgg"
ATT = "vgg-att3-concat-pc"
EPS = (0, 1, 2)
FGSM = "{}"
SECTIONS = ["verdict-table", "curves", "differences", "clean-vs-robust", "sanity", "per-eps", "within-seed", "provenance"]
FOLDED = ["per-eps", "within-seed", "provenance"]
# per architecture: clean accuracy, robust accuracy lost per 1/255 (a lower slope: more robust)
RECIPE = {BASE: (0.80, 0.20), ATT: (0.80, 0.12)}


def _auc(values: list[float]) -> float:
    return float(np.trapezoid(values, EPS) / (EPS[-1] - EPS[0]))


def _interval(values: np.ndarray) -> tuple[float, float]:
    if len(values) < 2:
        return np.nan, np.nan
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(lo), float(hi)


def _welch(a: np.ndarray, b: np.ndarray) -> dict:
    """Difference of means, its Welch interval and test (as the study writes them)."""
    diff = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return {"difference": diff, "ci_low": np.nan, "ci_high": np.nan, "test": "none", "statistic": np.nan,
                "df": np.nan, "p_value": np.nan}
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return {"difference": diff, "ci_low": ci.low, "ci_high": ci.high, "test": "welch-t", "statistic": res.statistic,
            "df": res.df, "p_value": res.pvalue}


def make_study(folder: Path, seeds: dict[str, list[int]] | None = None, attention: str = ATT,
               sweep: bool = False, slope: float = RECIPE[ATT][1]) -> Path:
    """A study output folder: 2 architectures x 3 seeds (unless ``seeds`` says otherwise), fgsm at
    eps 0, 1/255, 2/255, metrics accuracy and worst case, plus auc rows; the attention architecture
    loses ``slope`` accuracy per 1/255 (the baseline's slope: no difference)."""
    seeds = seeds or {BASE: [0, 1, 2], attention: [0, 1, 2]}
    recipe = {BASE: RECIPE[BASE], attention: (RECIPE[ATT][0], slope)}
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    members, per_seed = [], []
    for arch, arch_seeds in seeds.items():
        clean, slope = recipe[arch]
        for seed in arch_seeds:
            model = f"{arch}_seed{seed}"
            c = clean + rng.normal(0, 0.01)
            members.append({"architecture": arch, "seed": seed, "model": model, "checkpoint": f"models/{model}.pt",
                            "checkpoint_sha256": f"{seed:064d}", "clean_accuracy": c, "trained": seed > 0})
            for metric, extra in (("accuracy", 0.0), ("worst_case_accuracy", 0.02)):
                values = [c] + [max(c - (slope + extra) * e + rng.normal(0, 0.02), 0) for e in EPS[1:]]
                common = {"architecture": arch, "seed": seed, "model": model, "attack": "fgsm", "attack_params": FGSM,
                          "metric": metric, "clean_accuracy": c}
                per_seed += [{**common, "summary": "eps", "eps": e / 255, "eps_label": f"{e}/255" if e else "0",
                              "value": v} for e, v in zip(EPS, values)]
                per_seed.append({**common, "summary": "auc", "eps": np.nan, "eps_label": "auc", "value": _auc(values)})
    per_seed = pd.DataFrame(per_seed)
    keys = ["attack", "attack_params", "metric", "summary", "eps_label"]
    study, effects = [], []
    for key, g in per_seed.groupby(keys, sort=False):
        eps = g["eps"].iloc[0]
        arms = {a: g[g["architecture"] == a]["value"].to_numpy() for a in seeds}
        for arch, v in arms.items():
            lo, hi = _interval(v)
            study.append({"architecture": arch, **dict(zip(keys, key)), "eps": eps, "n_seeds": len(v), "mean": v.mean(),
                          "std": v.std(ddof=1) if len(v) > 1 else np.nan, "ci_low": lo, "ci_high": hi})
        a, b = arms[attention], arms[BASE]
        effects.append({"architecture": attention, "baseline": BASE, **dict(zip(keys, key)), "eps": eps,
                        "n_seeds": len(a), "n_seeds_baseline": len(b), "mean": a.mean(), "baseline_mean": b.mean(),
                        **_welch(a, b), "p_holm": np.nan, "verdict": ""})
    effects = decide(pd.DataFrame(effects))  # the words and adjusted p by the study's own rule
    within = [{"architecture": attention, "baseline": BASE, "seed": s, "attack": "fgsm", "attack_params": FGSM,
               "metric": "accuracy", "eps": e / 255, "eps_label": f"{e}/255" if e else "0", "accuracy": 0.5,
               "baseline_accuracy": 0.4, "difference": 0.1, "mcnemar_p": 0.0123}
              for s in sorted(set(seeds[attention]) & set(seeds[BASE])) for e in EPS]
    pd.DataFrame(members).to_csv(folder / "members.csv", index=False)
    per_seed.to_csv(folder / "per_seed.csv", index=False)
    pd.DataFrame(study).to_csv(folder / "study.csv", index=False)
    effects.to_csv(folder / "effects.csv", index=False)
    pd.DataFrame(within).to_csv(folder / "within_seed.csv", index=False)
    (folder / "provenance.json").write_text(json.dumps({
        "study": "attention-vs-baseline", "file": "studies/attention-vs-baseline.toml", "sha256": "ab" * 32,
        "description": "attention against its plain backbone", "command": "robust-attn study studies/x.toml",
        "versions": {"torch": "2.5.0"}, "spec": {}, "baselines": {attention: BASE},
        "trained": [m["checkpoint"] for m in members if m["trained"]],
        "reused": [m["checkpoint"] for m in members if not m["trained"]],
        "started": "2025-01-01T00:00:00", "wall_seconds": 12.5}))
    if sweep:
        _member_sweep(folder / "sweep", members)
    return folder


def _member_sweep(folder: Path, members: list[dict]) -> None:
    """A minimal sweep results folder (results.csv only, no run log) with every member under fgsm."""
    rows = []
    for m in members:
        for e in EPS:
            acc = m["clean_accuracy"] - 0.1 * e
            rows.append({**dict.fromkeys(RESULT_COLUMNS, 0), "model": m["model"], "checkpoint_sha256": m["checkpoint_sha256"],
                         "architecture": m["architecture"], "width": 0.125, "trained_on": "cifar10", "dataset": "cifar10",
                         "n": 100, "attack": "fgsm", "attack_params": FGSM, "norm": "Linf", "eps": e / 255,
                         "eps_label": f"{e}/255" if e else "0", "n_correct": round(100 * acc), "accuracy": acc,
                         "ci_low": acc - 0.05, "ci_high": acc + 0.05, "worst_case_n_correct": round(100 * acc),
                         "worst_case_accuracy": acc, "worst_case_ci_low": acc - 0.05, "worst_case_ci_high": acc + 0.05,
                         "accuracy_method": "per-eps", "clean_accuracy": m["clean_accuracy"],
                         "zero_gradient_fraction": 0.0, "max_perturbation": e / 255, "seed": 0, "version": "0",
                         "seconds": 0.1})
    (folder / "report").mkdir(parents=True)
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(folder / "results.csv", index=False)
    (folder / "report" / "index.html").write_text("<html></html>")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("study") / "out", sweep=True)


@pytest.fixture(scope="module")
def page(study) -> str:
    path = build_study_report(study, command="robust-attn report-study OUT (test)")
    assert path == study / "report" / "index.html"
    return path.read_text()


def _sentences(page: str) -> list[str]:
    """The verdict sentences under the banner, as a reader reads them."""
    verdicts = section(page, "verdicts")
    return [text(li) for li in re.findall(r"<li>(.*?)</li>", verdicts[:verdicts.index("</ul>")], re.S)]


def test_the_answer_opens_the_report(page):
    top = top_html(page)
    assert top.index('id="banner"') < top.index('id="verdicts"') < top.index('class="key-figure"')
    assert re.search(r'class="key-figure"><img src="curves_00_fgsm_accuracy\.png"', top), "the key figure: accuracy"
    assert "<table" not in top, "the tables come after the answer"
    positions = [page.index(f'id="{s}"') for s in SECTIONS]
    assert positions == sorted(positions), "sections in page order"
    toc = page[page.index('<nav id="toc">'):page.index("</nav>")]
    assert re.findall(r'href="#([^"]+)"', toc) == SECTIONS
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page


def test_details_are_folded_and_the_rest_is_open(page):
    for part in FOLDED:
        block = page[:page.index(f'id="{part}"')]
        opening = block[block.rindex("<details"):]
        assert opening.startswith('<details class="section">'), part  # closed: no "open" attribute
    for part in set(SECTIONS) - set(FOLDED):
        assert f'<section id="{part}">' in page, part
    for part in SECTIONS:  # the layout writes each title once (an open section's after its anchor); a partial none
        assert section(page, part).count("<h2") == (0 if part in FOLDED else 1), part


def test_banner_counts_the_member_sweeps_checks(page):
    banner = section(page, "banner")
    # the member sweep ran fgsm alone: three checks cannot be made; its folder, written by this test and not by a
    # sweep, holds no admission.csv: the three admission checks are not tested either
    assert 'class="state-partial"' in banner
    words = text(banner)
    assert "Sanity checks of the member sweeps: 4 of 10 passed, 6 not tested." in words
    assert len(re.findall(r"<li><span class=\"status-NOT\">not tested</span>", banner)) == 6
    assert "FAIL" not in words


def test_verdict_sentences_say_the_study_words(page, study):
    effects = pd.read_csv(study / "effects.csv", dtype={"eps_label": str})
    auc = effects[effects["summary"] == "auc"].set_index("metric")
    assert set(auc["verdict"]) == {"more robust"}  # the attention arm loses less per eps
    sentences = _sentences(page)
    assert len(sentences) == 2, sentences  # one baseline x fgsm x two metrics, accuracy first
    for sentence, metric, name in zip(sentences, ("accuracy", "worst_case_accuracy"),
                                      ("accuracy", "worst-case accuracy")):
        e = auc.loc[metric]
        assert sentence.startswith(f"{BASE}, fgsm, {name} (AUC over eps): {ATT} more robust than {BASE} "
                                   f"(difference {100 * e.difference:+.1f} points [{100 * e.ci_low:+.1f}, "
                                   f"{100 * e.ci_high:+.1f}], Holm p {e.p_holm:.2g}"), sentence
        hits = effects[(effects["summary"] == "eps") & (effects["metric"] == metric)
                       & (effects["verdict"] == "more robust")]["eps_label"].tolist()
        assert ("per eps at" in sentence) == bool(hits), (sentence, hits)
        assert not hits or f"per eps at {'-'.join(dict.fromkeys([hits[0], hits[-1]]))})" in sentence  # consecutive
    rule = text(section(page, "verdicts"))
    assert " ".join(VERDICT_RULE.split()) in rule


def test_no_difference_is_said_when_the_arms_agree(tmp_path):
    folder = make_study(tmp_path / "study", slope=RECIPE[BASE][1])
    effects = pd.read_csv(folder / "effects.csv")
    assert set(effects.loc[effects["summary"] == "auc", "verdict"]) == {"no detectable difference"}
    sentences = _sentences(build_study_report(folder).read_text())
    assert len(sentences) == 2
    for sentence in sentences:
        assert f"{ATT} against {BASE}: no detectable difference (difference" in sentence, sentence
        assert "more robust" not in sentence and "less robust" not in sentence


def test_verdict_rows_show_both_arms_the_difference_and_the_verdict(page, study):
    verdicts = section(page, "verdict-table")
    effects = pd.read_csv(study / "effects.csv")
    arms = pd.read_csv(study / "study.csv").query("summary == 'auc'").set_index(["architecture", "metric"])
    auc = effects[effects["summary"] == "auc"]
    table = verdicts[:verdicts.index("</table>")]
    rows = table.split("</tr>")[1:-1]
    assert len(rows) == len(auc) == 2  # one comparison x fgsm x two metrics
    assert "per-eps accuracy" in text(rows[0]) and "worst case" in text(rows[1])  # accuracy leads
    for row, e in zip(rows, auc.sort_values("metric").itertuples()):
        words = text(row)
        arm, base = arms.loc[(ATT, e.metric)], arms.loc[(BASE, e.metric)]
        assert f"{100 * arm['mean']:.1f} [{100 * arm.ci_low:.1f}, {100 * arm.ci_high:.1f}]" in words
        assert f"{100 * base['mean']:.1f} [{100 * base.ci_low:.1f}, {100 * base.ci_high:.1f}]" in words
        assert f"{100 * e.difference:+.1f} [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}]" in words
        assert f" {e.p_value:.2g} " in words and words.endswith(e.verdict) and e.p_value > 1e-4
        assert "3 / 3" in words
    assert 'class="name verdict-more">more robust' in table
    assert '<div class="scroll">' in verdicts[:verdicts.index("<table")]
    prose = text(verdicts)
    assert "eps 0 is included" in prose and "end points half-weighted" in prose
    assert "Holm p: Holm-adjusted over all of the study's tested curves" in prose and "one metric" not in prose
    assert "too-few-seeds" not in verdicts


def test_curves_differences_and_scatter_are_plotted(page, study):
    out = study / "report"
    sources = re.findall(r'<img src="([^"]+)"', page)
    curves = [s for s in sources if s.startswith("curves_")]
    diffs = [s for s in sources if s.startswith("difference_")]
    scatter = [s for s in sources if s.startswith("clean_vs_robust_")]
    assert len(curves) == 2 and len(diffs) == 2 and len(scatter) == 1  # fgsm x {accuracy, worst case}; per attack
    for name in sources:
        assert (out / name).stat().st_size > 1000 and (out / name).with_suffix(".svg").is_file()
    assert curves[0] in top_html(page) and curves[0] not in section(page, "curves"), "the key figure, once"
    assert curves[1] in section(page, "curves")
    assert all(s in section(page, "differences") for s in diffs)
    assert scatter[0] in section(page, "clean-vs-robust")


def test_curves_have_one_panel_per_backbone():
    effects = pd.DataFrame({"architecture": ["vgg-att", "vgg-se", "resnet-se"], "baseline": ["vgg", "vgg", "resnet"]})
    panels = backbone_panels(effects, ["vgg", "vgg-att", "vgg-se", "resnet", "resnet-se", "mlp"])
    assert panels == {"vgg": "vgg", "vgg-att": "vgg", "vgg-se": "vgg", "resnet": "resnet", "resnet-se": "resnet",
                      "mlp": "other architectures"}


def test_per_eps_and_within_seed_tables(page, study):
    per_eps = text(section(page, "per-eps"))
    effects = pd.read_csv(study / "effects.csv", dtype={"eps_label": str})
    row = effects[(effects["summary"] == "eps") & (effects["eps_label"] == "2/255") & (effects["metric"] == "accuracy")].iloc[0]
    assert (f"2/255 3 / 3 {100 * row['mean']:.1f} {100 * row.baseline_mean:.1f} {100 * row.difference:+.1f} "
            f"[{100 * row.ci_low:+.1f}, {100 * row.ci_high:+.1f}] {row.p_value:.2g} {row.p_holm:.2g} {row.verdict}") \
        in per_eps
    assert "numbers, not verdicts" in per_eps
    assert per_eps.count("vgg-att3-concat-pc vs vgg") == 2  # per metric
    within = text(section(page, "within-seed"))
    assert "McNemar" in within and within.count("0.012") == 9  # 3 seed pairs x 3 eps
    assert "2 fgsm 1/255 50.0 40.0 +10.0 0.012" in within


def test_member_sweep_checks_and_link(page):
    sanity = section(page, "sanity")
    assert 'href="../sweep/report/index.html"' in sanity
    assert "6 models" in sanity
    statuses = re.findall(r'class="name status-\w+">([^<]+)</td>', sanity)
    assert len(statuses) == 10 and set(statuses) <= {"PASS", "FAIL", "NOT TESTED"}
    assert "eps 0" in text(sanity)  # a check's own name and text
    assert "member sweeps are missing" not in sanity


def test_provenance(page, study):
    prov = text(section(page, "provenance"))
    assert "attention-vs-baseline" in prov and "ab" * 32 in prov and "robust-attn study studies/x.toml" in prov
    assert "robust-attn report-study OUT (test)" in prov
    assert "checkpoints trained by this run 4:" in prov and "checkpoints reused 2:" in prov
    assert "torch 2.5.0" in prov and "12.5 s" in prov
    assert prov.count("reused") == 1 + 2 and prov.count(" trained ") >= 4  # members table: seeds 1, 2 trained now
    assert not re.search(r"\b(None|True|False|nan)\b", prov), prov


def test_provenance_says_unknown_for_what_the_file_does_not_say(tmp_path):
    folder = make_study(tmp_path / "study")
    (folder / "provenance.json").write_text(json.dumps({"study": "s", "command": None, "started": None,
                                                        "wall_seconds": None}))
    prov = text(section(build_study_report(folder).read_text(), "provenance"))
    assert "study command Python API" in prov and "started unknown" in prov and "wall time unknown" in prov
    assert not re.search(r"\b(None|True|False|nan)\b", prov), prov


@pytest.mark.parametrize("recorded, shown", [
    ({"spec": {"train": {"threat_model": "pgd", "threat_eps": "4/255"}}}, "training threat model pgd 4/255 (7 steps of 1/255)"),
    ({"spec": {"train": {"epochs": 3}}}, "training threat model standard"),
    ({}, "training threat model unknown"),
    ({"training_threat": "trades 8/255 (10 steps of 2/255, beta 6)"}, "training threat model trades 8/255"),
], ids=["older-adversarial-recipe", "older-standard-recipe", "no-recipe", "named"])
def test_provenance_names_the_members_threat_model_also_for_older_folders(tmp_path, recorded, shown):
    folder = make_study(tmp_path / "study")
    (folder / "provenance.json").write_text(json.dumps({"study": "s", **recorded}))
    assert shown in text(section(build_study_report(folder).read_text(), "provenance"))


def test_missing_member_sweeps_are_said(tmp_path):
    folder = make_study(tmp_path / "study")
    page = build_study_report(folder, tmp_path / "elsewhere").read_text()
    assert (tmp_path / "elsewhere" / "index.html").is_file() and not (folder / "report").exists()
    sanity = text(section(page, "sanity"))
    assert "the member sweeps are missing" in sanity and "status" not in sanity
    banner = section(page, "banner")
    assert 'class="state-partial"' in banner and "none could be made" in text(banner)
    assert "the member sweeps are missing" in text(banner)  # among its notes
    assert 'href="../study/study.csv"' in page  # links to the study's CSVs from wherever the report is


def test_too_few_seeds_is_said_in_words(tmp_path):
    folder = make_study(tmp_path / "study", seeds={BASE: [0, 1, 2], ATT: [0]})
    page = build_study_report(folder).read_text()
    sentences = _sentences(page)
    assert sentences == [f"{BASE}, fgsm, accuracy (AUC over eps): {ATT}: too few seeds for a verdict (1 / 3 seeds).",
                         f"{BASE}, fgsm, worst-case accuracy (AUC over eps): {ATT}: too few seeds for a verdict "
                         "(1 / 3 seeds)."]
    assert f"{ATT} vs {BASE}: too few seeds for a verdict (1 / 3 seeds; the rule needs 3 per arm)" \
        in text(section(page, "banner"))
    verdicts = section(page, "verdict-table")
    assert 'id="too-few-seeds"' in verdicts
    assert ("Too few seeds for a verdict: the rule needs at least 3 training seeds per arm, and vgg-att3-concat-pc "
            "vs vgg has 1 / 3 (on fgsm per-eps accuracy; fgsm worst case") in text(verdicts)
    table = verdicts[:verdicts.index("</table>")]
    assert table.count("too few seeds for a verdict") == 2 and "more robust" not in table
    row = text(table.split("</tr>")[1])
    assert "1 / 3" in row and row.count("n/a") == 4  # arm interval, difference interval, Welch and Holm p
    assert re.search(r" \d+\.\d n/a \d+\.\d \[", row), "the single-seed arm has a mean but no interval"


def test_too_few_seeds_is_said_whenever_the_rule_refuses_for_it(tmp_path):
    """Two seeds per arm give a Welch test (and an interval) but no verdict: the note must say why."""
    folder = make_study(tmp_path / "study", seeds={BASE: [0, 1], ATT: [0, 1]})
    effects = pd.read_csv(folder / "effects.csv")
    assert effects["p_value"].notna().any() and set(effects["verdict"]) == {"too few seeds for a verdict"}
    page = build_study_report(folder).read_text()
    assert "the rule needs at least 3 training seeds per arm, and vgg-att3-concat-pc vs vgg has 2 / 2" \
        in text(section(page, "verdict-table"))
    assert all("too few seeds for a verdict (2 / 2 seeds)" in s for s in _sentences(page))


def test_rows_without_spread_are_named_apart_from_too_few_seeds(tmp_path):
    folder = make_study(tmp_path / "study")
    effects = pd.read_csv(folder / "effects.csv", dtype={"eps_label": str})
    flat = (effects["summary"] == "eps") & (effects["eps_label"] == "2/255") & (effects["metric"] == "accuracy")
    effects.loc[flat, ["p_value", "p_holm", "test"]] = [np.nan, np.nan, "none"]
    effects.loc[flat, "verdict"] = "too few seeds for a verdict"
    effects.to_csv(folder / "effects.csv", index=False)
    verdicts = section(build_study_report(folder).read_text(), "verdict-table")
    assert 'id="too-few-seeds"' not in verdicts
    assert "no observed spread, so no verdict): vgg-att3-concat-pc vs vgg on fgsm per-eps accuracy at 2/255." \
        in text(verdicts)


def test_architecture_names_are_escaped(tmp_path):
    hostile = '<img src=x onerror=alert(1)>$\\frac{$'
    folder = make_study(tmp_path / "study", attention=hostile)
    page = build_study_report(folder).read_text()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert len(re.findall(r'<img src="curves_', page)) == 2  # the plots survive a '$' in a legend


def test_not_a_study_folder_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        build_study_report(empty)
    message = str(err.value)
    assert "\n" not in message and "study.csv" in message and "effects.csv" in message
    assert not (empty / "report").exists(), "nothing written for a folder that is not a study"
    with pytest.raises(UserError, match="does not exist"):
        build_study_report(tmp_path / "nowhere")
    folder = make_study(tmp_path / "study")
    pd.read_csv(folder / "effects.csv").drop(columns="verdict").to_csv(folder / "effects.csv", index=False)
    with pytest.raises(UserError, match="verdict"):
        build_study_report(folder)


def test_the_study_report_reads_files_only():
    """No import of the study, sweep or attack code: a copied study folder can be reported on anywhere."""
    package = Path(build_study_report.__code__.co_filename).parent
    for name in ("study.py", "study_plots.py"):
        tree = ast.parse((package / name).read_text())
        imported = {f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if re.search(r"(^|\.)(sweep|attacks|study)$", m)}, (name, imported)
