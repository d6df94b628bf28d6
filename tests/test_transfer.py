"""Transfer attacks: crafted once per (source, attack, eps), evaluated on every target; the diagonal
is the white-box sweep's number exactly; a resumable store; one-line refusals."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import robust_attn
from robust_attn.checkpoints import read_manifest
from robust_attn.attacks import parse_eps_grid
from robust_attn.attacks import registry as attack_registry
from robust_attn.errors import UserError
from robust_attn.results import read_run_log
from robust_attn.sweep import resolve_attacks, run_sweep
from robust_attn.sweep import walks as sweep_walks
from robust_attn.transfer import (
    TRANSFER_COLUMNS,
    TRANSFER_EXAMPLE_COLUMNS,
    TRANSFER_EXAMPLES_FILE,
    TRANSFER_FILE,
    _plan,
    read_transfer_csv,
    read_transfer_examples_csv,
    run_transfer,
)

from .conftest import MODELS_DIR, run_cli

N = 64
BATCH = 32  # two batches: the per-batch seeds and the batching are part of what must match the sweep
GRID = "0,4"
SOURCES = ["vgg_c10s", "vgg-att3-concat-pc_c10s"]
TARGETS = [*SOURCES, "vgg-att2-concat-pc_c10s"]
ATTACKS = ["fgsm", "pgd"]
ARGS = {"steps": 3}  # pgd with 3 steps: as exact a check as 10, at a third of the cost


class Counter:
    """Counts attack builds (create_attack) and attack calls (the perturb functions they return)."""

    def __init__(self):
        self.builds: list[tuple[str, float]] = []
        self.calls: list[tuple[str, float, int]] = []

    def wrap(self, create):
        def counted(name, model, eps, seed=0, **params):
            self.builds.append((name, eps))
            perturb = create(name, model, eps, seed=seed, **params)

            def call(x, y):
                self.calls.append((name, eps, len(x)))
                return perturb(x, y)
            return call
        return counted


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One transfer into a folder, attack builds counted: 2 sources x 3 targets x fgsm, pgd x eps 0, 4/255."""
    out = tmp_path_factory.mktemp("transfer")
    counter = Counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_walks, "create_attack", counter.wrap(attack_registry.create_attack))
        frame = run_transfer(SOURCES, TARGETS, ATTACKS, GRID, n=N, batch_size=BATCH, out=out, models_dir=MODELS_DIR,
                         attack_args=ARGS)
    return out, frame, counter


def test_the_diagonal_equals_the_white_box_sweep_exactly(run):
    """fgsm and pgd at 0 and 4/255 on 64 images in two batches: source == target gives the sweep's
    per-eps accuracy (pgd: --no-fast-path, every point attacked at every eps) and clean accuracy."""
    _, frame, _ = run
    white = run_sweep(SOURCES, ATTACKS, GRID, n=N, batch_size=BATCH, fast_path=False, models_dir=MODELS_DIR,
                  attack_args=ARGS)
    diagonal = frame[frame["white_box"]].set_index(["source", "attack", "eps_label"])
    assert len(diagonal) == len(white) == len(SOURCES) * len(ATTACKS) * 2
    for r in white.itertuples():
        d = diagonal.loc[(r.model, r.attack, r.eps_label)]
        assert (d["n_correct"], d["clean_accuracy"]) == (r.n_correct, r.clean_accuracy), (r.model, r.attack, r.eps_label)
    assert (diagonal["target"] == diagonal.index.get_level_values("source")).all()
    # the attack does something on every source, and transfers less than it works white-box
    at4 = frame[frame["eps_label"] == "4/255"]
    assert (at4[at4["white_box"]]["accuracy"] < 0.5).all()
    assert at4[~at4["white_box"]]["accuracy"].mean() > at4[at4["white_box"]]["accuracy"].mean()


def test_each_source_attack_and_eps_is_crafted_once_whatever_the_targets(run):
    """pgd: one build and one call per source x eps x batch (not x 3 targets); fgsm reads the clean
    gradient sign (no attack object at all), as the sweep does."""
    _, _, counter = run
    batches = N // BATCH
    assert sorted(counter.builds) == sorted([("pgd", e) for _ in SOURCES for e in (0.0, 4 / 255) for _ in range(batches)])
    assert len(counter.calls) == len(SOURCES) * 2 * batches
    assert all(size == BATCH for *_, size in counter.calls)


