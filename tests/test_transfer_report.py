"""The transfer report on synthetic transfer folders: transfer.csv and transfer_examples.csv of the
transfer contract written with pandas from chosen per-image outcomes, so these tests need no model,
no attack and no checkpoint, and every number they check is computed by hand from those outcomes."""
from __future__ import annotations

import ast
import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape

from robust_attn.errors import UserError
from robust_attn.report.legacy import baseline_name, is_attention
from robust_attn.report.transfer import TRANSFER_VERDICT_RULE, build_transfer_report, decide_asymmetry, transfer_answers
from robust_attn.results import wilson_interval

from .pages import section, text, top_html

ROOT = Path(__file__).resolve().parents[1]
N = 40
BASE = "vgg_c10s"
ATT = "vgg-att3-concat-pc_c10s"
PGD = '{"steps":10}'
SHA = {BASE: "ab" * 32, ATT: "cd" * 32}
EPS = ((0.0, "0"), (8 / 255, "8/255"))
CLEAN = {BASE: set(range(34)), ATT: set(range(36))}  # images each model gets right without attack
# Per-image robust sets at 8/255, (source, target) -> indices the target still classifies correctly.
# Baseline -> attention keeps 0..24 (62.5%), attention -> baseline keeps 0..17, 30, 31 (50.0%): 7 images
# are fooled only in the attention -> baseline direction (18..24), 2 only in the other (30, 31).
SOUND = {(ATT, ATT): set(range(10)), (BASE, BASE): set(range(5)),
         (BASE, ATT): set(range(25)), (ATT, BASE): set(range(18)) | {30, 31}}


def _mcnemar_by_hand(b: int, c: int) -> float:
    """Two-sided exact McNemar: twice the smaller binomial tail of the discordant counts, capped at 1."""
    k, m = min(b, c), b + c
    return min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m)


def write_folder(folder: Path, robust: dict[tuple[str, str], set[int]], *, names: dict[str, str] | None = None,
                 examples: bool = True, diagonal: bool = True, runs: bool = True) -> Path:
    """A transfer folder for BASE and ATT (renamed by ``names``) x EPS under pgd, from the per-image robust
    sets at 8/255 (at eps 0 every source gives the target's clean outcome)."""
    names = names or {}
    folder.mkdir(parents=True, exist_ok=True)
    cells, rows = [], []
    for eps, label in EPS:
        for (source, target), kept in robust.items():
            if source == target and not diagonal:
                continue
            kept = CLEAN[target] if eps == 0 else kept
            k = len(kept)
            low, high = wilson_interval(k, N)
            src, tgt = names.get(source, source), names.get(target, target)
            cells.append({"source": src, "source_sha256": SHA[source], "target": tgt, "target_sha256": SHA[target],
                          "dataset": "cifar10-subset", "n": N, "attack": "pgd", "attack_params": PGD, "norm": "Linf",
                          "eps": eps, "eps_label": label, "n_correct": k, "accuracy": k / N, "ci_low": low,
                          "ci_high": high, "clean_accuracy": len(CLEAN[target]) / N, "white_box": src == tgt,
                          "seed": 0, "version": "0.2.0", "seconds": 1.5})
            rows += [{"source": src, "target": tgt, "dataset": "cifar10-subset", "n": N, "attack": "pgd",
                      "attack_params": PGD, "eps_label": label,
                      "index": i, "label": 3, "clean_pred": 3 if i in CLEAN[target] else 5,
                      "adv_pred": 3 if i in kept else 5, "robust": int(i in kept)} for i in range(N)]
    pd.DataFrame(cells).to_csv(folder / "transfer.csv", index=False)
    if examples:
        pd.DataFrame(rows).to_csv(folder / "transfer_examples.csv", index=False)
    if runs:
        start = {"event": "start", "run_id": "r1", "time": "2025-01-01T10:00:00+0000",
                 "command": "robust-attn transfer --attack pgd --eps 0:8:8",
                 "settings": {"n": N, "seed": 0, "channels_last": True, "data_dir": None, "eps_labels": ["0", "8/255"]},
                 "attacks": [{"name": "pgd", "params": {"steps": 10}}],
                 "checkpoints": [{"name": names.get(m, m)} for m in (BASE, ATT)], "planned": []}
        end = {"event": "end", "run_id": "r1", "status": "finished", "wall_seconds": 12.4}
        (folder / "runs.jsonl").write_text(json.dumps(start) + "\n" + json.dumps(end) + "\n")
    return folder


