"""Adding a model family is its model code plus its registration, nothing else: a family registered from
this file sweeps, reports with the right pairing and attention panels, transfers and runs in a study.

Its names follow none of the registry's conventions (``plain3`` and its attention variant ``spotlight3``
share no prefix, and no ``-att``/``-cbam`` marker): every fact the report needs (family, baseline, that the
variant's maps are gates in [0, 1]) reaches it from the registration through the result rows.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from robust_attn.checkpoints import save_checkpoint
from robust_attn.models import AttentionClassifier, Features, ModelCfg, create_model, list_models, register_model
from robust_attn.report import build_report
from robust_attn.report.transfer import build_transfer_report
from robust_attn.results import read_results_csv, read_transfer_csv
from robust_attn.study import run_study
from robust_attn.sweep import run_sweep
from robust_attn.transfer import run_transfer

FAMILY, BASE, VARIANT = "three-layer-cnn", "plain3", "spotlight3"
DATA = "cifar10-embedded"
N = 24


class ThreeLayerCNN(AttentionClassifier):
    """Three 3x3 conv layers; the variant gates the last one's positions with a learned sigmoid map
    (CBAM's kind of spatial attention), the baseline does not."""

    def __init__(self, cfg: ModelCfg, width: float, num_classes: int, in_channels: int):
        super().__init__()
        self.cfg = cfg
        channels = max(4, round(32 * width))
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        self.spotlight = nn.Conv2d(channels, 1, 1) if cfg.attention_layers else None
        self.build_head(cfg, [], channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> Features:
        x = self.convs(x)
        maps, scores = (), ()
        if self.spotlight is not None:
            score = self.spotlight(x)
            maps, scores = (torch.sigmoid(score),), (score,)
            x = x * maps[0]
        return Features((), x.mean((2, 3)), maps, scores)


if BASE not in list_models():
    for _cfg in (ModelCfg(name=BASE, family=FAMILY, paper="a test family"),
                 ModelCfg(name=VARIANT, family=FAMILY, baseline=BASE, attention_layers=(3,), paper="a test family")):
        register_model(_cfg)(lambda cfg, *, width, num_classes, in_channels: ThreeLayerCNN(cfg, width, num_classes,
                                                                                          in_channels))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One checkpoint per architecture, both at training seed 0 (untrained: the plumbing is under test, not
    accuracy), so that the transfer page, which pairs seed replicas by their seed, pairs these two."""
    folder = tmp_path_factory.mktemp("family")
    paths = []
    for arch in (BASE, VARIANT):
        torch.manual_seed(0)
        model = create_model(arch, width=0.25)
        paths.append(str(save_checkpoint(model, folder / f"{arch}.pt", {"dataset": "cifar10-subset", "seed": 0})))
    return paths


def test_the_sweep_rows_say_what_the_family_is(checkpoints, tmp_path):
    frame = run_sweep(checkpoints, ["fgsm"], "0,2", DATA, n=N, out=tmp_path)
    rows = read_results_csv(tmp_path / "results.csv").drop_duplicates("model").set_index("model")
    assert rows.loc[VARIANT, ["model_family", "baseline", "attention_maps"]].tolist() == [FAMILY, BASE, "gate"]
    assert rows.loc[BASE, ["model_family", "baseline", "attention_maps"]].tolist() == [FAMILY, "", "none"]
    assert len(frame) == 4


def test_the_report_pairs_the_variant_with_its_baseline_and_draws_its_maps(checkpoints, tmp_path):
    run_sweep(checkpoints, ["fgsm", "pgd"], "0,2", DATA, n=N, out=tmp_path / "results", per_example=True)
    build_report([tmp_path / "results"], tmp_path / "report", panel_images=2, shift_images=4)
    pairs = pd.read_csv(tmp_path / "report" / "attention_vs_baseline.csv")
    assert set(zip(pairs["model"], pairs["baseline"])) == {(VARIANT, BASE)}
    html = (tmp_path / "report" / "index.html").read_text()
    panels = [p.name for p in (tmp_path / "report").rglob("*.png") if VARIANT in p.name and "attention" in p.name]
    assert panels and all(p in html for p in panels)
    assert not [p for p in (tmp_path / "report").rglob("*.png") if BASE in p.name and "attention" in p.name]


def test_transfer_between_the_two_and_its_report_pair_them(checkpoints, tmp_path):
    run_transfer(checkpoints, checkpoints, "fgsm", "0,4", DATA, n=N, out=tmp_path / "transfer")
    cells = read_transfer_csv(tmp_path / "transfer" / "transfer.csv")
    described = cells.drop_duplicates("target").set_index("target")
    assert described.loc[VARIANT, ["target_family", "target_baseline", "target_attention_maps"]].tolist() == \
        [FAMILY, BASE, "gate"]
    build_transfer_report(tmp_path / "transfer", tmp_path / "transfer-report")
    asymmetry = pd.read_csv(tmp_path / "transfer-report" / "transfer_asymmetry.csv")
    assert set(zip(asymmetry["attention"], asymmetry["baseline"])) == {(VARIANT, BASE)}


def test_a_study_trains_the_family_and_compares_the_variant_with_its_declared_baseline(tmp_path):
    spec = tmp_path / "family.toml"
    spec.write_text(f"""
name = "family"
architectures = ["{BASE}", "{VARIANT}"]
seeds = [0, 1]
[train]
dataset = "synthetic"
epochs = 1
width = 0.125
batch_size = 64
[evaluate]
attacks = ["fgsm"]
eps = "0,2"
n = 16
""")
    result = run_study(spec, tmp_path / "out", report=True)
    assert set(result.members["architecture"]) == {BASE, VARIANT} and len(result.members) == 4
    assert set(zip(result.effects["architecture"], result.effects["baseline"])) == {(VARIANT, BASE)}
    assert result.report is not None and VARIANT in result.report.read_text()
