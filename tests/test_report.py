from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robust_attn.report import build_report
from robust_attn.report.legacy import describe_results
from robust_attn.results import RUNS_FILE, read_examples_csv, read_results_csv
from robust_attn.sweep import AttackSpec, run_sweep

from .conftest import ROOT, invoke, run_cli
from .pages import section, text, top_html

SECTIONS = ["banner", "verdicts", "toc", "accuracy", "attention-vs-baseline", "sanity", "summary", "attention-under-attack",
            "attention-robustness", "provenance"]
MODELS = ["vgg_c10s", "vgg-att2-concat-pc_c10s"]
N = 64


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    run_sweep(MODELS, ["fgsm", "noise"], "0,4,8", n=N, out=d / "a", per_example=True,
          provenance={"command": "robust-attn sweep (test)"})
    run_sweep(MODELS, ["pgd"], "0,4,8", n=N, out=d / "b", per_example=True)
    run_sweep(MODELS, [AttackSpec("pgd", {"steps": 3})], "0,8", n=N, out=d / "c", per_example=True,
          provenance={"command": "robust-attn sweep --attack pgd --attack-arg steps=3 (test)"})
    return d


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    build_report([results / "a", results / "b"], out, panel_images=4, shift_images=16)
    return out


def _banner(page: str) -> str:
    return text(top_html(page))


def test_report_has_every_section_and_its_files(report):
    page = (report / "index.html").read_text()
    for part in SECTIONS:
        assert f'id="{part}"' in page, part
    for attack in ("fgsm", "noise", "pgd"):  # two result folders merged into one report
        assert (report / f"accuracy_{attack}.png").stat().st_size > 0 and (report / f"accuracy_{attack}.svg").exists()
        assert f'src="accuracy_{attack}.png"' in page
    assert (report / "accuracy_worst_case_over_fgsm_noise_pgd.png").exists()
    assert (report / "attention_vgg-att2-concat-pc_c10s.png").exists() and (report / "attention_shift.png").exists()
    assert "robust-attn sweep (test)" in page and "McNemar" in page
    assert "<script" not in page.lower(), "the report needs no JavaScript"
    assert "http://" not in page and "https://" not in page, "no network resources"
    diffs = pd.read_csv(report / "attention_vs_baseline.csv")
    assert set(diffs["attack"]) == {"fgsm", "noise", "pgd"} and diffs["mcnemar_p"].between(0, 1).all()
    shift = pd.read_csv(report / "attention_shift.csv")
    assert set(shift["outcome"]) <= {"broken", "not broken"} and shift["js_distance"].between(0, 1).all()
    assert set(shift["attack"]) == {"fgsm"}  # the default panel attack


def test_the_key_figure_shows_the_strongest_kind_of_attack_that_ran(report):
    """fgsm, noise (folder a) and pgd (folder b): pgd's rows say iterative, the strongest kind, so the first
    screen's figure is pgd's, not the first name in the alphabet's (fgsm) or random noise's."""
    page = (report / "index.html").read_text()
    assert 'class="key-figure"><img src="accuracy_pgd.png"' in page


def test_tables_lead_with_per_eps_accuracy_and_show_the_worst_case_beside_it(report):
    page = (report / "index.html").read_text()
    assert "worst case (robust to the attack at every eps' &le; eps)" in page
    results = read_results_csv(report / "results.csv")
    mine = (results["model"] == "vgg_c10s") & (results["attack"] == "fgsm")
    row = results[mine & (results["eps_label"] == "8/255")].iloc[0]
    assert row.worst_case_accuracy < row.accuracy  # per-eps FGSM is not the envelope
    table = page[page.index("<h3>fgsm &middot;"):page.index("<h3>noise &middot;")]
    cells = table[table.index(">vgg_c10s</td>"):].split("</tr>")[0].split("<td")[1:]
    last = cells[-1]  # eps 8/255
    assert re.search(rf">{100 * row.accuracy:.1f} <span class=\"ci\">", last)
    assert last.index(f"{100 * row.accuracy:.1f}") < last.index(f"worst case {100 * row.worst_case_accuracy:.1f}")


