"""The report section "Is the attention itself robust?": built from a real sweep's attention artifacts
(attention-shift and pgd on the shipped vgg-att3-concat-pc_c10s), plus synthetic-artifact unit tests
of the argmax-moved fraction and of the rows behind the CSV."""
from __future__ import annotations

import html
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from robust_attn.report import build_report
from robust_attn.report.attention import (
    ROBUSTNESS_CSV,
    _js,
    argmax_moved,
    robustness_rows,
)
from robust_attn.report.kit.labels import attention_objective
from robust_attn.report.legacy import describe_results
from robust_attn.report.sanity import Status, run_checks
from robust_attn.sweep import run_sweep

from .conftest import MODELS_DIR
from .pages import section

MODEL = "vgg-att3-concat-pc_c10s"
N = 16


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("att_robust") / "sweep"
    run_sweep([str(MODELS_DIR / f"{MODEL}.pt")], ["attention-shift", "pgd"], "0,8", n=N, out=out,
                      attack_args={"steps": 3})
    return out


@pytest.fixture(scope="module")
def report(swept, tmp_path_factory):
    out = tmp_path_factory.mktemp("att_robust_report")
    build_report([swept], out, panel_images=8, shift_images=64)
    return out


def _section(page: str) -> str:
    return section(page, "attention-robustness")


def _artifact(swept, attack: str) -> dict[str, np.ndarray]:
    (path,) = (swept / "attention").glob(f"{MODEL}__{attack}__*.npz")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_section_shows_both_attacks_per_layer_and_the_most_moved_panel(report):
    page = (report / "index.html").read_text()
    section = _section(page)
    assert "Is the attention itself robust?" in page and MODEL in section
    for suffix in ("js", "moved", "panel"):
        png = f"attention_robustness_{MODEL}_{suffix}.png"
        assert (report / png).stat().st_size > 0
        # curves are vector too; the panel of images is raster only
        assert (report / png.replace(".png", ".svg")).exists() == (suffix != "panel")
        assert f'src="{png}"' in section
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section)).split())
    assert "attention-shift" in text and "pgd" in text and ROBUSTNESS_CSV in text
    assert "Add attention-shift" not in text and "Add pgd" not in text  # both present: no hint to add one
    assert "robust-attn sweep --models" not in text


def test_csv_shift_beats_pgd_and_keeps_labels(report, swept):
    rows = pd.read_csv(report / ROBUSTNESS_CSV)
    assert list(rows.columns[:9]) == ["model", "attack", "layer", "eps", "eps_label", "mean_js", "moved_fraction", "n",
                                      "label_kept_fraction"]
    assert set(rows["attack"]) == {"attention-shift", "pgd"} and set(rows["model"]) == {MODEL}
    assert rows["moved_fraction"].between(0, 1).all() and rows["mean_js"].between(0, 1).all()
    assert rows["label_kept_fraction"].between(0, 1).all()
    at8 = rows[rows["eps_label"] == "8/255"]
    js = at8.groupby("attack")["mean_js"].mean()
    assert js["attention-shift"] > js["pgd"], js
    assert (at8.loc[at8["attack"] == "attention-shift", "label_kept_fraction"] == 1).all()
    assert (rows.loc[rows["attack"] == "attention-shift", "label_kept_fraction"] == 1).all()
    zero = rows[rows["eps"] == 0]
    assert (zero["mean_js"] == 0).all() and (zero["moved_fraction"] == 0).all()
    # the numbers are those of the artifact's clean-correct followed images
    z = _artifact(swept, "attention-shift")
    correct = z["clean_pred"] == z["label"]
    assert (rows["n"] == correct.sum()).all() and len(set(rows["layer"])) == len(z["layers"])
    e = list(z["eps_label"]).index("8/255")
    row = at8[(at8["attack"] == "attention-shift") & (at8["layer"] == str(z["layers"][-1]))].iloc[0]
    j = len(z["layers"]) - 1
    clean, adv = z[f"clean_maps_{j}"][correct], z[f"adv_maps_{j}"][e][correct]
    assert np.isclose(row["mean_js"], _js(clean, adv).mean())
    assert np.isclose(row["moved_fraction"], argmax_moved(clean, adv).mean())
    pgd = _artifact(swept, "pgd")
    kept = pgd["adv_pred"][e][correct] == pgd["clean_pred"][correct]
    assert np.isclose(at8.loc[at8["attack"] == "pgd", "label_kept_fraction"], kept.mean()).all()


def test_panel_examples_keep_their_label(report):
    section = _section((report / "index.html").read_text())
    table = section[section.index("Most-moved examples"):]
    cells = [[int(v) if "." not in v else float(v) for v in re.findall(r"<td>([^<]*)</td>", r)]
             for r in re.findall(r"<tr><td>.*?</tr>", table)]
    assert 1 <= len(cells) <= 4
    for index, label, clean, adv, js in cells:
        assert clean == adv == label and js > 0
    assert [c[4] for c in cells] == sorted((c[4] for c in cells), reverse=True)


