"""RobustBench-style records (``robust-attn export``) and claim verification (``robust-attn verify``), on real
sweeps small enough for the suite: AutoAttack with few iterations and queries."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from robust_attn.checkpoints import load_checkpoint, read_manifest
from robust_attn.report.records import ROBUSTBENCH_FIELDS, ROBUSTBENCH_OPTIONAL, export_records
from robust_attn.sweep import run_sweep

from .conftest import MODELS_DIR, ROOT, invoke
from .fixtures.noisy_model import GaussianInputNoise

ROBUSTBENCH = sorted((Path(__file__).parent / "fixtures" / "robustbench").glob("*.json"))
QUICK_AA = {"steps": 2, "n_queries": 20}  # standard AutoAttack's four attacks, cut for a test


def robustbench_records() -> list[dict]:
    return [json.loads(p.read_text()) for p in ROBUSTBENCH]


def assert_robustbench_shaped(record: dict) -> None:
    """Every field every real record has, and each RobustBench field with the JSON type RobustBench gives it."""
    real = robustbench_records()
    required = set.intersection(*(set(r) for r in real))
    assert required - {"autoattack_acc"} <= set(record), sorted(required - set(record))
    for key, value in record.items():
        if key in ROBUSTBENCH_FIELDS:
            types = {type(r[key]) for r in real if key in r}
            assert types == {ROBUSTBENCH_FIELDS[key]} and type(value) in types, (key, value, types)
    for key in ("clean_acc", "autoattack_acc", "robust_acc"):
        if key in record:
            assert 0 <= float(record[key]) <= 100 and record[key] == f"{float(record[key]):.2f}"


def test_the_declared_fields_are_robustbenchs():
    real = robustbench_records()
    assert set().union(*real) == set(ROBUSTBENCH_FIELDS)
    assert set(ROBUSTBENCH_OPTIONAL) == set().union(*real) - set.intersection(*(set(r) for r in real)) - {"autoattack_acc"}


@pytest.fixture(scope="module")
def vgg():
    return load_checkpoint(MODELS_DIR / "vgg_c10s.pt", name="vgg_c10s")


@pytest.fixture(scope="module")
def whole_split(vgg, tmp_path_factory):
    """vgg_c10s under quick AutoAttack and FGSM on the whole 128-image test split of the synthetic set."""
    out = tmp_path_factory.mktemp("aa")
    run_sweep([vgg], ["autoattack", "fgsm"], "2", "synthetic", attack_args=QUICK_AA, out=out, per_example=True)
    return out


def test_a_whole_split_autoattack_record_reads_like_robustbenchs(whole_split, tmp_path):
    paths = export_records([whole_split], tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["model_info/synthetic/Linf/vgg_c10s_eps2-255.json"]
    record = json.loads(paths[0].read_text())
    assert_robustbench_shaped(record)
    frame = __import__("pandas").read_csv(whole_split / "results.csv")
    aa = frame[(frame["attack"] == "autoattack") & (frame["eps_label"] == "2/255")].iloc[0]
    assert record["autoattack_acc"] == f"{100 * aa['accuracy']:.2f}" and record["eps"] == "2/255"
    assert record["clean_acc"] == f"{100 * aa['clean_accuracy']:.2f}" and record["unreliable"] is False
    assert "n_queries=20, steps=2" in record["footnote"]  # not the reference's settings: said, not hidden
    # FGSM ran beside AutoAttack: the point-wise worst case over both is the "external" number, never above AutoAttack's
    assert float(record["external"]) <= float(record["autoattack_acc"]) and "(fgsm beside AutoAttack)" in record["footnote"]
    prov = record["provenance"]
    assert prov["checkpoint_sha256"] == aa["checkpoint_sha256"] and prov["whole_test_split"] is True
    assert prov["versions"]["torchattacks"] and {a["attack"] for a in prov["attacks"]} == {"autoattack", "fgsm"}


def test_a_part_of_the_split_gets_no_autoattack_acc(vgg, tmp_path):
    run_sweep([vgg], ["autoattack"], "2", "synthetic", n=16, attack_args=QUICK_AA, out=tmp_path / "r")
    path = export_records([tmp_path / "r"], tmp_path / "x")[0]
    assert path.name == "vgg_c10s_eps2-255_n16.json"
    record = json.loads(path.read_text())
    assert "autoattack_acc" not in record and record["attacks"] == ["autoattack (n_queries=20, steps=2)"]
    assert "first 16 images" in record["footnote"]
    assert_robustbench_shaped(record)


def test_a_failed_sanity_check_makes_the_record_unreliable(vgg, tmp_path):
    noisy = dataclasses.replace(vgg, name="noisy", model=GaussianInputNoise(vgg.model, 0.03))
    run_sweep([noisy], ["autoattack"], "2", "synthetic", attack_args=QUICK_AA, out=tmp_path / "r")
    record = json.loads(export_records([tmp_path / "r"], tmp_path / "x")[0].read_text())
    assert record["unreliable"] is True and "deterministic forward" in record["footnote"]
    assert record["provenance"]["failed_checks"]


def test_export_of_a_folder_without_autoattack_is_one_line(whole_split, tmp_path):
    run_sweep([MODELS_DIR / "vgg_c10s.pt"], ["fgsm"], "0,1", n=8, out=tmp_path / "r")
    result = invoke("export", str(tmp_path / "r"), "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and result.stderr.startswith("error: no AutoAttack cell")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    result = invoke("export", str(whole_split), "--out", str(tmp_path / "x"), "--eps", "8/255")
    assert result.returncode == 2 and "no attack cell at eps 8/255" in result.stderr


@pytest.mark.parametrize("claimed", ["-1", "100.5", "nan"])
def test_a_claim_outside_0_100_is_one_line(claimed, tmp_path):
    result = invoke("verify", "vgg_c10s", "--claimed", claimed, "--out", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: --claimed must be") and not any(tmp_path.iterdir())


def test_verify_confirms_a_claim_inside_the_interval_and_refutes_one_outside(tmp_path):
    common = ("vgg_c10s", "--dataset", "synthetic", "--eps", "2", "--attack-arg", "steps=2", "--attack-arg",
              "n_queries=20", "--out", str(tmp_path / "v"), "--threads", "1")
    first = invoke("verify", *common, "--claimed", "100")
    assert first.returncode == 1 and "not confirmed" in first.stdout
    record = json.loads((tmp_path / "v" / "records" / "model_info" / "synthetic" / "Linf" / "vgg_c10s_eps2-255.json")
                        .read_text())
    measured = float(record["autoattack_acc"])
    second = invoke("verify", *common, "--claimed", f"{measured:.2f}")  # resumes the stored cell
    assert second.returncode == 0 and ": confirmed" in second.stdout, second.stdout
    assert f"measured {measured:.1f}%" in second.stdout and "n_queries=20, steps=2" in second.stdout


SHIPPED_RECORDS = ROOT / "reports" / "records" / "model_info"


def shipped_robust() -> list[str]:
    """The adversarially trained checkpoints of the default model set (seed replicas aside)."""
    return sorted(name for name, e in read_manifest(MODELS_DIR).items()
                  if e.replica_of is None and e.training_threat is not None)


def shipped_records() -> list[Path]:
    return sorted(SHIPPED_RECORDS.glob("*/*/*.json"))


def test_the_shipped_records_are_of_shipped_robust_checkpoints():
    names = [p.stem.rsplit("_eps", 1)[0] for p in shipped_records()]
    assert names and set(names) <= set(shipped_robust()), names


@pytest.mark.parametrize("path", shipped_records(), ids=lambda p: p.stem)
def test_a_shipped_record_reads_like_robustbenchs_and_is_current(path):
    record = json.loads(path.read_text())
    assert_robustbench_shaped(record)
    assert record["provenance"]["checkpoint_sha256"] == read_manifest(MODELS_DIR)[record["name"]].sha256  # not stale
    assert record["provenance"]["whole_test_split"] is True and "autoattack_acc" in record
    assert record["unreliable"] is False  # every sanity check of its sweep passed


@pytest.mark.parametrize("name", shipped_robust())
def test_every_shipped_robust_checkpoint_has_a_record(name):
    """A retrained robust checkpoint fails here (and its stale record in the test above) until
    `bash scripts/robust_records.sh` has written its record."""
    assert sorted(SHIPPED_RECORDS.glob(f"*/*/{name}_eps*.json")), f"no record of {name}: run bash scripts/robust_records.sh"