def test_summary_csv_is_tidy_and_numeric_with_the_worst_case_across_attacks(report, results):
    summary = pd.read_csv(report / "summary.csv")
    numeric = ["width", "n", "eps", "clean_accuracy", "n_correct", "accuracy", "ci_low", "ci_high",
               "worst_case_n_correct", "worst_case_accuracy", "worst_case_ci_low", "worst_case_ci_high"]
    assert all(pd.api.types.is_numeric_dtype(summary[c]) for c in numeric), summary.dtypes
    own = summary[summary["source"] == "attack"]
    assert len(own) == 3 * 2 * 3 and set(own["attack_label"]) == {"fgsm", "noise", "pgd"}
    across = summary[summary["source"] == "across attacks"]
    assert set(across["attack"]) == {"worst case over fgsm+noise+pgd"} and len(across) == 2 * 3
    # AutoAttack's per-point worst case: robust only if robust under every attack at that eps
    examples = pd.concat([read_examples_csv(results / f / "per_example.csv") for f in "ab"])
    mine = examples[(examples["model"] == "vgg_c10s") & (examples["eps_label"] == "8/255")]
    per_point = mine.groupby("index")[["robust", "worst_case_robust"]].min()
    row = across[(across["model"] == "vgg_c10s") & (across["eps_label"] == "8/255")].iloc[0]
    assert row.n_correct == per_point["robust"].sum() and row.worst_case_n_correct == per_point["worst_case_robust"].sum()
    fgsm = own[(own["model"] == "vgg_c10s") & (own["attack"] == "fgsm") & (own["eps_label"] == "8/255")].iloc[0]
    assert row.accuracy <= fgsm.accuracy and row.worst_case_accuracy <= fgsm.worst_case_accuracy


def test_sanity_checks_pass_on_a_real_sweep(report):
    page = (report / "index.html").read_text()
    assert 'id="sanity-failures"' not in page
    sanity = pd.read_csv(report / "sanity.csv")
    assert (sanity["status"] == "PASS").sum() >= 5 and "NOT TESTED" in set(sanity["status"])  # grid stops below 32/255
    assert set(sanity["status"]) <= {"PASS", "NOT TESTED"}


def test_two_parameter_sets_of_one_attack_are_two_curves(results, tmp_path):
    out = tmp_path / "report"
    build_report([results / "a", results / "b", results / "c"], out, panel_images=0, shift_images=0)
    summary = pd.read_csv(out / "summary.csv")
    own = summary[summary["source"] == "attack"]
    assert {"pgd (steps=10)", "pgd (steps=3)"} <= set(own["attack_label"])
    for label, rows in (("pgd (steps=10)", 3), ("pgd (steps=3)", 2)):
        assert len(own[(own["attack_label"] == label) & (own["model"] == "vgg_c10s")]) == rows
    page = (out / "index.html").read_text()
    assert "<h3>pgd (steps=3) &middot;" in page and "<h3>pgd (steps=10) &middot;" in page
    assert (out / "accuracy_pgd_steps_3.png").exists() and (out / "accuracy_pgd_steps_10.png").exists()
    diffs = pd.read_csv(out / "attention_vs_baseline.csv")
    assert {"pgd (steps=10)", "pgd (steps=3)"} <= set(diffs["attack_label"])
    provenance = section(page, "provenance")
    assert "robust-attn sweep (test)" in provenance and "--attack-arg steps=3 (test)" in provenance
    assert provenance.count("<code>Python API</code>") == 1  # folder b's run


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
            names += [a.name for a in node.names]
    return names


