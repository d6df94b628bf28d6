"""Studies: the study file's validation, the across-seed statistics against scipy / statsmodels,
finding and training members (resume, reuse by recorded recipe), and whole runs on tiny models."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from robust_attn.errors import UserError
from robust_attn.study import load_study, run_study
from robust_attn.study import stats as st
from robust_attn.study.members import find_members, train_members
from robust_attn.study.spec import parse_study

from .conftest import invoke, run_cli

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "studies" / "attention-vs-baseline.toml"
ROBUST = ROOT / "studies" / "attention-under-adversarial-training.toml"
STUDIES = sorted((ROOT / "studies").glob("*.toml"))

TINY = """
name = "tiny"
architectures = ["vgg", "vgg-att3-concat-pc"]
seeds = [0, 1]
[train]
dataset = "synthetic"
epochs = 1
width = 0.0625
batch_size = 64
[evaluate]
attacks = ["fgsm"]
eps = "0:2:1"
n = 32
"""


def _raw(**changes) -> dict:
    raw = {"name": "s", "architectures": ["vgg", "vgg-att3-concat-pc"], "seeds": [0, 1],
           "train": {"dataset": "synthetic", "epochs": 1}, "evaluate": {"attacks": ["fgsm"], "eps": "0:2:1"}}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            raw[section] = {**raw[section], name: value}
        else:
            raw[section] = value
    return raw


def _error(raw: dict) -> str:
    with pytest.raises(UserError) as info:
        parse_study(raw, Path("/tmp/s.toml"))
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ the study file
def test_a_valid_study_resolves_defaults_and_paths(tmp_path):
    path = tmp_path / "sub" / "s.toml"
    path.parent.mkdir()
    path.write_text(TINY.replace('[train]', 'checkpoints = ["ckpts"]\n[train]\ndata_dir = "../data"'))
    spec = load_study(path)
    assert spec.baselines == {"vgg-att3-concat-pc": "vgg"}  # the plain backbone of the same family
    assert spec.checkpoints == (path.parent / "ckpts",)
    assert spec.recipe.data_dir == tmp_path / "data"  # relative to the study file, not the cwd
    assert spec.members() == [("vgg", 0), ("vgg", 1), ("vgg-att3-concat-pc", 0), ("vgg-att3-concat-pc", 1)]
    assert [a.name for a in spec.evaluation.attacks] == ["fgsm"]


@pytest.mark.parametrize("changes, expected", [
    ({"archtectures": ["vgg"]}, "did you mean 'architectures'"),
    ({"train__epoch": 3}, "did you mean 'epochs'"),
    ({"evaluate__atacks": ["fgsm"]}, "did you mean 'attacks'"),
    ({"architectures": ["vgg", "vgg-att3-concat-pcc"]}, "did you mean 'vgg-att3-concat-pc'"),
    ({"seeds": [0, 0]}, "seed twice"),
    ({"seeds": [-1]}, "seeds must be an integer >= 0"),
    ({"seeds": []}, "non-empty list"),
    ({"train__lr": -0.1}, "[train] lr must be a number > 0"),
    ({"train__schedule": "cosine"}, "[train] schedule must be one of"),
    ({"train__dataset": "cifar10-embedded"}, "has no training split"),
    ({"evaluate__eps": "0:8:x"}, "eps"),
    ({"evaluate__attacks": ["pgd-l2"]}, "--eps-unit raw"),
    ({"evaluate__attack_args": {"pdg": {"steps": 3}}}, "not one of the study's attacks"),
    ({"evaluate__attack_args": {"fgsm": {"steps": 3}}}, "[evaluate.attack_args.fgsm]"),
    ({"baselines": {"vgg": "vgg-att3-concat-pc"}, "architectures": ["vgg", "vgg-att2-concat-pc"]},
     "baseline must be one of architectures"),
    ({"architectures": ["vgg-att3-concat-pc"]}, "no baseline for 'vgg-att3-concat-pc'"),
    ({"architectures": ["resnet-att2-concat-pc", "resnet-se"]}, "no baseline for 'resnet-att2-concat-pc'"),
    ({"train__depth": 20}, "none of ['vgg', 'vgg-att3-concat-pc'] takes a depth"),
    ({"evaluate__dataset": "fashion-mnist-embedded"}, "[evaluate] dataset 'fashion-mnist-embedded' (1 channels"),
    ({"train__depth": 21, "architectures": ["resnet", "resnet-se"]}, "[train]:"),
    ({"train__threat_model": "pdg"}, "[train]: unknown training threat model 'pdg'; did you mean 'pgd'?"),
    ({"train__threat_model": "pgd", "train__threat_eps": 2}, "--threat-eps must lie in [0, 1]"),
    ({"train__threat_model": "trades", "train__trades_beta": -1}, "[train] trades_beta must be a number >= 0"),
    ({"train__threat_model": "pgd", "train__threat_steps": 0}, "[train] threat_steps must be an integer >= 1"),
    ({"train__on_overfit": "halt"}, "[train] on_overfit must be one of"),
])
def test_bad_study_files_are_one_line_errors(changes, expected):
    assert expected in _error(_raw(**changes))


def test_variants_get_their_plain_backbone_and_a_default_depth_matches_an_explicit_one():
    from robust_attn.study.spec import recipe_key

    spec = parse_study(_raw(architectures=["resnet", "resnet-se", "resnet-att2-concat-pc"], train__depth=20),
                       Path("/tmp/s.toml"))
    assert spec.baselines == {"resnet-se": "resnet", "resnet-att2-concat-pc": "resnet"}
    assert spec.recipe.train_config("resnet", 0).depth == 20
    assert recipe_key({"architecture": "resnet", "depth": None}) == recipe_key({"architecture": "resnet", "depth": 20})


def test_missing_required_key_and_bad_toml(tmp_path):
    raw = _raw()
    del raw["seeds"]
    assert "'seeds' is required" in _error(raw)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(UserError, match="not valid TOML"):
        load_study(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_study(tmp_path / "absent.toml")


# ------------------------------------------------------------------ statistics
def test_auc_is_the_trapezoid_area_over_the_eps_range():
    assert st.auc([0, 1, 2], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert st.auc([2, 0, 1], [0.0, 1.0, 1.0]) == pytest.approx(0.75)  # order of points does not matter
    assert st.auc([0.5], [0.3]) == 0.3


def test_mean_interval_is_scipys_t_interval():
    x = [0.30, 0.28, 0.35, 0.31]
    _, std, low, high = st.mean_interval(x)
    expected = scipy_stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=scipy_stats.sem(x))
    assert (low, high) == pytest.approx(expected)
    assert std == pytest.approx(np.std(x, ddof=1))
    assert all(math.isnan(v) for v in st.mean_interval([0.3])[1:])


def _one_curve(mine: list[float], baseline: list[float]) -> pd.Series:
    """The effects row of a study with one curve (its Holm family has one member: p_holm = p)."""
    rows = [{"architecture": arch, "seed": seed, "model": f"{arch}_{seed}", "attack": "fgsm", "attack_params": "{}",
             "metric": "accuracy", "summary": "auc", "eps": math.nan, "eps_label": "auc", "value": v,
             "clean_accuracy": v}
            for arch, values in (("vgg-att3-concat-pc", mine), ("vgg", baseline)) for seed, v in enumerate(values)]
    return st.effects(pd.DataFrame(rows), {"vgg-att3-concat-pc": "vgg"}).iloc[0]


def test_welch_difference_matches_scipy_and_verdicts_follow_the_interval():
    a, b = [0.35, 0.36, 0.34, 0.37], [0.28, 0.29, 0.27, 0.30]
    w = st.welch(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert w["p_value"] == pytest.approx(ref.pvalue) and w["df"] == pytest.approx(ref.df)
    row = _one_curve(a, b)
    assert row.ci_low > 0 and row.p_holm == pytest.approx(ref.pvalue) and row.verdict == "more robust"
    assert _one_curve(b, a).verdict == "less robust"
    assert _one_curve([0.3, 0.5, 0.2], [0.35, 0.25, 0.45]).verdict == "no detectable difference"
    one = st.welch([0.9], [0.1, 0.2])
    assert one["test"] == "none" and _one_curve([0.9], [0.1, 0.2]).verdict == "too few seeds for a verdict"
    two = _one_curve([0.35, 0.36], [0.28, 0.29])  # Welch's df ~ 2: no verdict under 3 seeds per arm
    assert two.p_value < 0.05 and two.verdict == "too few seeds for a verdict"
    flat = st.welch([1 / 32] * 5, [0.0] * 5)  # no observed spread is no test, not certainty
    assert flat["test"] == "none" and math.isnan(flat["p_value"])
    assert _one_curve([1 / 32] * 5, [0.0] * 5).verdict == "too few seeds for a verdict"


def _seed_frame(values: dict[str, list[float]], eps=(0.0, 1 / 255)) -> pd.DataFrame:
    rows = []
    for arch, seeds in values.items():
        for seed, v in enumerate(seeds):
            for e in eps:
                rows.append({"model": f"{arch}_seed{seed}", "attack": "fgsm", "attack_params": "{}", "eps": e,
                             "eps_label": "0" if e == 0 else "1/255", "accuracy": v - e, "worst_case_accuracy": v - 2 * e,
                             "clean_accuracy": v, "architecture": "ignored", "seed": 99})
    results = pd.DataFrame(rows)
    members = pd.DataFrame([{"architecture": a, "seed": s, "model": f"{a}_seed{s}"}
                            for a, seeds in values.items() for s in range(len(seeds))])
    return st.per_seed(results, members)


def test_tables_use_the_members_architecture_and_training_seed():
    seeds = _seed_frame({"vgg": [0.5, 0.6, 0.55], "vgg-att3-concat-pc": [0.8, 0.82, 0.81]})
    assert set(seeds["seed"]) == {0, 1, 2} and "ignored" not in set(seeds["architecture"])
    table = st.study_table(seeds)
    row = table[(table.architecture == "vgg") & (table.metric == "accuracy") & (table.summary == "auc")].iloc[0]
    assert row.n_seeds == 3 and row["mean"] == pytest.approx(np.mean([0.5, 0.6, 0.55]) - 0.5 / 255)
    effects = st.effects(seeds, {"vgg-att3-concat-pc": "vgg"})
    auc_rows = effects[effects.summary == "auc"]
    assert len(auc_rows) == 2 and set(auc_rows.verdict) == {"more robust"}
    assert auc_rows["p_holm"].notna().all()
    per_eps = effects[effects.summary == "eps"]  # both curves hold: their per-eps rows form the second family
    assert per_eps["p_holm"].to_numpy() == pytest.approx(multipletests(per_eps["p_value"], method="holm")[1])


def test_a_curve_verdict_must_survive_holm():
    """Two curves each with p ~ 0.03 read "more robust" unadjusted; Holm over both says neither is."""
    rows = []
    for attack, shift in (("fgsm", 0.0), ("pgd", 0.0)):
        for arch, values in (("vgg", [0.50, 0.53, 0.47, 0.52, 0.48]),
                             ("vgg-att3-concat-pc", [0.52, 0.57, 0.52, 0.55, 0.54])):  # p = 0.028
            for seed, v in enumerate(values):
                rows.append({"architecture": arch, "seed": seed, "model": f"{arch}_{seed}", "attack": attack,
                             "attack_params": "{}", "metric": "accuracy", "summary": "auc", "eps": math.nan,
                             "eps_label": "auc", "value": v + shift, "clean_accuracy": v})
    effects = st.effects(pd.DataFrame(rows), {"vgg-att3-concat-pc": "vgg"})
    assert (effects["ci_low"] > 0).all() and (effects["p_holm"] >= 0.05).all(), effects[["p_value", "p_holm"]]
    assert set(effects["verdict"]) == {"no detectable difference"}


def test_holm_is_statsmodels_holm():
    p = np.array([0.01, 0.04, 0.03])
    assert list(st.holm(p)) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert len(st.holm(np.array([]))) == 0


def test_mcnemar_is_exact_on_discordant_pairs():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([0, 0, 0, 1, 0, 1, 1, 0], bool)
    assert st.mcnemar_p(a, b) == pytest.approx(scipy_stats.binomtest(3, 4, 0.5).pvalue)


# ------------------------------------------------------------------ members and whole runs
@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    (folder / "tiny.toml").write_text(TINY)
    events = []
    result = run_study(folder / "tiny.toml", folder / "out", jobs=2, report=True, on_training=events.append)
    return folder, result, events


def test_a_study_trains_sweeps_and_writes_every_table(tiny_study):
    folder, result, events = tiny_study
    out = folder / "out"
    for name in ("members.csv", "per_seed.csv", "study.csv", "effects.csv", "within_seed.csv", "provenance.json",
                 "report/index.html", "sweep/results.csv", "sweep/per_example.csv"):
        assert (out / name).exists(), name
    assert sorted({(e.architecture, e.seed) for e in events}) == [("vgg", 0), ("vgg", 1), ("vgg-att3-concat-pc", 0),
                                                                 ("vgg-att3-concat-pc", 1)]
    assert result.members["trained"].all() and len(result.members) == 4
    effects = pd.read_csv(out / "effects.csv")
    assert set(effects["architecture"]) == {"vgg-att3-concat-pc"} and set(effects["baseline"]) == {"vgg"}
    assert effects["difference"].dtype == float
    within = pd.read_csv(out / "within_seed.csv")
    assert set(within["seed"]) == {0, 1} and within["mcnemar_p"].between(0, 1).all()


def test_rerunning_a_study_trains_nothing_and_gives_the_same_tables(tiny_study, monkeypatch):
    folder, result, _ = tiny_study
    from robust_attn.study import members

    monkeypatch.setattr(members, "train", lambda *a, **k: pytest.fail("a finished study trained again"))
    again = run_study(folder / "tiny.toml", folder / "out", report=False)
    assert not again.members["trained"].any()
    pd.testing.assert_frame_equal(again.effects, result.effects)


@pytest.mark.parametrize("first, second", [
    ("n = 24", "n = 32"),  # the case: two study files that differ only in [evaluate] n
    ('n = 32\ndataset = "cifar10-embedded"', 'n = 32\ndataset = "synthetic"'),  # two datasets, same n
], ids=["two-n", "two-datasets"])
def test_tables_take_the_asking_commands_cells_only(tiny_study, tmp_path, first, second):
    """Two study files into one --out: the folder rightly keeps both sets of cells, and the second
    study's tables (within-seed McNemar rows included) are exactly those it gives alone."""
    folder, _, _ = tiny_study
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    for out in (shared, alone):  # the members, trained once by the fixture: nothing is trained here
        shutil.copytree(folder / "out" / "checkpoints", out / "checkpoints")
    files = {}
    for name, evaluate in (("first", first), ("second", second)):
        files[name] = tmp_path / f"{name}.toml"
        files[name].write_text(TINY.replace("n = 32", evaluate))
    run_study(files["first"], shared, report=False)
    together = run_study(files["second"], shared, report=False)
    by_itself = run_study(files["second"], alone, report=False)
    cells = pd.read_csv(shared / "sweep" / "results.csv")
    assert cells[["dataset", "n"]].drop_duplicates().shape[0] == 2, "the folder keeps both runs' cells"
    assert len(together.within_seed) == 2 * 3  # seeds x eps, one row each
    for name in ("per_seed", "study", "effects", "within_seed"):
        pd.testing.assert_frame_equal(getattr(together, name), getattr(by_itself, name))