def _check_row(page: str) -> str:
    """The status cell of the sanity check's table."""
    m = re.search(r'<td class="name status-\w+">([A-Z ]+)</td>', page)
    assert m, "no sanity status on the page"
    return m.group(1)


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> tuple[Path, str]:
    folder = write_folder(tmp_path_factory.mktemp("transfer") / "sound", SOUND)
    path = build_transfer_report(folder, command="robust-attn report --transfer X")
    return path, path.read_text()


def test_heatmap_per_eps(sound):
    path, page = sound
    assert path == path.parent / "index.html" and path.parent.name == "report"
    heatmaps = re.findall(r'<img class="heatmap" src="([^"]+)"', page)
    assert len(heatmaps) == len(EPS)
    for png in heatmaps:
        assert (path.parent / png).is_file() and (path.parent / png).with_suffix(".svg").is_file()
    for _, label in EPS:
        assert f"<h4>eps {label}</h4>" in page
    assert "<script" not in page  # no JavaScript


def test_asymmetry_numbers_and_mcnemar_by_hand(sound):
    path, page = sound
    table = pd.read_csv(path.parent / "transfer_asymmetry.csv", dtype={"eps_label": str})
    assert len(table) == len(EPS)
    row = table[table["eps_label"] == "8/255"].iloc[0]
    assert (row["attention"], row["baseline"]) == (ATT, BASE)
    assert row["to_attention_accuracy"] == 25 / N and row["to_baseline_accuracy"] == 20 / N
    assert row["difference"] == pytest.approx(5 / N)
    assert (row["fooled_only_attention"], row["fooled_only_baseline"]) == (2, 7)
    assert row["mcnemar_p"] == pytest.approx(_mcnemar_by_hand(2, 7), rel=1e-12)
    assert _mcnemar_by_hand(2, 7) == pytest.approx(92 / 512)
    zero = table[table["eps_label"] == "0"].iloc[0]
    # eps 0: each target's clean outcome; images 34, 35 are missed by the baseline alone
    assert (zero["fooled_only_attention"], zero["fooled_only_baseline"]) == (0, 2)
    assert zero["mcnemar_p"] == pytest.approx(_mcnemar_by_hand(0, 2)) and zero["difference"] == pytest.approx(2 / N)
    # the page: percent with one decimal, points with a sign, p as the sweep report writes it
    assert re.search(r"<td>62\.5 <span class=\"ci\">\[[\d.]+, [\d.]+\]</span></td>\s*<td>50\.0 ", page)
    assert "<td>+12.5</td><td>2</td><td>7</td>\n      <td>0.18</td><td>0.18</td>" in page  # McNemar p, Holm p
    # the family of the page's words: eps > 0 (here one test, so Holm p = p); eps 0 is the clean gap, untested
    assert row["p_holm"] == pytest.approx(row["mcnemar_p"]) and row["verdict"] == "no detectable difference"
    assert math.isnan(zero["p_holm"]) and zero["verdict"].startswith("not tested")


def test_sanity_passes_and_summary(sound):
    path, page = sound
    assert _check_row(page) == "PASS"
    banner = section(page, "banner")
    assert 'class="state-ok"' in banner and "Sanity checks: 1 of 1 passed; read the numbers as sound." in text(banner)
    summary = pd.read_csv(path.parent / "transfer_summary.csv", dtype={"eps_label": str})
    assert len(summary) == 2 * 2 * len(EPS) and not summary["sanity_flagged"].any()
    row = summary[(summary["source"] == BASE) & (summary["target"] == ATT) & (summary["eps_label"] == "8/255")].iloc[0]
    assert row["target_white_box_accuracy"] == 10 / N and row["difference_to_white_box"] == pytest.approx(15 / N)
    assert (row["fooled_only_by_transfer"], row["fooled_only_by_white_box"]) == (0, 15)
    assert (row["source_kind"], row["target_kind"]) == ("baseline", "attention")