def test_transfer_csv_and_examples_csv_follow_the_contract(run):
    out, frame, _ = run
    table = read_transfer_csv(out)
    assert tuple(table.columns) == TRANSFER_COLUMNS == tuple(frame.columns)
    assert len(table) == len(SOURCES) * len(TARGETS) * len(ATTACKS) * 2
    assert set(table["target"]) == set(TARGETS) and set(table["source"]) == set(SOURCES)
    for column in ("n", "eps", "n_correct", "accuracy", "ci_low", "ci_high", "clean_accuracy", "seed", "seconds"):
        assert pd.api.types.is_numeric_dtype(table[column]), column
    assert table["white_box"].dtype == bool and table["white_box"].sum() == len(SOURCES) * len(ATTACKS) * 2
    assert ((table["ci_low"] <= table["accuracy"]) & (table["accuracy"] <= table["ci_high"])).all()
    assert (table["accuracy"] == table["n_correct"] / N).all()
    assert set(table["eps_label"]) == {"0", "4/255"} and (table["source_sha256"].str.len() == 64).all()
    # eps 0: the examples are the clean images, so every target scores its clean accuracy
    at0 = table[table["eps"] == 0]
    assert (at0["accuracy"] == at0["clean_accuracy"]).all()

    examples = read_transfer_examples_csv(out / TRANSFER_EXAMPLES_FILE)
    assert tuple(examples.columns) == TRANSFER_EXAMPLE_COLUMNS
    assert len(examples) == len(table) * N
    counts = examples.groupby(["source", "target", "attack", "eps_label"])["robust"].sum()
    expected = table.set_index(["source", "target", "attack", "eps_label"])["n_correct"]
    assert counts.sort_index().tolist() == expected.sort_index().tolist()
    assert (examples["robust"] == (examples["adv_pred"] == examples["label"]).astype(int)).all()
    assert sorted(set(examples["index"])) == list(range(N))


def test_a_rerun_resumes_computes_nothing_and_returns_identical_rows(run, monkeypatch):
    out, frame, _ = run

    def no_work(*args, **kwargs):
        raise AssertionError("a finished cell was computed again")

    monkeypatch.setattr(sweep_walks, "create_attack", no_work)
    monkeypatch.setattr("robust_attn.transfer.prepare", no_work)
    before = (out / TRANSFER_FILE).read_text()
    again = run_transfer(SOURCES, TARGETS, ATTACKS, GRID, n=N, batch_size=BATCH, out=out, models_dir=MODELS_DIR,
                     attack_args=ARGS)
    pd.testing.assert_frame_equal(again, frame)
    assert (out / TRANSFER_FILE).read_text() == before
    runs = read_run_log(out)
    assert [r["event"] for r in runs] == ["start", "end", "start", "end"] and runs[-1]["status"] == "finished"
    assert runs[0]["kind"] == "transfer" and runs[0]["pairs"]["vgg_c10s"] == TARGETS


def test_other_settings_on_the_same_folder_are_refused_in_one_line(run):
    out, _, _ = run
    with pytest.raises(UserError, match="seed=0 there, seed=1 now") as info:
        run_transfer(["vgg_c10s"], ["vgg_c10s"], "fgsm", GRID, n=N, batch_size=BATCH, seed=1, out=out, models_dir=MODELS_DIR)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="batch_size=32 there, batch_size=64 now"):
        run_transfer(["vgg_c10s"], ["vgg_c10s"], "fgsm", GRID, n=N, batch_size=64, out=out, models_dir=MODELS_DIR)