def test_a_checkpoint_is_found_by_its_recorded_recipe_whatever_its_name(tiny_study, tmp_path):
    folder, result, _ = tiny_study
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    for i, path in enumerate(result.members["checkpoint"]):
        shutil.copy(path, elsewhere / f"renamed_{i}.pt")
    (elsewhere / "not_a_checkpoint.pt").write_text("hello")
    spec = dataclasses.replace(load_study(folder / "tiny.toml"), checkpoints=(elsewhere,))
    found, missing = find_members(spec, tmp_path / "fresh_out")
    assert missing == [] and {p.checkpoint.parent for p in found} == {elsewhere}
    other_recipe = dataclasses.replace(spec, recipe=dataclasses.replace(spec.recipe, lr=0.01))
    assert len(find_members(other_recipe, tmp_path / "fresh_out")[1]) == 4


def test_an_interrupted_training_resumes_from_its_last_epoch(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY.replace("epochs = 1", "epochs = 3").replace("seeds = [0, 1]", "seeds = [0]"))
    spec = dataclasses.replace(load_study(path), architectures=("vgg",), baselines={})

    class Stop(Exception):
        pass

    def stop_after_first_epoch(event):  # epoch 1's state is saved; epoch 2 is lost with the interruption
        if event.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_members(spec, [("vgg", 0)], tmp_path / "out", on_event=stop_after_first_epoch)
    assert (tmp_path / "out" / "checkpoints" / "vgg_seed0.pt.state").exists()
    seen = []
    train_members(spec, [("vgg", 0)], tmp_path / "out", on_event=seen.append)
    assert [e.epoch for e in seen] == [0, 2, 3]  # the start, then epochs 2 and 3: epoch 1 was not redone