def test_provenance(sound):
    _, page = sound
    assert "robust-attn transfer --attack pgd --eps 0:8:8" in page
    assert "finished" in page and "<td>12.4</td>" in page
    assert "robust-attn report --transfer X" in page
    assert "abababababababab&hellip;" in page and "cdcdcdcdcdcdcdcd&hellip;" in page


def test_provenance_is_folded_with_human_settings(sound):
    _, page = sound
    block = page[:page.index('id="provenance"')]
    assert block[block.rindex("<details"):].startswith('<details class="section">')  # closed
    prov = text(section(page, "provenance"))
    assert "n 40, seed 0, channels last on, data dir the embedded images" in prov
    assert "0, 8/255" in prov  # the run's eps grid
    assert not re.search(r"\b(None|True|False|nan)\b", prov), prov


def test_the_answer_opens_the_report(sound):
    path, page = sound
    top = top_html(page)
    assert top.index('id="banner"') < top.index('id="verdicts"') < top.index('class="key-figure"')
    key = re.search(r'class="key-figure"><img src="([^"]+)"', top).group(1)
    assert key in re.findall(r'<img class="heatmap" src="([^"]+)"', page)[-1:], "the largest eps of the main attack"
    assert (path.parent / key).stat().st_size > 0
    toc = page[page.index('<nav id="toc">'):page.index("</nav>")]
    assert re.findall(r'href="#([^"]+)"', toc) == ["heatmaps", "asymmetry", "sanity", "provenance"]
    for part in ("asymmetry", "sanity"):
        assert f'<section id="{part}"><h2>' in page, part
    block = page[:page.index('id="heatmaps"')]  # every eps' heatmap: details, closed (the key one is on top)
    assert block[block.rindex("<details"):].startswith('<details class="section">')
    rows = section(page, "asymmetry")
    assert re.search(r'<details class="more" id="asymmetry-rows-1"><summary>', rows)  # per-pair rows folded, closed
    assert '<div class="scroll">' in rows
    sentences = re.findall(r"<li>(.*?)</li>", section(page, "verdicts"), re.S)
    assert [text(s) for s in sentences] == [f"{ATT} vs {BASE}, pgd: no detectable difference (largest difference "
                                            "+12.5 points at 8/255, Holm p 0.18)."]
    assert " ".join(TRANSFER_VERDICT_RULE.split()) in text(section(page, "verdicts"))


# At 8/255 the attention model keeps 30 images of its baseline's examples, the baseline 10 of the attention
# model's, and every image the baseline keeps the attention model keeps too: 20 discordant pairs, one way.
APART = {**SOUND, (BASE, ATT): set(range(30)), (ATT, BASE): set(range(10))}


@pytest.mark.parametrize("robust, words", [
    (APART, "the attention model resists its baseline's examples better than the reverse at 8/255 (largest +50.0 "
            "points at 8/255)."),
    ({**SOUND, (BASE, ATT): set(range(10)), (ATT, BASE): set(range(30))},
     "the baseline resists the attention model's examples better than the reverse at 8/255 (largest -50.0 points "
     "at 8/255)."),
])
def test_a_pair_that_differs_is_said_to(tmp_path, robust, words):
    path = build_transfer_report(write_folder(tmp_path / "t", robust))
    sentences = [text(s) for s in re.findall(r"<li>(.*?)</li>", section(path.read_text(), "verdicts"), re.S)]
    assert sentences == [f"{ATT} vs {BASE}, pgd: {words}"]
    table = pd.read_csv(path.parent / "transfer_asymmetry.csv", dtype={"eps_label": str}).set_index("eps_label")
    assert table.loc["8/255", "mcnemar_p"] == pytest.approx(_mcnemar_by_hand(0, 20))
    assert table.loc["8/255", "verdict"] == ("more robust" if "attention model resists" in words else "less robust")