def test_sanity_checks_do_not_fail_because_of_attention_shift(report, swept):
    sanity = pd.read_csv(report / "sanity.csv", keep_default_na=False)
    assert (sanity["status"] != Status.FAIL.value).all(), sanity
    assert sanity["detail"].str.contains("attention-shift").any() and sanity["detail"].str.contains("left out").any()
    # without the exclusion, 'noise weaker' / 'large eps' style label checks would see accuracy that never falls
    frame = describe_results(pd.read_csv(swept / "results.csv")).assign(attack_label=lambda f: f["attack"])
    shift = frame[frame["attack"] == "attention-shift"]
    fake_large = shift.assign(eps=32 / 255, eps_label="32/255")
    checks = {c.name: c for c in run_checks(pd.concat([frame, fake_large], ignore_index=True))}
    large = next(c for name, c in checks.items() if name.startswith("attacks succeed at large budgets"))
    assert large.status is not Status.FAIL and "left out" in large.detail


def test_attention_objective_reads_the_column_and_falls_back_to_the_name():
    frame = pd.DataFrame({"attack": ["attention-shift", "pgd", "my-map-attack", "attention-shift"]})
    assert attention_objective(describe_results(frame)).tolist() == [True, False, False, True]
    with_column = frame.assign(objective=["attention", "misclassify", "attention", None])
    assert attention_objective(describe_results(with_column)).tolist() == [True, False, True, True]


def test_only_one_attack_is_shown_alone_with_the_command_to_add_the_other(swept, tmp_path):
    folder = tmp_path / "pgd_only"
    shutil.copytree(swept, folder)
    for path in (folder / "attention").glob("*attention-shift*.npz"):
        path.unlink()
    out = tmp_path / "report"
    build_report([folder], out, panel_images=4, shift_images=64)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", _section((out / "index.html").read_text()))).split())
    assert "only pgd has attention artifacts" in text and "Add attention-shift" in text
    assert "robust-attn sweep --models" in text and "--attack attention-shift,pgd --eps 0:8:1" in text
    assert set(pd.read_csv(out / ROBUSTNESS_CSV)["attack"]) == {"pgd"}
    assert not (out / f"attention_robustness_{MODEL}_panel.png").exists()


# ------------------------------------------------------------------ synthetic artifacts

def test_argmax_moved_fraction_on_synthetic_maps():
    clean = np.zeros((4, 3, 3), dtype=np.float32)
    clean[:, 1, 1] = 1  # every image attends the centre
    adv = clean.copy()
    adv[1, 1, 1], adv[1, 0, 2] = 0.2, 0.8  # peak moved to a corner
    adv[2, 2, 0] = 5  # peak moved
    adv[3] *= 3  # same peak, rescaled
    assert argmax_moved(clean, adv).tolist() == [False, True, True, False]
    assert argmax_moved(clean, clean).mean() == 0


def test_robustness_rows_on_a_synthetic_artifact():
    k, hw = 4, 2
    clean = np.full((k, hw, hw), 0.1, dtype=np.float32)
    clean[:, 0, 0] = 1
    moved = clean.copy()
    moved[:, 0, 0], moved[:, 1, 1] = 0.1, 1
    adv = np.stack([clean, moved])  # eps 0: unchanged; eps 1: every peak moves
    z = {"label": np.array([0, 1, 2, 3]), "clean_pred": np.array([0, 1, 2, 9]),  # the last is misclassified
         "adv_pred": np.array([[0, 1, 2, 9], [0, 5, 2, 9]]), "eps": np.array([0.0, 8 / 255]),
         "eps_label": np.array(["0", "8/255"]), "layers": np.array(["layer a"]), "clean_maps_0": clean,
         "adv_maps_0": adv}
    rows = pd.DataFrame(robustness_rows(z, "m", "pgd", "{}", "pgd", "Linf", 64))
    assert rows["n"].tolist() == [3, 3]  # clean-correct images only
    assert rows["moved_fraction"].tolist() == [0.0, 1.0] and rows["mean_js"].iloc[0] == 0
    assert np.isclose(rows["label_kept_fraction"].iloc[1], 2 / 3) and rows["label_kept_fraction"].iloc[0] == 1
    assert rows["mean_js"].iloc[1] > 0 and np.isclose(rows["mean_js_label_changed"].iloc[1], rows["mean_js"].iloc[1])
    assert np.isnan(rows["mean_js_label_changed"].iloc[0])
    assert robustness_rows(z, "m", "pgd", "{}", "pgd", "Linf", 2)[0]["n"] == 2  # the report's shift_images limit