@pytest.mark.parametrize("kwargs, message", [
    ({"sources": ["vgg_c10"]}, "unknown checkpoint 'vgg_c10'; did you mean 'vgg_c10s'"),
    ({"targets": ["vgg-att3-concat-pc"]}, "unknown checkpoint 'vgg-att3-concat-pc'; did you mean"),
    ({"targets": ["vgg_c10s", "vgg_fmnist"]}, "target vgg_fmnist is evaluated on fashion-mnist-embedded .* cifar10"),
    ({"attacks": "cw"}, "cw cannot transfer: it is a minimal-perturbation attack"),
    ({"attacks": "deepfool"}, "deepfool cannot transfer"),
    ({"attacks": "attention-shift"}, "attention-shift cannot transfer: it aims at the attention maps"),
    ({"attacks": ["fgsm", "corruptions"]}, "^corruptions cannot transfer: a common corruption does not look at any model"),
    ({"attacks": "fog"}, "^fog cannot transfer: a common corruption"),
    ({"attacks": "pgd", "attack_args": {"stepz": "3"}}, "did you mean 'steps'"),
])
def test_bad_inputs_are_one_line_errors(kwargs, message, tmp_path):
    args = {"sources": ["vgg_c10s"], "targets": ["vgg_c10s"], "attacks": "fgsm", **kwargs}
    with pytest.raises(UserError, match=message) as info:
        run_transfer(args.pop("sources"), args.pop("targets"), args.pop("attacks"), GRID, n=8, out=tmp_path / "out",
                 models_dir=MODELS_DIR, **args)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out" / TRANSFER_FILE).exists()


def test_defaults_pair_cifar_models_with_cifar_models_only():
    """No sources, no targets: every default checkpoint is a source, and its targets are those
    evaluated on the same images (the CIFAR models among themselves, Fashion-MNIST likewise). The
    plan alone (every model loaded, its evaluation images hashed, the pairs made; no attack)."""
    def pairs(sources, targets):
        plan = _plan(sources, targets, resolve_attacks(["fgsm"]), parse_eps_grid("0"), None, None, MODELS_DIR, 8,
                     False, 0, 256, torch.device("cpu"))
        return {s.name: [t.name for t in plan.targets[s.name]] for s in plan.sources}

    default = pairs(None, None)
    manifest = read_manifest(MODELS_DIR)
    cifar = {s for s in default if manifest[s].dataset == "cifar10-subset"}
    fashion = {s for s in default if manifest[s].dataset == "fashion-mnist"}
    assert len(cifar) >= 5 and len(fashion) >= 2 and cifar | fashion == set(default)
    assert not any("seed" in name for name in default)  # seed replicas are left out of the default set
    for source, targets in default.items():
        assert set(targets) == (cifar if source in cifar else fashion), source
    # a source named alone gets the default targets of its images, itself included
    assert set(pairs(["vgg_c10s_seed1"], None)["vgg_c10s_seed1"]) == cifar | {"vgg_c10s_seed1"}
    assert set(pairs(["vgg_fmnist"], [])["vgg_fmnist"]) == fashion
    # targets named, sources defaulted: the sources are the default checkpoints evaluated on the targets' images
    assert pairs(None, ["vgg_fmnist"]) == {s: ["vgg_fmnist"] for s in sorted(fashion)}


def test_cli_writes_transfer_csv_and_prints_the_table(tmp_path):
    out = tmp_path / "tr"
    result = run_cli("transfer", "--sources", "vgg_c10s,vgg-att3-concat-pc_c10s", "--targets",
                     "vgg_c10s,vgg-att3-concat-pc_c10s", "--attack", "fgsm", "--eps", "0:4:4", "-n", "16",
                     "--batch-size", "8", "--threads", "1", "--out", str(out), "--models-dir", str(MODELS_DIR),
                     "--no-report")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / TRANSFER_FILE} (8 rows)" in result.stdout
    assert "fgsm eps 4/255: accuracy (%)" in result.stdout and "source \\ target" in result.stdout
    assert "cell 4/4: vgg-att3-concat-pc_c10s fgsm eps=4/255 -> vgg_c10s" in result.stderr
    table = read_transfer_csv(out)
    assert len(table) == 8 and table["n"].eq(16).all()


def test_the_lazy_api_exports_run_transfer():
    import robust_attn.transfer as module

    assert robust_attn.run_transfer is module.run_transfer and "run_transfer" in robust_attn.__all__