def test_the_words_are_held_to_one_holm_family():
    """Two tests at p 0.03 and 0.04: each below 0.05 alone, neither after Holm (0.06, 0.06); eps 0 is outside."""
    rows = pd.DataFrame({"attention": "a", "baseline": "b", "dataset": "d", "n": 40, "attack_label": ["pgd"] * 3,
                         "eps": [0.0, 4 / 255, 8 / 255], "eps_label": ["0", "4/255", "8/255"],
                         "difference": [0.1, 0.2, 0.3], "mcnemar_p": [0.001, 0.03, 0.04]})
    decided = decide_asymmetry(rows)
    assert decided["p_holm"].tolist()[1:] == pytest.approx([0.06, 0.06]) and math.isnan(decided["p_holm"][0])
    assert decided["verdict"].tolist()[1:] == ["no detectable difference"] * 2
    (answer,) = transfer_answers(decided)
    assert answer.tested and answer.findings == () and answer.largest_at == "8/255"
    strong = decide_asymmetry(rows.assign(mcnemar_p=[0.001, 0.001, 0.04]))
    (answer,) = transfer_answers(strong)
    assert [(f.verdict.value, f.eps, f.largest_at) for f in answer.findings] == [("more robust", "4/255-8/255", "8/255")]


def test_without_a_pair_the_page_says_so_in_one_line(tmp_path):
    path = build_transfer_report(write_folder(tmp_path / "t", {(ATT, ATT): set(range(10))}))
    page = path.read_text()
    verdicts = text(section(page, "verdicts"))
    assert "> No attention model with its baseline in both transfer directions in this folder, so no verdict" in verdicts
    assert "<li>" not in section(page, "verdicts")
    banner = section(page, "banner")
    assert 'class="state-partial"' in banner and "1 not tested" in text(banner)
    assert f"{ATT}: no single baseline model in this folder" in text(banner)


def test_without_per_image_outcomes_the_pair_is_not_tested(tmp_path):
    page = build_transfer_report(write_folder(tmp_path / "t", APART, examples=False)).read_text()
    (sentence,) = re.findall(r"<li>(.*?)</li>", section(page, "verdicts"), re.S)
    assert text(sentence) == f"{ATT} vs {BASE}, pgd: not tested (no paired test at eps > 0: transfer_examples.csv " \
                             "is missing)."


@pytest.mark.parametrize("wb_att, transferred, status", [
    (set(range(35)), set(range(5)), "FAIL"),  # transfer fools 30 of the 35 images the white box left robust
    (set(range(27)), set(range(25)) | {35}, "PASS"),  # 2 vs 1 discordant: a drop of one image, not significant
])
def test_sanity_transfer_stronger_than_white_box(tmp_path, wb_att, transferred, status):
    robust = {**SOUND, (ATT, ATT): wb_att, (BASE, ATT): transferred}
    path = build_transfer_report(write_folder(tmp_path / "t", robust))
    page = path.read_text()
    assert _check_row(page) == status
    summary = pd.read_csv(path.parent / "transfer_summary.csv", dtype={"eps_label": str})
    flagged = summary[summary["sanity_flagged"]]
    banner = section(page, "banner")
    if status == "FAIL":
        assert 'class="state-fail"' in banner and "gradient masking" in banner.lower()
        assert "FAIL: transfer is not stronger than white-box: 1 of" in text(banner)
        assert f"{BASE} \u2192 {ATT}, pgd eps 8/255" in html.unescape(banner)  # the flagged transfer, named first
        assert f"{BASE} \u2192 {ATT}, pgd eps 8/255: transfer 12.5% vs white box 87.5%" in html.unescape(page)
        assert flagged[["source", "target", "eps_label"]].values.tolist() == [[BASE, ATT, "8/255"]]
        assert flagged["sanity_p"].iloc[0] == pytest.approx(0.5 ** 30)
    else:
        assert flagged.empty and "largest non-significant drop" in page and 'class="state-ok"' in banner


def test_sanity_without_examples_compares_accuracies(tmp_path):
    robust = {**SOUND, (ATT, ATT): set(range(35)), (BASE, ATT): set(range(5))}
    path = build_transfer_report(write_folder(tmp_path / "t", robust, examples=False))
    page = path.read_text()
    assert _check_row(page) == "FAIL" and "no per-example data" in page
    assert "transfer_examples.csv is missing" in page
    table = pd.read_csv(path.parent / "transfer_asymmetry.csv")
    assert table["mcnemar_p"].isna().all()