def test_report_reads_results_folders_only(report, results, tmp_path):
    for path in (ROOT / "robust_attn" / "report").glob("*.py"):  # anywhere in the file, functions included
        bad = [n for n in _imports(path) if re.search(r"\b(attacks|sweep|checkpoints)\b", n)]
        assert not bad, (path.name, bad)
    code = (
        "import sys, torch\n"
        "torch.load = None\n"  # no checkpoint may be read
        "from robust_attn.report import build_report\n"
        f"build_report([{str(results / 'a')!r}], {str(tmp_path / 'r')!r}, panel_images=2, shift_images=8)\n"
        "assert not any(m.startswith(('robust_attn.attacks', 'robust_attn.sweep', 'robust_attn.checkpoints', "
        "'torchattacks', 'foolbox')) for m in sys.modules), sorted(m for m in sys.modules if 'robust_attn' in m)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "attention_vgg-att2-concat-pc_c10s.png").exists()


def test_panel_attack_is_chosen_among_attacks_with_artifacts(results, tmp_path):
    out = tmp_path / "pgd"
    build_report([results / "a", results / "b"], out, panel_images=2, shift_images=8, panel_attack="pgd")
    assert set(pd.read_csv(out / "attention_shift.csv")["attack"]) == {"pgd"}
    assert "pgd at eps 8/255" in (out / "index.html").read_text()
    bad = invoke("report", str(results / "a"), "--out", str(tmp_path / "noise"), "--panel-attack", "noise")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "has no attention artifacts" in bad.stderr and "fgsm" in bad.stderr


def test_incomplete_folders_and_their_missing_cells_are_named_in_the_banner(tmp_path):
    out = tmp_path / "stopped"
    run_sweep(["vgg_c10s"], ["fgsm"], "0,4,8", n=32, out=out, per_example=True)  # a finished run

    def stop(event):
        if event.done == 2 and not event.stored:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(["vgg_c10s"], ["noise"], "0,1,2,3,4", n=32, out=out, per_example=True, on_cell=stop,
              provenance={"command": "robust-attn sweep --attack noise (stopped)"})
    build_report([out], tmp_path / "r1", panel_images=0, shift_images=0)
    banner = _banner((tmp_path / "r1" / "index.html").read_text())
    assert f"results folder {out} is incomplete" in banner and "(interrupted)" in banner
    assert "3 of 5 planned cells are missing from results.csv, e.g. vgg_c10s noise eps 2/255" in banner
    # a killed run leaves a start record and no end record
    log = out / RUNS_FILE
    records = [json.loads(line) for line in log.read_text().splitlines()]
    kept = [r for r in records if not (r["event"] == "end" and r.get("status") == "interrupted")]
    log.write_text("".join(json.dumps(r) + "\n" for r in kept))
    build_report([out], tmp_path / "r2", panel_images=0, shift_images=0)
    page = (tmp_path / "r2" / "index.html").read_text()
    assert "no end record (crashed, killed, or still running)" in _banner(page)
    provenance = section(page, "provenance")
    assert "<code>Python API</code>" in provenance and "robust-attn sweep --attack noise (stopped)" in provenance
    # finishing the grid later completes the folder: no banner
    run_sweep(["vgg_c10s"], ["noise"], "0,1,2,3,4", n=32, out=out, per_example=True)
    build_report([out], tmp_path / "r3", panel_images=0, shift_images=0)
    assert "incomplete" not in _banner((tmp_path / "r3" / "index.html").read_text())


def test_untrusted_model_names_are_escaped(results, tmp_path):
    d = tmp_path / "edited"
    d.mkdir()
    frame = read_results_csv(results / "a" / "results.csv")
    frame["model"] = frame["model"].map({"vgg_c10s": "<script>alert(1)</script>",
                                         "vgg-att2-concat-pc_c10s": "=HYPERLINK(\"x\")"})
    frame.to_csv(d / "results.csv", index=False)
    out = tmp_path / "report"
    build_report([d], out, panel_images=0, shift_images=0)
    page = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    models = set(pd.read_csv(out / "results.csv")["model"])
    assert "'=HYPERLINK(\"x\")" in models and not any(m.startswith("=") for m in models)
    assert all(p.resolve().parent == out.resolve() for p in out.iterdir())


def test_report_cli_and_bad_input(results, tmp_path):
    ok = run_cli("report", str(results / "a"), "--out", str(tmp_path / "r"), "--panel-images", "2", "--shift-images", "8")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "r" / "index.html").exists()
    missing = invoke("report", str(tmp_path / "nope"), "--out", str(tmp_path / "r2"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.csv").write_text("model,eps\nx,0\n")
    bad = invoke("report", str(tmp_path / "bad"), "--out", str(tmp_path / "r3"))
    assert bad.returncode == 2 and "lacks result columns" in bad.stderr and not (tmp_path / "r3").exists()


def test_attention_shift_comes_from_the_artifact(report, results):
    """The shift curve is the Jensen-Shannon distance between the artifact's clean and adversarial maps."""
    from scipy.spatial.distance import jensenshannon

    (path,) = (results / "a" / "attention").glob("vgg-att2-concat-pc_c10s__fgsm__*.npz")
    with np.load(path) as z:
        e = list(z["eps_label"]).index("8/255")
        k = 16
        js = np.mean([[jensenshannon(c.ravel().astype(float), a.ravel().astype(float), base=2)
                       for c, a in zip(z[f"clean_maps_{j}"][:k], z[f"adv_maps_{j}"][e, :k])]
                      for j in range(len(z["layers"]))], axis=0)
        broken = (z["clean_pred"][:k] == z["label"][:k]) & (z["adv_pred"][e, :k] != z["label"][:k])
    shift = pd.read_csv(report / "attention_shift.csv")
    row = shift[(shift["eps_label"] == "8/255") & (shift["outcome"] == "broken")].iloc[0]
    assert row["count"] == broken.sum() and np.isclose(row["js_distance"], js[broken].mean())


def test_each_variant_is_compared_with_its_own_backbone():
    """ResNet variants against resnet, VGG variants against vgg (same width and data), SE included."""
    from robust_attn.report.tables import attention_vs_baseline

    rows = []
    for model, arch, acc in (("vgg_c10s", "vgg", 0.30), ("resnet_c10s", "resnet", 0.20),
                             ("vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc", 0.35),
                             ("resnet-att2-concat-pc_c10s", "resnet-att2-concat-pc", 0.26),
                             ("resnet-se_c10s", "resnet-se", 0.21)):
        rows.append({"model": model, "architecture": arch, "width": 0.5, "trained_on": "cifar10-subset",
                     "dataset": "cifar10-embedded", "n": 100, "attack": "fgsm", "attack_params": "{}",
                     "attack_label": "fgsm", "norm": "Linf", "eps": 1 / 255, "eps_label": "1/255", "accuracy": acc,
                     "worst_case_accuracy": acc})
    diffs = attention_vs_baseline(describe_results(pd.DataFrame(rows)), None, set()).set_index("model")
    assert diffs["baseline"].to_dict() == {"vgg-att3-concat-pc_c10s": "vgg_c10s", "resnet-att2-concat-pc_c10s": "resnet_c10s",
                                           "resnet-se_c10s": "resnet_c10s"}
    assert diffs.loc["resnet-att2-concat-pc_c10s", "difference"] == pytest.approx(0.06)


def _cells(*models: tuple[str, str, float], n: int = 100) -> list[dict]:
    return [{"model": model, "architecture": arch, "width": 0.125, "trained_on": "cifar10-subset",
             "dataset": "cifar10-embedded", "n": n, "attack": "fgsm", "attack_params": "{}", "attack_label": "fgsm",
             "norm": "Linf", "eps": 1 / 255, "eps_label": "1/255", "accuracy": acc, "worst_case_accuracy": acc}
            for model, arch, acc in models]


def test_a_variant_with_several_possible_baselines_is_compared_with_none():
    """A folder with seed replicas of the backbone (a study's member sweep) holds several models that
    could each be the baseline: an arbitrary pick would be a join that matches two."""
    from robust_attn.report.tables import ambiguous_baselines, attention_vs_baseline

    frame = describe_results(pd.DataFrame(_cells(("vgg_c10s", "vgg", 0.30), ("vgg_c10s_seed1", "vgg", 0.20),
                                ("vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc", 0.35),
                                ("vgg-att3-concat-pc_c10s_seed1", "vgg-att3-concat-pc", 0.33))))
    assert attention_vs_baseline(frame, None, set()).empty
    assert ambiguous_baselines(frame) == {
        (m, "cifar10-embedded", 100): ["vgg_c10s", "vgg_c10s_seed1"]
        for m in ("vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc_c10s_seed1")}
    one = frame[frame["model"] != "vgg_c10s_seed1"]
    assert set(attention_vs_baseline(one, None, set())["baseline"]) == {"vgg_c10s"} and not ambiguous_baselines(one)


def test_two_n_in_one_folder_are_two_comparisons_each_with_its_own_cells():
    """The same models on n = 50 and n = 60: each variant row pairs with the baseline cell of its own n,
    and the report names the evaluation in each row."""
    from robust_attn.report.tables import attention_vs_baseline, shown_models

    frame = describe_results(pd.DataFrame(
        _cells(("vgg_c10s", "vgg", 0.30), ("vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc", 0.36), n=50)
        + _cells(("vgg_c10s", "vgg", 0.20), ("vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc", 0.22), n=60)))
    diffs = attention_vs_baseline(frame, None, set()).set_index("n")
    assert diffs["difference"].to_dict() == pytest.approx({50: 0.06, 60: 0.02})
    assert sorted(shown_models(diffs.reset_index())["model"]) == [
        "vgg-att3-concat-pc_c10s (cifar10-embedded, n=50)", "vgg-att3-concat-pc_c10s (cifar10-embedded, n=60)"]


def test_the_member_sweep_of_a_study_says_why_its_variants_have_no_baseline(tmp_path):
    folder = tmp_path / "sweep"
    run_sweep([str(ROOT / "models" / f"{m}.pt") for m in ("vgg_c10s", "vgg_c10s_seed1", "vgg-att3-concat-pc_c10s")],
          ["fgsm"], "0,1", n=8, out=folder)
    build_report([folder], tmp_path / "report", panel_images=0, shift_images=0)
    banner = _banner((tmp_path / "report" / "index.html").read_text())
    assert ("vgg-att3-concat-pc_c10s (evaluated on cifar10-embedded, n=8) is not compared with a baseline: 2 models "
            "could be its baseline (vgg_c10s, vgg_c10s_seed1)") in banner
    assert pd.read_csv(tmp_path / "report" / "attention_vs_baseline.csv").empty