def test_a_member_path_holding_another_recipe_is_refused(tiny_study, tmp_path):
    folder, _, _ = tiny_study
    spec = load_study(folder / "tiny.toml")
    spec = dataclasses.replace(spec, recipe=dataclasses.replace(spec.recipe, lr=0.01))
    with pytest.raises(UserError, match="trained with another recipe"):
        find_members(spec, folder / "out")


def test_missing_training_data_fails_before_any_work(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY.replace('dataset = "synthetic"', 'dataset = "cifar10-subset"\ndata_dir = "nowhere"'))
    with pytest.raises(UserError, match="must be trained .* does not exist"):
        run_study(path, tmp_path / "out", report=False)
    path.write_text(TINY.replace('dataset = "synthetic"', 'dataset = "cifar10-subset"'))  # no data_dir at all
    with pytest.raises(UserError, match=r"cannot be loaded \(set \[train\] data_dir\)"):
        run_study(path, tmp_path / "out", report=False)
    assert not (tmp_path / "out").exists(), "a study that cannot start leaves nothing behind"


# ------------------------------------------------------------------ the shipped study
@pytest.mark.parametrize("file", STUDIES, ids=lambda f: f.stem)
def test_every_shipped_study_finds_all_its_checkpoints_in_models(file):
    spec = load_study(file)
    found, missing = find_members(spec, ROOT / "results" / "never-written")
    assert missing == [], f"shipped study would train {missing}"
    assert len(found) == len(spec.architectures) * len(spec.seeds) >= 10
    assert all(m.checkpoint.parent == ROOT / "models" for m in found)