def test_sanity_not_tested_without_diagonal(tmp_path):
    path = build_transfer_report(write_folder(tmp_path / "t", SOUND, diagonal=False), out=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "index.html"
    assert _check_row(path.read_text()) == "NOT TESTED"


def test_hostile_model_name_is_escaped(tmp_path):
    hostile = 'vgg-att3-<script>alert("$x$")</script>_c10s'
    assert is_attention(hostile) and baseline_name(hostile) == BASE
    path = build_transfer_report(write_folder(tmp_path / "t", SOUND, names={ATT: hostile}))
    page = path.read_text()
    assert "<script>" not in page
    assert str(escape(hostile)) in page
    assert len(re.findall(r'<img class="heatmap"', page)) == len(EPS)
    assert "<h4><span class=\"attn\">" + str(escape(hostile)) in page  # the pair was found


def test_pairing_rule():
    assert baseline_name("vgg-att3-concat-pc_c10s") == "vgg_c10s"
    assert baseline_name("vgg-att3-concat-pc_c10s_seed1") == "vgg_c10s_seed1"
    assert baseline_name("resnet-att2-concat-pc_c10s") == "resnet_c10s"
    assert baseline_name("vgg_c10s") is None and not is_attention("vgg_c10s")
    assert baseline_name("vgg-att3-concat-pc") is None  # no suffix: no dataset to match
    # the attention modules in wide use pair with their backbone too
    assert baseline_name("resnet-se_c10s") == "resnet_c10s" and is_attention("resnet-se_c10s")
    assert baseline_name("vgg-cbam_c10s_seed2") == "vgg_c10s_seed2"
    # a user's dashed name is not a variant of its first word
    assert baseline_name("tiny-cnn_c10s") is None and not is_attention("resnet-sep_c10s")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_errors_are_one_line(tmp_path):
    with pytest.raises(UserError) as exc:
        build_transfer_report(tmp_path / "absent")
    assert "does not exist" in _one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as exc:
        build_transfer_report(tmp_path / "empty")
    assert "lacks transfer.csv" in _one_line(exc)
    assert not (tmp_path / "empty" / "report").exists()

    folder = write_folder(tmp_path / "bad", SOUND)
    good = pd.read_csv(folder / "transfer.csv", dtype=str, keep_default_na=False)
    for frame, words in ((good.drop(columns="accuracy"), "lacks the columns ['accuracy']"),
                         (good.assign(accuracy="high"), "not a number"),
                         (good.assign(accuracy="1.5"), "accuracy must lie in [0, 1]"),
                         (good.iloc[:0], "holds no rows")):
        frame.to_csv(folder / "transfer.csv", index=False)
        with pytest.raises(UserError) as exc:
            build_transfer_report(folder)
        assert words in _one_line(exc)
    (folder / "transfer.csv").write_text("")
    with pytest.raises(UserError) as exc:
        build_transfer_report(folder)
    assert "cannot read" in _one_line(exc)
    good.to_csv(folder / "transfer.csv", index=False)
    examples = pd.read_csv(folder / "transfer_examples.csv")
    examples.assign(robust=2).to_csv(folder / "transfer_examples.csv", index=False)
    with pytest.raises(UserError) as exc:
        build_transfer_report(folder)
    assert "'robust' must hold 0 or 1" in _one_line(exc)


FORBIDDEN = ("robust_attn.sweep", "robust_attn.attacks", "robust_attn.transfer")


def test_report_imports_no_sweep_attack_or_transfer_code():
    for name in ("transfer", "transfer_plots"):
        tree = ast.parse((ROOT / "robust_attn" / "report" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = ["robust_attn", "robust_attn.report"][node.level == 1] if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            assert not any(t == f or t.startswith(f + ".") for t in targets for f in FORBIDDEN), (name, targets)
    code = ("import sys, robust_attn.report.transfer; "
            f"print([m for m in sys.modules if m.startswith({FORBIDDEN!r})])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_a_folder_with_two_n_keeps_each_runs_paired_tests(tmp_path):
    """Runs on -n 40 and -n 20 in one folder: each keeps its own McNemar test (the per-image outcomes
    of the two runs used to collide on the image index and the test went missing)."""
    folder = write_folder(tmp_path / "t", SOUND)
    cells, examples = pd.read_csv(folder / "transfer.csv"), pd.read_csv(folder / "transfer_examples.csv")
    small = examples[examples["index"] < 20].assign(n=20)
    counts = small.groupby(["source", "target", "eps_label"])["robust"].sum()
    smaller = cells.assign(n=20, n_correct=[int(counts[(r.source, r.target, r.eps_label)]) for r in cells.itertuples()])
    smaller["accuracy"] = smaller["n_correct"] / 20
    pd.concat([cells, smaller]).to_csv(folder / "transfer.csv", index=False)
    pd.concat([examples, small]).to_csv(folder / "transfer_examples.csv", index=False)
    build_transfer_report(folder)
    asym = pd.read_csv(folder / "report" / "transfer_asymmetry.csv")
    at8 = asym[asym["eps_label"] == "8/255"].set_index("n")
    assert set(at8.index) == {20, 40} and at8["mcnemar_p"].notna().all()
    assert at8.loc[40, "mcnemar_p"] == pytest.approx(_mcnemar_by_hand(7, 2))


def _described_cells(models: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Transfer cells (every source x target) of models given by their recorded facts (names follow no rule)."""
    def end(role: str, name: str) -> dict[str, str]:
        facts = {"architecture": "", "family": "vgg", "baseline": "", "attention_maps": "none",
                 "training_threat_model": "standard", "trained_on": "cifar10", "training_seed": "0",
                 "model_args": "{}", **models[name]}
        return {role: name, **{f"{role}_{k}": v for k, v in facts.items()}}
    return pd.DataFrame([{**end("source", s), **end("target", t), "attack": "fgsm", "attack_kind": "single-step",
                          "ce_gradient": True} for s in models for t in models])


def _pairs(models: dict[str, dict[str, str]]):
    from robust_attn.report.legacy import describe_transfer
    from robust_attn.report.transfer import model_descriptions, pairing

    cells = describe_transfer(_described_cells(models))
    return pairing(cells, model_descriptions(cells))


def test_seed_replicas_in_one_transfer_folder_pair_by_training_seed():
    """Every replica trained on the same data: the recorded training seed tells the baselines apart."""
    found = _pairs({"b0": {"architecture": "vgg", "training_seed": "0"},
                    "b1": {"architecture": "vgg", "training_seed": "1"},
                    "a0": {"architecture": "vgg-att", "baseline": "vgg", "training_seed": "0"},
                    "a1": {"architecture": "vgg-att", "baseline": "vgg", "training_seed": "1"}})
    assert sorted(found.pairs) == [("a0", "b0"), ("a1", "b1")] and found.unpaired == []
    # an unknown seed (a user's model, a folder that did not record it) matches either: no single baseline
    assert _pairs({"b0": {"architecture": "vgg", "training_seed": "0"},
                   "b1": {"architecture": "vgg", "training_seed": "1"},
                   "a": {"architecture": "vgg-att", "baseline": "vgg", "training_seed": ""}}).unpaired == ["a"]


def test_a_depth_8_variant_is_not_paired_with_a_depth_20_baseline():
    found = _pairs({"r20": {"architecture": "resnet", "model_args": '{"depth":20}'},
                    "se8": {"architecture": "resnet-se", "baseline": "resnet", "model_args": '{"depth":8}'}})
    assert found.pairs == [] and found.unpaired == ["se8"]
    found = _pairs({"r20": {"architecture": "resnet", "model_args": '{"depth":20}'},
                    "r8": {"architecture": "resnet", "model_args": '{"depth":8}'},
                    "se8": {"architecture": "resnet-se", "baseline": "resnet", "model_args": '{"depth":8}'}})
    assert found.pairs == [("se8", "r8")]


def test_0_3_seed_replicas_still_pair_by_name(tmp_path):
    """A 0.3 transfer folder records no seed: its names' suffixes pair the replicas, as before."""
    from robust_attn.report.legacy import describe_transfer
    from robust_attn.report.transfer import model_descriptions, pairing

    names = ["vgg_c10s", "vgg_c10s_seed1", "vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc_c10s_seed1"]
    cells = describe_transfer(pd.DataFrame([{"source": s, "target": t, "attack": "fgsm"} for s in names
                                            for t in names]))
    found = pairing(cells, model_descriptions(cells))
    assert sorted(found.pairs) == [("vgg-att3-concat-pc_c10s", "vgg_c10s"),
                                   ("vgg-att3-concat-pc_c10s_seed1", "vgg_c10s_seed1")]
