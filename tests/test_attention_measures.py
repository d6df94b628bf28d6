"""How the report measures a change of attention: the stored maps keep the precision the report
compares at (a resumed sweep's shift at eps 0 is exactly 0), and gates get a measure that sees
their scale beside the Jensen-Shannon distance of distributions."""
from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from robust_attn.report import build_report
from robust_attn.report.attention import (
    GATE_CHANGE,
    JS,
    ROBUSTNESS_CSV,
    _js,
    distributions,
    gate_change,
    measure,
    robustness_rows,
)
from robust_attn.models import create_model
from robust_attn.sweep import run_sweep
from robust_attn.sweep.panels import maps_are_distributions

from .conftest import MODELS_DIR
from .pages import section

ATT = "vgg-att3-concat-pc_c10s"
CBAM = "resnet-cbam_c10s"


def _artifact(folder, model: str, attack: str) -> dict[str, np.ndarray]:
    (path,) = (folder / "attention").glob(f"{model}__{attack}__*.npz")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _eps0_shift(z: dict[str, np.ndarray]) -> list[float]:
    e = list(z["eps_label"]).index("0")
    return [float(_js(z[f"clean_maps_{j}"], z[f"adv_maps_{j}"][e]).max()) for j in range(len(z["layers"]))]


def test_a_resumed_sweep_reads_no_shift_at_eps_0(tmp_path):
    """The second run loads eps 0 and 1/255 from the cell store and computes the clean maps afresh:
    stored and fresh maps must be the same numbers (float16 storage read 9e-5 here)."""
    out = tmp_path / "sweep"
    model = [str(MODELS_DIR / f"{ATT}.pt")]
    run_sweep(model, ["fgsm"], "0,1", n=16, out=out)
    fresh = _artifact(out, ATT, "fgsm")
    run_sweep(model, ["fgsm"], "0,1,2", n=16, out=out)
    resumed = _artifact(out, ATT, "fgsm")
    assert list(resumed["eps_label"]) == ["0", "1/255", "2/255"]
    assert _eps0_shift(fresh) == [0.0] * len(fresh["layers"])
    assert _eps0_shift(resumed) == [0.0] * len(resumed["layers"])
    for j in range(len(resumed["layers"])):  # the stored eps-1/255 maps are the fresh run's, bit for bit
        assert np.array_equal(resumed[f"adv_maps_{j}"][1], fresh[f"adv_maps_{j}"][1])
        assert resumed[f"adv_maps_{j}"].dtype == np.float32


def _gate_artifact(clean: np.ndarray, adv: np.ndarray, **extra) -> dict[str, np.ndarray]:
    k = len(clean)
    return {"label": np.zeros(k, int), "clean_pred": np.zeros(k, int), "adv_pred": np.zeros((2, k), int),
            "eps": np.array([0.0, 8 / 255]), "eps_label": np.array(["0", "8/255"]), "layers": np.array(["stage 1"]),
            "clean_maps_0": clean, "adv_maps_0": np.stack([clean, adv]), **extra}


def test_a_gate_scaled_everywhere_alike_is_a_change_only_the_gate_measure_sees():
    ones = np.ones((3, 4, 4), dtype=np.float32)
    low = np.full_like(ones, 0.01)
    assert _js(ones, low).max() == pytest.approx(0, abs=1e-7)  # normalised to sum 1 they are the same
    assert gate_change(ones, low) == pytest.approx([0.99] * 3)
    z = _gate_artifact(ones, low, maps_are_distributions=np.array(False))
    assert not distributions(z) and measure(z) == GATE_CHANGE
    rows = pd.DataFrame(robustness_rows(z, "m", "pgd", "{}", "pgd", "Linf", 64))
    assert rows["measure"].tolist() == [GATE_CHANGE] * 2
    assert rows["mean_gate_change"].tolist() == pytest.approx([0.0, 0.99])
    assert rows["mean_js"].tolist() == pytest.approx([0.0, 0.0], abs=1e-7)


def test_distributions_get_js_and_no_gate_column():
    clean = np.full((2, 2, 2), 0.25, dtype=np.float32)
    adv = np.array([[[1, 0], [0, 0]]] * 2, dtype=np.float32)
    z = _gate_artifact(clean, adv, maps_are_distributions=np.array(True))
    rows = pd.DataFrame(robustness_rows(z, "m", "pgd", "{}", "pgd", "Linf", 64))
    assert measure(z) == JS and rows["measure"].tolist() == [JS] * 2
    assert rows["mean_gate_change"].isna().all() and rows["mean_js"].iloc[1] > 0


def test_artifacts_without_the_record_are_read_from_their_maps():
    softmax = np.full((2, 3, 3), 1 / 9, dtype=np.float32)
    assert distributions(_gate_artifact(softmax, softmax))
    assert not distributions(_gate_artifact(softmax * 4, softmax))


def test_the_sweep_records_which_maps_a_model_has():
    assert maps_are_distributions(create_model("vgg-att3-concat-pc", width=0.0625))
    assert not maps_are_distributions(create_model("vgg-cbam", width=0.0625))
    assert not maps_are_distributions(create_model("resnet-cbam", width=0.0625))


def test_the_sweep_records_gates_and_the_report_names_the_measure_per_model(tmp_path):
    out = tmp_path / "sweep"
    run_sweep([str(MODELS_DIR / f"{m}.pt") for m in (ATT, CBAM)], ["pgd"], "0,2", n=4, out=out, attack_args={"steps": 1})
    assert bool(_artifact(out, ATT, "pgd")["maps_are_distributions"])
    cbam = _artifact(out, CBAM, "pgd")
    assert not bool(cbam["maps_are_distributions"]) and float(cbam["clean_maps_0"].max()) <= 1
    report = tmp_path / "report"
    build_report([out], report, panel_images=0, shift_images=4)
    rows = pd.read_csv(report / ROBUSTNESS_CSV)
    by_model = rows.groupby("model")["measure"].unique()
    assert list(by_model[ATT]) == [JS] and list(by_model[CBAM]) == [GATE_CHANGE]
    assert rows.loc[rows.model == ATT, "mean_gate_change"].isna().all()
    gates = rows[rows.model == CBAM]
    assert gates["mean_gate_change"].between(0, 1).all() and (gates.loc[gates.eps == 0, "mean_gate_change"] == 0).all()
    page = (report / "index.html").read_text()
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section(page, "attention-robustness"))).split())
    assert text.count("Shift measure: spatial gates, so the mean absolute gate change") == 1
    assert text.count("Shift measure: attention distributions, so the Jensen-Shannon distance") == 1