def test_the_robust_study_takes_only_checkpoints_of_its_threat_model():
    """Its members were trained adversarially; the undefended study's, of the same architectures and
    seeds, are never taken for them (and the other way round)."""
    from robust_attn.checkpoints import read_checkpoint_file

    robust, _ = find_members(load_study(ROBUST), ROOT / "results" / "never-written")
    plain, _ = find_members(load_study(SHIPPED), ROOT / "results" / "never-written")
    assert not {m.checkpoint for m in robust} & {m.checkpoint for m in plain}
    for m in robust:
        meta = read_checkpoint_file(m.checkpoint)["metadata"]
        assert meta["training_threat_model"] == "fast-fgsm" and meta["training_threat"]["eps"] == "8/255"


def test_the_cli_runs_a_study_and_prints_the_verdicts(tiny_study):
    folder, _, _ = tiny_study
    proc = run_cli("study", str(folder / "tiny.toml"), "--out", str(folder / "out"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "vgg-att3-concat-pc" in proc.stdout and "verdict" in proc.stdout.lower()
    bad = folder / "bad.toml"
    bad.write_text(TINY.replace("epochs", "epoch"))
    proc = invoke("study", str(bad))
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1


# the undefended studies run the same pipeline with other attacks: other repetitions, left to -m thorough
@pytest.mark.slow
@pytest.mark.parametrize("file", [pytest.param(f, marks=pytest.mark.thorough) if f != ROBUST else f for f in STUDIES],
                         ids=lambda f: f.stem)
def test_every_shipped_study_runs_end_to_end_without_training(file, tmp_path, monkeypatch):
    """A shipped study on fewer images: nothing is trained, every comparison gets a verdict row."""
    from robust_attn.study import members

    monkeypatch.setattr(members, "train", lambda *a, **k: pytest.fail("the shipped study trained"))
    from robust_attn.attacks import parse_eps_grid

    spec = load_study(file)  # its grid shrunk to 0, 2/255 on 16 images, iterative attacks to 5 steps: the pipeline
    attacks = tuple(dataclasses.replace(a, params={**a.params, "steps": 5}) if "steps" in a.params else a
                    for a in spec.evaluation.attacks)
    spec = dataclasses.replace(spec, evaluation=dataclasses.replace(spec.evaluation, n=16, attacks=attacks,
                                                                    grid=parse_eps_grid("0,2")))
    result = run_study(spec, tmp_path / "out", report=True)
    assert not result.members["trained"].any() and len(result.members) == 10
    verdicts = result.effects[result.effects["summary"] == "auc"]
    names = sorted(a.name for a in spec.evaluation.attacks)
    assert sorted(zip(verdicts["attack"], verdicts["metric"])) == [
        (a, metric) for a in names for metric in ("accuracy", "worst_case_accuracy")]
    assert (verdicts["n_seeds"] == 5).all() and (verdicts["n_seeds_baseline"] == 5).all()
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert "verdict" in page.lower()
    threat = json.loads((tmp_path / "out" / "provenance.json").read_text())["training_threat"]
    assert threat == ("fast-fgsm 8/255 (1 step of 10/255)" if file == ROBUST else "standard") and threat in page


def test_the_api_functions_are_not_shadowed_by_their_modules_whatever_was_imported_first():
    """The run functions are named for what they do (``run_sweep``), not like the modules that hold them, so
    importing ``robust_attn.sweep.engine`` or ``robust_attn.study.run`` cannot shadow them."""
    import subprocess
    import sys

    code = ("import robust_attn as ra, robust_attn.study.run, robust_attn.sweep.engine, robust_attn.transfer; "
            "import types; assert all(isinstance(m, types.ModuleType) and type(m) is types.ModuleType "
            "for m in (ra.sweep, ra.study, ra.transfer)); "
            "assert ra.run_sweep is ra.sweep.engine.run_sweep and ra.run_study is ra.study.run.run_study; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.slow
@pytest.mark.thorough  # the default run interrupts and resumes a sweep and a training; this, a parallel study
def test_ctrl_c_stops_a_parallel_study_at_once_and_a_rerun_finishes_it(tmp_path):
    """Issue 13's acceptance: kill a study with --jobs 2 during training (SIGINT to its process group,
    as a terminal's Ctrl-C), then rerun it: the queued trainings were cancelled, not run to the end,
    and the rerun continues and finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "s.toml"
    path.write_text(TINY.replace("epochs = 1", "epochs = 30"))  # long enough that the signal lands in training
    cmd = [sys.executable, "-m", "robust_attn", "study", str(path), "--out", str(tmp_path / "out"), "--jobs", "2",
           "--no-report"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell without job control starts background jobs (CI under nohup, say) with SIGINT ignored, which
    # the child would inherit: give it the default handler, as a terminal's Ctrl-C meets it.
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:  # non-terminal progress: one line per epoch
        if "epoch 1/30" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    start = time.monotonic()
    proc.communicate(timeout=120)
    assert proc.returncode == 130 and time.monotonic() - start < 60
    checkpoints = tmp_path / "out" / "checkpoints"
    assert len(list(checkpoints.glob("*.pt"))) < 4, "the queued trainings ran after Ctrl-C"
    rerun = run_cli("study", str(path), "--out", str(tmp_path / "out"), "--jobs", "2", "--no-report")
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(checkpoints.glob("*.pt"))) == 4 and not list(checkpoints.glob("*.state"))
