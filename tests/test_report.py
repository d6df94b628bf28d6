from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from robust_attn.report import build_report
from robust_attn.results import read_results_csv
from robust_attn.sweep import sweep

from .conftest import run_cli

SECTIONS = ["provenance", "accuracy", "summary", "attention-vs-baseline", "attention-under-attack", "sanity"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    sweep(["vgg_c10s", "vgg-att2-concat-pc_c10s"], ["fgsm", "noise"], "0,4,8", n=64, out=d / "a", per_example=True,
          provenance={"command": "robust-attn sweep (test)"})
    sweep(["vgg_c10s", "vgg-att2-concat-pc_c10s"], ["pgd"], "0,4,8", n=64, out=d / "b", per_example=True)
    return d


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    build_report([results / "a", results / "b"], out, panel_images=4, shift_images=16)
    return out


def test_report_has_every_section_and_its_files(report):
    html = (report / "index.html").read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    for attack in ("fgsm", "noise", "pgd"):  # two result folders merged into one report
        assert (report / f"accuracy_{attack}.png").stat().st_size > 0 and (report / f"accuracy_{attack}.svg").exists()
        assert f'src="accuracy_{attack}.png"' in html
    assert (report / "attention_vgg-att2-concat-pc_c10s.png").exists() and (report / "attention_shift.png").exists()
    assert "robust-attn sweep (test)" in html and "McNemar" in html
    assert "<script" not in html.lower(), "the report needs no JavaScript"
    assert "http://" not in html and "https://" not in html, "no network resources"
    diffs = pd.read_csv(report / "attention_vs_baseline.csv")
    assert set(diffs["attack"]) == {"fgsm", "noise", "pgd"} and diffs["mcnemar_p"].between(0, 1).all()
    shift = pd.read_csv(report / "attention_shift.csv")
    assert set(shift["outcome"]) <= {"broken", "not broken"} and shift["js_distance"].between(0, 1).all()


def test_sanity_checks_pass_on_a_real_sweep(report):
    html = (report / "index.html").read_text()
    assert 'id="sanity-failures"' not in html
    assert html.count(">PASS<") >= 4 and "NOT TESTED" in html  # the grid stops below 32/255


def test_summary_csv_round_trips_with_numeric_columns(report):
    summary = pd.read_csv(report / "summary.csv")
    assert {"attack", "model", "acc 0", "acc 8/255", "ci_low 8/255", "ci_high 8/255"} <= set(summary.columns)
    numeric = [c for c in summary.columns if c.startswith(("acc ", "ci_")) or c in ("width", "n", "clean_accuracy")]
    assert all(pd.api.types.is_numeric_dtype(summary[c]) for c in numeric)
    assert len(summary) == 6  # 3 attacks x 2 models


def _edited(results, tmp_path, edit) -> Path:
    d = tmp_path / "edited"
    d.mkdir()
    frame = read_results_csv(results / "a" / "results.csv")
    edit(frame).to_csv(d / "results.csv", index=False)
    return d


def test_broken_monotonicity_is_reported_as_fail(results, tmp_path):
    def bump(frame):
        rows = frame.index[(frame["attack"] == "fgsm") & (frame["eps_label"] == "8/255")]
        frame.loc[rows, "accuracy"] = 0.99
        return frame

    out = tmp_path / "report"
    build_report([_edited(results, tmp_path, bump)], out, panel_images=0, shift_images=0)
    html = (out / "index.html").read_text()
    assert 'id="sanity-failures"' in html
    top = html[: html.index('id="provenance"')]
    assert "accuracy non-increasing in eps" in top and "0.9900 at 8/255" in top


def test_untrusted_model_names_are_escaped(results, tmp_path):
    def rename(frame):
        frame["model"] = frame["model"].map({"vgg_c10s": "<script>alert(1)</script>",
                                             "vgg-att2-concat-pc_c10s": "=HYPERLINK(\"x\")"})
        return frame

    out = tmp_path / "report"
    build_report([_edited(results, tmp_path, rename)], out, panel_images=0, shift_images=0)
    html = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    models = set(pd.read_csv(out / "results.csv")["model"])
    assert "'=HYPERLINK(\"x\")" in models and not any(m.startswith("=") for m in models)
    assert all(p.resolve().parent == out.resolve() for p in out.iterdir())


def test_report_cli_and_bad_input(results, tmp_path):
    ok = run_cli("report", str(results / "a"), "--out", str(tmp_path / "r"), "--panel-images", "2", "--shift-images", "8")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "r" / "index.html").exists()
    missing = run_cli("report", str(tmp_path / "nope"), "--out", str(tmp_path / "r2"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.csv").write_text("model,eps\nx,0\n")
    bad = run_cli("report", str(tmp_path / "bad"), "--out", str(tmp_path / "r3"))
    assert bad.returncode == 2 and "lacks result columns" in bad.stderr and not (tmp_path / "r3").exists()
