"""Rows that describe themselves: the run writes each model's family, baseline, attention maps and
training threat model and each attack's kind and CE-gradient flag from the registries (results.csv,
transfer.csv) and every registered attack into the run log; a folder without those columns (as 0.3
wrote them) still reads, and its cells, stored without them, resume with the facts filled. (A folder that
another version wrote is not resumed at all: the versions are part of every cell's settings.)"""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from robust_attn.attacks import get_attack_cfg, list_attacks
from robust_attn.results import (
    DESCRIPTIVE_COLUMNS, RESULT_COLUMNS, TRANSFER_DESCRIPTIVE_COLUMNS, UNKNOWN, read_results_csv, read_run_log,
    read_runs, read_transfer_csv,
)
from robust_attn.run import model_facts
from robust_attn.sweep import run_sweep
from robust_attn.transfer import run_transfer

from .conftest import MODELS_DIR

N = 8


def _as_0_3(out, cells_dir: str, columns, csv_name: str) -> None:
    """Make a folder look written by 0.3: its CSV and its stored cells lack the descriptive columns."""
    frame = pd.read_csv(out / csv_name, dtype=str, keep_default_na=False)
    frame.drop(columns=list(columns)).to_csv(out / csv_name, index=False)
    for path in (out / cells_dir).glob("*.json"):
        blob = json.loads(path.read_text())
        rows = [blob["row"]] if "row" in blob else [t["row"] for t in blob["targets"].values()]
        for row in rows:
            for c in columns:
                del row[c]
        path.write_text(json.dumps(blob))


def test_sweep_rows_carry_the_registry_facts(shipped, tmp_path):
    frame = run_sweep([shipped["resnet-cbam_c10s"], shipped["vgg-att3-concat-pc_c10s"], shipped["vgg_c10s"]],
                  ["fgsm", "noise"], "0,2", n=N, batch_size=N, out=tmp_path)
    assert list(frame.columns) == list(RESULT_COLUMNS)
    by_model = frame.drop_duplicates("model").set_index("model")
    assert by_model.loc["resnet-cbam_c10s", ["model_family", "baseline", "attention_maps"]].tolist() == \
        ["resnet", "resnet", "gate"]
    assert by_model.loc["vgg-att3-concat-pc_c10s", ["model_family", "baseline", "attention_maps"]].tolist() == \
        ["vgg", "vgg", "distribution"]
    assert by_model.loc["vgg_c10s", ["model_family", "baseline", "attention_maps"]].tolist() == ["vgg", "", "none"]
    assert (frame["training_threat_model"] == "standard").all()
    assert by_model["model_args"].to_dict() == {"resnet-cbam_c10s": '{"depth":20}', "vgg-att3-concat-pc_c10s": "{}",
                                                "vgg_c10s": "{}"}
    by_attack = frame.drop_duplicates("attack").set_index("attack")
    assert by_attack.loc["fgsm", "attack_kind"] == "single-step" and bool(by_attack.loc["fgsm", "ce_gradient"])
    assert by_attack.loc["noise", "attack_kind"] == "noise" and not bool(by_attack.loc["noise", "ce_gradient"])
    back = read_results_csv(tmp_path)
    pd.testing.assert_frame_equal(back[list(DESCRIPTIVE_COLUMNS)].sort_index(axis=1),
                                  frame[list(DESCRIPTIVE_COLUMNS)].sort_index(axis=1), check_dtype=False,
                                  check_like=True, check_index_type=False)
    start = next(r for r in read_run_log(tmp_path) if r["event"] == "start")
    assert start["kind"] == "sweep" and set(start["attack_catalog"]) == set(list_attacks())
    cw = get_attack_cfg("cw")
    assert start["attack_catalog"]["cw"] == {"kind": cw.kind.value, "norm": cw.norm.value, "eps_bounded": False,
                                             "uses_gradient": cw.uses_gradient, "ce_gradient": False,
                                             "objective": "misclassify"}
    assert [r["status"] for r in read_runs(tmp_path)] == ["finished"]


def test_a_user_model_is_its_own_family_and_its_rows_say_no_maps():
    """The sweep's panels and attention shift read no user model's maps, so even one that exposes
    ``forward_with_attention`` is recorded ``none``; its seed and model arguments are unknown."""
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10]

    class Shows(Plain):
        def forward_with_attention(self, x):
            raise NotImplementedError

    from robust_attn.user_models import UserModel, as_checkpoint

    plain = model_facts(as_checkpoint(UserModel("mine", Plain()), "cifar10-embedded"))
    shows = model_facts(as_checkpoint(UserModel("mine", Shows()), "cifar10-embedded"))
    assert (plain.family, plain.baseline, plain.attention_maps) == ("Plain", "", "none")
    assert (shows.family, shows.attention_maps, shows.training_seed, shows.model_args) == ("Shows", "none", UNKNOWN,
                                                                                            UNKNOWN)
    rows = run_sweep([UserModel("mine", Shows())], ["fgsm"], "0", data="cifar10-embedded", n=4, batch_size=4)
    assert (rows["attention_maps"] == "none").all() and (rows["model_family"] == "Shows").all()


