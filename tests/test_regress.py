"""The regression gate can pass, and it fails loudly when a number or a checkpoint moves."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from robust_attn.cli import main
from robust_attn.errors import UserError

from .conftest import MODELS_DIR


@pytest.fixture()
def suite_dir(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    keep = [e for e in manifest["checkpoints"] if e["name"] == "vgg_c10s"]
    shutil.copy(MODELS_DIR / "vgg_c10s.pt", d)
    (d / "manifest.json").write_text(json.dumps({"checkpoints": keep}))
    (d / "regress_suite.json").write_text(json.dumps({
        "seed": 0, "tolerance": {"deterministic": 0, "randomized": 0},
        "entries": [{"attack": "fgsm", "eps": "0,2,4", "n": 64}, {"attack": "noise", "eps": "0,8", "n": 64}],
    }))
    return d


def _regress(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["regress", *args])
    captured = capsys.readouterr()
    return info.value.code, captured.out


def test_gate_passes_then_fails_on_an_edited_number(suite_dir, capsys):
    code, out = _regress(capsys, "--models-dir", str(suite_dir), "--update")
    assert code == 0 and "wrote" in out
    code, out = _regress(capsys, "--models-dir", str(suite_dir))
    assert code == 0 and "5 cells match" in out
    expected = pd.read_csv(suite_dir / "regress_expected.csv", dtype={"eps_label": str})
    row = expected.index[(expected["attack"] == "fgsm") & (expected["eps_label"] == "2/255")][0]
    expected.loc[row, "n_correct"] += 1
    expected.to_csv(suite_dir / "regress_expected.csv", index=False)
    code, out = _regress(capsys, "--models-dir", str(suite_dir))
    assert code == 1
    assert "vgg_c10s fgsm eps=2/255" in out and "1 of 5 regression cells moved" in out


def test_gate_fails_when_a_checkpoint_is_swapped(suite_dir, capsys):
    _regress(capsys, "--models-dir", str(suite_dir), "--update")
    other = next(p for p in sorted(MODELS_DIR.glob("*_c10s.pt")) if p.name != "vgg_c10s.pt") \
        if len(list(MODELS_DIR.glob("*_c10s.pt"))) > 1 else None
    if other is None:
        pytest.skip("needs a second shipped checkpoint")
    shutil.copy(other, suite_dir / "vgg_c10s.pt")
    entries = json.loads((suite_dir / "manifest.json").read_text())
    from robust_attn.files import sha256_file

    entries["checkpoints"][0]["sha256"] = sha256_file(suite_dir / "vgg_c10s.pt")  # even with an updated manifest
    (suite_dir / "manifest.json").write_text(json.dumps(entries))
    code, out = _regress(capsys, "--models-dir", str(suite_dir))
    assert code == 1 and "sha256" in out


def test_update_reports_what_moved(suite_dir, capsys):
    _regress(capsys, "--models-dir", str(suite_dir), "--update")
    expected = pd.read_csv(suite_dir / "regress_expected.csv", dtype={"eps_label": str})
    expected.loc[0, "n_correct"] += 3
    expected.to_csv(suite_dir / "regress_expected.csv", index=False)
    code, out = _regress(capsys, "--models-dir", str(suite_dir), "--update")
    assert code == 0 and "1 of 5 regression cells moved" in out and "wrote" in out
    code, _ = _regress(capsys, "--models-dir", str(suite_dir))
    assert code == 0


def test_gate_covers_the_worst_case_envelope_too(suite_dir, capsys):
    _regress(capsys, "--models-dir", str(suite_dir), "--update")
    expected = pd.read_csv(suite_dir / "regress_expected.csv", dtype={"eps_label": str})
    row = expected.index[(expected["attack"] == "fgsm") & (expected["eps_label"] == "4/255")][0]
    expected.loc[row, "worst_case_n_correct"] -= 1
    expected.to_csv(suite_dir / "regress_expected.csv", index=False)
    code, out = _regress(capsys, "--models-dir", str(suite_dir))
    assert code == 1 and "vgg_c10s fgsm eps=4/255" in out and "worst_case_n_correct" in out


def test_entries_that_differ_only_in_their_attack_run_as_one_sweep():
    from robust_attn.regress import Suite, SuiteEntry, suite_runs

    fgsm, pgd = SuiteEntry("fgsm", "0:8:1"), SuiteEntry("pgd", "0:8:1")
    other_grid, other_n = SuiteEntry("noise", "0,4"), SuiteEntry("noise", "0:8:1", n=64)
    runs = suite_runs(Suite((fgsm, other_grid, pgd, other_n), seed=0, tolerance_deterministic=0, tolerance_randomized=0))
    assert [r.attacks for r in runs] == [("fgsm", "pgd"), ("noise",), ("noise",)]
    assert [r.entry for r in runs] == [fgsm, other_grid, other_n]
    unchecked = SuiteEntry("pgd", "0:8:1", attack_args=(("steps", [3]),))  # the sweep, not the grouping, refuses it
    assert [r.attacks for r in suite_runs(Suite((fgsm, unchecked), 0, 0, 0))] == [("fgsm",), ("pgd",)]
    with pytest.raises(UserError, match="regress_suite.json lists attack 'fgsm' twice"):
        suite_runs(Suite((fgsm, other_grid, fgsm), 0, 0, 0))
