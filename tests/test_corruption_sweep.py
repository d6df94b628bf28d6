"""Common corruptions as threats of the sweep: severity grids, rows, the cache, the strip, the report section
(mean corruption accuracy, mCE), studies, and one-line errors for bad input."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robust_attn.attacks import expand_attack_names, get_attack_cfg, list_attacks
from robust_attn.corruptions import corrupt, list_corruptions
from robust_attn.corruptions.cache import cache_path
from robust_attn.errors import UserError
from robust_attn.report import build_report
from robust_attn.report.corruption import mce, with_groups
from robust_attn.run.inputs import check_request
from robust_attn.sweep import run_sweep

from .conftest import invoke

PAIR = ["vgg_c10s", "vgg-att3-concat-pc_c10s"]


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory):
    """Two corruptions at severities 0-2 on the first 48 embedded CIFAR-10 images, both models of a pair."""
    out = tmp_path_factory.mktemp("corruptions")
    frame = run_sweep(PAIR, ["gaussian-noise", "contrast"], "0:2:1", out=out, n=48, per_example=True)
    return out, frame


def test_every_corruption_is_a_threat_of_the_sweep():
    assert expand_attack_names(["corruptions"]) == list_corruptions()
    assert set(list_corruptions()) <= set(list_attacks())
    for name in list_corruptions():
        cfg = get_attack_cfg(name)
        assert (cfg.kind.value, cfg.norm.value, cfg.objective.value) == ("corruption", "none", "natural")
        assert cfg.group in {"noise", "blur", "weather", "digital"} and not cfg.uses_gradient


def test_rows_say_what_a_corruption_is(corrupted):
    out, frame = corrupted
    assert len(frame) == 2 * 2 * 3
    assert set(frame["norm"]) == {"none"} and set(frame["attack_kind"]) == {"corruption"}
    assert set(frame["objective"]) == {"natural"} and sorted(set(frame["eps_label"])) == ["0", "1", "2"]
    clean = frame[frame["eps"] == 0]
    assert (clean["accuracy"] == clean["clean_accuracy"]).all()  # severity 0 is the clean cell
    severe = frame[frame["eps"] == 2]
    assert (severe["max_perturbation"] > 0).all()
    assert (frame["worst_case_accuracy"] <= frame["accuracy"] + 1e-12).all()
    contrast = frame[(frame["attack"] == "contrast") & (frame["model"] == PAIR[0])].sort_values("eps")
    assert contrast["accuracy"].iloc[-1] < contrast["accuracy"].iloc[0]  # severity 2 contrast costs this model


def test_corrupted_images_are_cached_and_reused(corrupted, monkeypatch, tmp_path):
    out, frame = corrupted
    from robust_attn.run import EvalData
    from robust_attn.data import load_dataset
    from robust_attn.data import ImageSet

    test = load_dataset("cifar10-embedded").test
    ev = EvalData("cifar10-embedded", ImageSet(test.x[:48], test.y[:48]))
    for name in ("gaussian-noise", "contrast"):
        for severity in (1, 2):
            assert cache_path(ev.sha256, name, severity, 0).is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a cached corruption")

    monkeypatch.setattr("robust_attn.sweep.corrupted.corrupt", refuse)
    again = run_sweep([PAIR[0]], ["gaussian-noise", "contrast"], "0:2:1", out=tmp_path / "again", n=48)
    first = frame[frame["model"] == PAIR[0]].set_index(["attack", "eps_label"])["n_correct"]
    assert again.set_index(["attack", "eps_label"])["n_correct"].sort_index().equals(first.sort_index())


def _zeroed(path):  # zero the images, keep the shape and the stored sha256
    with np.load(path) as stored:
        images, digest = np.zeros_like(stored["images"]), stored["sha256"]
    with path.open("wb") as f:
        np.savez(f, images=images, sha256=digest)


def _byte_flipped(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _plain_npy(path):
    with np.load(path) as stored:
        images = stored["images"]
    with path.open("wb") as f:
        np.save(f, images)


@pytest.mark.parametrize("damage", [_zeroed, _byte_flipped, _truncated, _plain_npy],
                         ids=["zeroed", "byte-flipped", "truncated", "plain-npy"])
def test_a_damaged_cache_file_is_recomputed_and_files_are_readable_by_all(monkeypatch, tmp_path, caplog, damage):
    from robust_attn.corruptions.cache import cached_corruption

    monkeypatch.setenv("ROBUST_ATTN_CACHE_DIR", str(tmp_path))
    images = torch.rand(4, 3, 8, 8)
    first = cached_corruption("ab" * 32, "fog", 1, 0, (4, 3, 8, 8), lambda: images)
    path = cache_path("ab" * 32, "fog", 1, 0)
    assert path.stat().st_mode & 0o044 == 0o044 & ~_umask()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [path.name]  # no temporary left beside it
    damage(path)
    assert cached_corruption("ab" * 32, "fog", 1, 0, (4, 3, 8, 8), lambda: images).equal(first)  # recomputed
    assert "altered" in caplog.text
    refuse = lambda: (_ for _ in ()).throw(AssertionError("recomputed a whole file"))  # noqa: E731
    assert cached_corruption("ab" * 32, "fog", 1, 0, (4, 3, 8, 8), refuse).equal(first)  # the rewritten file is read


def test_a_cache_folder_this_user_may_not_search_costs_the_time_not_the_run(monkeypatch, tmp_path):
    """Another user's cache folder made under umask 077: every look inside it is EACCES (faked here: root
    ignores permissions)."""
    from robust_attn.corruptions import cache

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv("ROBUST_ATTN_CACHE_DIR", str(tmp_path))
    for target, attr in [(Path, "is_file"), (Path, "stat"), (Path, "mkdir"), (cache.np, "load")]:
        monkeypatch.setattr(target, attr, denied)
    images = torch.rand(4, 3, 8, 8)
    got = cache.cached_corruption("ab" * 32, "fog", 1, 0, (4, 3, 8, 8), lambda: images)
    assert got.equal(images.mul(255).round().to(torch.uint8))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_strip_and_the_report_section(corrupted, tmp_path):
    out, _ = corrupted
    strips = sorted((out / "corruptions").glob("*/*.npz"))
    assert [p.stem for p in strips] == ["contrast-seed0", "gaussian-noise-seed0"]
    with np.load(strips[0]) as z:
        assert z["images"].shape == (3, 3, 32, 32) and z["images"].dtype == np.uint8
        assert list(z["severities"]) == [0, 1, 2] and str(z["group"]) == "digital"
    index = build_report([out], tmp_path / "report")
    html = index.read_text()
    assert 'id="corruptions"' in html and "corruption_strip_cifar10-embedded.png" in html
    with np.load(strips[0]) as z:
        assert f"image {int(z['index'])} of cifar10-embedded (label {int(z['label'])})" in html
    moved = tmp_path / "moved"  # the caption reads the image's place from the strip files, whatever the sweep kept
    shutil.copytree(out, moved)
    for strip in sorted((moved / "corruptions").glob("*/*.npz")):
        with np.load(strip) as z:
            fields = {**z, "index": np.array(17), "label": np.array(4)}
        with strip.open("wb") as f:
            np.savez(f, **fields)
    assert "image 17 of cifar10-embedded (label 4)" in build_report([moved], tmp_path / "moved-report").read_text()
    table = pd.read_csv(tmp_path / "report" / "corruptions.csv")
    baseline = table.set_index("model").loc[PAIR[0]]
    assert baseline["mce"] == pytest.approx(1.0) and baseline["mce_baseline"] == PAIR[0]
    assert table.set_index("model").loc[PAIR[1], "mce_baseline"] == PAIR[0]
    assert baseline["cells"] == 4  # severities 1-2 of two corruptions; severity 0 is clean
    rows = pd.read_csv(out / "results.csv")
    expected = rows[(rows["model"] == PAIR[0]) & (rows["eps"] >= 1)]["accuracy"].mean()
    assert baseline["mean_corruption_accuracy"] == pytest.approx(expected)
    diffs = pd.read_csv(tmp_path / "report" / "corruptions_attention_vs_baseline.csv")
    assert list(diffs["model"]) == [PAIR[1]] and 0 <= diffs["p_value"].iloc[0] <= 1


def test_a_corruption_on_another_grid_is_left_out_of_the_strip_with_a_warning(corrupted, tmp_path, caplog):
    from robust_attn.report.corruption import read_strips

    out, _ = corrupted
    other = tmp_path / "other"
    run_sweep([PAIR[0]], ["fog"], "0,3", out=other, n=48)
    (strip,) = read_strips([out, other])
    assert [name for name, _, _ in strip.rows] == ["gaussian-noise", "contrast"] and strip.severities == [0, 1, 2]
    assert "fog (severities [0, 3]" in caplog.text and strip.index == 0


def test_mce_is_hendrycks_ratio_of_summed_errors():
    rows = []
    for model, errors in (("base", {"fog": [0.1, 0.3], "snow": [0.2, 0.2]}), ("att", {"fog": [0.2, 0.6], "snow": [0.1, 0.1]})):
        for attack, errs in errors.items():
            for severity, e in enumerate(errs, start=1):
                rows.append({"model": model, "dataset": "d", "n": 10, "attack": attack, "eps": float(severity),
                             "accuracy": 1 - e})
    frame = with_groups(pd.DataFrame(rows), {"fog": {"group": "weather"}, "snow": {"group": "weather"}})
    assert mce(frame, "att", "base", "d", 10) == pytest.approx((0.8 / 0.4 + 0.2 / 0.4) / 2)
    assert mce(frame, "base", "base", "d", 10) == pytest.approx(1.0)


def test_the_grid_of_corruptions_is_their_severities():
    request = check_request(["fog"], "1:5:1", eps_unit="255", attack_args=None, data=None, batch_size=8, seed=0,
                            n=None, device="cpu")
    assert request.grid.values == (1.0, 2.0, 3.0, 4.0, 5.0) and request.grid.labels == ("1", "2", "3", "4", "5")
    default = check_request(["corruptions"], None, eps_unit="255", attack_args=None, data=None, batch_size=8, seed=0,
                            n=None, device="cpu")
    assert default.grid.labels == ("0", "1", "2", "3", "4", "5") and len(default.specs) == 15


@pytest.mark.parametrize("args, message", [
    (["--attack", "fog", "--eps", "1:6:1"], "severity must be an integer from 1 to 5"),
    (["--attack", "fog", "--eps", "2.5"], "severity must be an integer from 1 to 5"),
    (["--attack", "gausian-noise"], "gaussian-noise"),
    (["--attack", "fog,pgd"], "run them as two sweeps"),
    (["--attack", "fog", "--quantize", "8"], "8-bit already"),
    (["--attack", "corruption"], "did you mean 'corruptions'"),
    (["--attack", "corruptions,fog"], "attack listed twice: fog ('corruptions' already runs every corruption)"),
    (["--attack", "corruptions,corruptions"], "attack listed twice: corruptions"),
])
def test_bad_corruption_input_is_one_error_line(args, message, tmp_path):
    result = invoke("sweep", "--models", "vgg_c10s", "--n", "8", "--out", str(tmp_path / "out"), *args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_a_study_can_evaluate_corruptions(tmp_path):
    from robust_attn.study import load_study

    path = tmp_path / "study.toml"
    path.write_text('name = "c"\narchitectures = ["vgg", "vgg-att3-concat-pc"]\nseeds = [0]\n'
                    '[train]\ndataset = "synthetic"\nepochs = 1\n[evaluate]\nattacks = ["corruptions"]\n')
    study = load_study(path)
    assert len(study.evaluation.attacks) == 15 and study.evaluation.grid.labels == ("0", "1", "2", "3", "4", "5")
    path.write_text(path.read_text() + 'eps = "0:7:1"\n')
    with pytest.raises(UserError, match="severity must be an integer"):
        load_study(path)
    path.write_text(path.read_text().replace('attacks = ["corruptions"]', 'attacks = ["fog", "fgsm"]')
                    .replace('eps = "0:7:1"', 'eps = "0:2:1"'))
    with pytest.raises(UserError, match=r"an eps grid: write them as two studies"):
        load_study(path)
    path.write_text(path.read_text().replace('attacks = ["fog", "fgsm"]', 'attacks = ["corruptions", "fog"]'))
    with pytest.raises(UserError, match=r"^\[evaluate\] attacks lists a name twice: fog \('corruptions' already"):
        load_study(path)  # at load, before anything trains


def test_the_cli_calls_a_corruptions_grid_its_severities(tmp_path):
    result = invoke("sweep", "--models", "vgg_c10s", "--n", "8", "--attack", "fog", "--eps", "0,1", "--no-report",
                    "--out", str(tmp_path / "out"))
    said = result.stdout + result.stderr
    assert result.returncode == 0 and "fog severity=1 accuracy" in said and "eps=" not in said
    assert "at each severity" in " ".join(said.split()) and "at each eps" not in " ".join(said.split())


def test_the_attacks_command_lists_the_corruptions_by_their_group_name():
    result = invoke("attacks", "corruptions")
    assert result.returncode == 0 and "gaussian-noise" in result.stdout and "jpeg-compression" in result.stdout
    assert " fgsm " not in result.stdout
    for typo in ("corruption", "corr*"):
        result = invoke("attacks", typo)
        assert result.returncode != 0 and "did you mean 'corruptions', the common corruptions?" in result.stderr


def test_one_report_reads_an_attack_folder_and_a_corruption_folder(corrupted, tmp_path):
    """Attacks and corruptions run as two sweeps; one report shows both, each in its own sections: the corruption
    rows never reach the eps curves or the label-attack sanity checks."""
    out, _ = corrupted
    attacks = tmp_path / "fgsm"
    run_sweep(PAIR, ["fgsm"], "0,2", out=attacks, n=48, per_example=True)
    index = build_report([attacks, out], tmp_path / "report")
    html = index.read_text()
    assert 'id="corruptions"' in html and 'id="accuracy"' in html
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert "gaussian-noise" not in set(summary["attack"]) and "fgsm" in set(summary["attack"])
    sanity = pd.read_csv(tmp_path / "report" / "sanity.csv")
    assert "gaussian-noise" not in " ".join(sanity["detail"].astype(str))
    assert (tmp_path / "report" / "corruptions.csv").is_file()


def test_a_bad_corruption_baseline_is_one_error(corrupted, tmp_path):
    out, _ = corrupted
    result = invoke("report", str(out), "--out", str(tmp_path / "r"), "--corruption-baseline", "vgg")
    assert result.returncode != 0 and result.stderr.startswith("error:") and result.stderr.count("\n") == 1


def test_a_corruption_does_not_transfer(tmp_path):
    result = invoke("transfer", "--sources", "vgg_c10s", "--targets", "vgg-att3-concat-pc_c10s", "--attack", "fog",
                    "--out", str(tmp_path / "t"))
    assert result.returncode != 0 and result.stderr.startswith("error:") and "does not look at any model" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "t").exists()


def test_the_api_takes_integer_severities_only_and_the_default_grid_keeps_its_unit():
    from robust_attn.attacks import create_attack
    from robust_attn.models import create_model

    model = create_model("vgg", num_classes=10, width=0.125)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(create_attack("fog", model, 3)(x, torch.zeros(2, dtype=torch.long)),
                       corrupt("fog", x, 3, 0))
    for bad in (2.5, 3 / 255, 6):
        with pytest.raises(UserError, match="severity must be an integer"):
            create_attack("fog", model, bad)(x, torch.zeros(2, dtype=torch.long))
    raw = check_request(["pgd-l2"], None, eps_unit="raw", attack_args=None, data=None, batch_size=8, seed=0,
                        n=None, device="cpu")
    assert raw.grid.unit.value == "raw" and raw.grid.labels[-1] == "8"