def test_a_folder_without_the_facts_reads_and_its_cells_resume_with_the_facts_filled(shipped, tmp_path):
    vgg = shipped["vgg_c10s"]
    first = run_sweep([vgg], ["fgsm"], "0,2", n=N, batch_size=N, out=tmp_path, per_example=True)
    _as_0_3(tmp_path, "cells", DESCRIPTIVE_COLUMNS, "results.csv")
    old = read_results_csv(tmp_path)  # the reader gives every column; the ones 0.3 lacks are unknown
    assert list(old.columns) == list(RESULT_COLUMNS)
    assert (old["attack_kind"] == UNKNOWN).all() and old["ce_gradient"].isna().all()
    events = []
    again = run_sweep([vgg], ["fgsm", "noise"], "0,2", n=N, batch_size=N, out=tmp_path, per_example=True,
                  on_cell=events.append)
    assert [e.stored for e in events if e.attack == "fgsm"] == [True, True], "the 0.3 cells were computed again"
    fgsm = again[again["attack"] == "fgsm"].reset_index(drop=True)
    assert fgsm["n_correct"].tolist() == first["n_correct"].tolist()
    rows = read_results_csv(tmp_path)
    assert len(rows) == 4 and (rows["attack_kind"] != UNKNOWN).all() and rows["ce_gradient"].notna().all()
    assert set(rows.loc[rows["attack"] == "fgsm", "attack_kind"]) == {"single-step"}
    assert (rows["model_family"] == "vgg").all() and (rows["model_args"] == "{}").all()


def test_transfer_rows_describe_both_ends_and_cells_without_the_facts_resume(shipped, tmp_path):
    sources = [shipped["resnet-cbam_c10s"], shipped["resnet_c10s"]]
    frame = run_transfer(sources, sources, "fgsm", "2", n=N, batch_size=N, out=tmp_path)
    row = frame[(frame["source"] == "resnet-cbam_c10s") & (frame["target"] == "resnet_c10s")].iloc[0]
    assert (row["source_architecture"], row["source_family"], row["source_baseline"], row["source_attention_maps"]) \
        == ("resnet-cbam", "resnet", "resnet", "gate")
    assert (row["target_architecture"], row["target_baseline"], row["target_attention_maps"]) == ("resnet", "", "none")
    assert row["source_training_threat_model"] == row["target_training_threat_model"] == "standard"
    trained_on = {s.name: s.metadata["dataset"] for s in sources}  # as results.csv's trained_on
    assert (row["source_trained_on"], row["target_trained_on"]) == (trained_on["resnet-cbam_c10s"],
                                                                   trained_on["resnet_c10s"])
    assert row["attack_kind"] == "single-step" and bool(row["ce_gradient"])
    assert (row["source_training_seed"], row["target_training_seed"]) == (
        str(sources[0].metadata["seed"]), str(sources[1].metadata["seed"]))
    assert row["source_model_args"] == row["target_model_args"] == '{"depth":20}'
    start = next(r for r in read_run_log(tmp_path) if r["event"] == "start")
    assert start["kind"] == "transfer" and set(start["attack_catalog"]) == set(list_attacks())

    _as_0_3(tmp_path, "transfer_cells", TRANSFER_DESCRIPTIVE_COLUMNS, "transfer.csv")
    old = read_transfer_csv(tmp_path)
    assert (old["source_family"] == UNKNOWN).all() and old["ce_gradient"].isna().all()
    events = []
    again = run_transfer(sources, sources, "fgsm", "2", n=N, batch_size=N, out=tmp_path, on_cell=events.append)
    assert all(e.stored for e in events)
    assert again["accuracy"].tolist() == frame["accuracy"].tolist()
    back = read_transfer_csv(tmp_path)
    assert (back["source_family"] == "resnet").all() and back["ce_gradient"].all()
    assert back["source_trained_on"].tolist() == frame["source_trained_on"].tolist()
    assert back["target_model_args"].tolist() == frame["target_model_args"].tolist()
    assert back["target_training_seed"].tolist() == frame["target_training_seed"].tolist()


def test_seed_replicas_in_one_transfer_folder_pair_by_their_training_seed(tmp_path):
    """Every replica is trained on the same data: the recorded seed pairs each variant with its own
    backbone replica (the asymmetry table was empty when only ``trained_on`` was matched)."""
    from robust_attn.checkpoints import load_checkpoint, resolve_checkpoints
    from robust_attn.report.transfer import build_transfer_report

    names = ["vgg_c10s", "vgg_c10s_seed1", "vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc_c10s_seed1"]
    models = [load_checkpoint(r.path, r.sha256, r.name) for r in resolve_checkpoints(names, MODELS_DIR)]
    run_transfer(models, models, "fgsm", "0,8", n=N, batch_size=N, out=tmp_path)
    build_transfer_report(tmp_path, command="robust-attn report --transfer X")
    asymmetry = pd.read_csv(tmp_path / "report" / "transfer_asymmetry.csv")
    assert not asymmetry.empty
    assert set(zip(asymmetry["attention"], asymmetry["baseline"])) == {
        ("vgg-att3-concat-pc_c10s", "vgg_c10s"), ("vgg-att3-concat-pc_c10s_seed1", "vgg_c10s_seed1")}


@pytest.mark.parametrize("value, expected", [("True", True), ("False", False)])
def test_ce_gradient_reads_back_as_a_boolean(tmp_path, value, expected):
    row = {c: "0" for c in RESULT_COLUMNS} | {"ce_gradient": value, "model": "NA"}
    pd.DataFrame([row]).to_csv(tmp_path / "results.csv", index=False)
    frame = read_results_csv(tmp_path)
    assert frame["ce_gradient"].tolist() == [expected] and frame["model"].tolist() == ["NA"]
