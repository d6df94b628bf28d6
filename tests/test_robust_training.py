"""Adversarial training (issue 23, parts 1-3): threat models, the held-out slice, catastrophic and robust
overfitting, resume, identity in metadata and study keys, and standard training left as it was.

Fast by construction: width 0.0625, 64 synthetic training images (16 held out), 2 epochs, one thread."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import robust_attn.train as train_mod
from robust_attn.attacks.grids import parse_eps_value
from robust_attn.checkpoints import load_checkpoint
from robust_attn.data import Splits
from robust_attn.errors import UserError
from robust_attn.holdout import HeldoutEpoch, best_epoch, catastrophic_overfitting
from robust_attn.study.spec import parse_study, recipe_key
from robust_attn.study.members import wanted_key
from robust_attn.threat_models import resolve_threat
from robust_attn.threat_training import check_input_gradients
from robust_attn.train import TrainConfig, train

ADVERSARIAL = ["pgd", "trades", "fast-fgsm"]
STANDARD = TrainConfig("vgg", "synthetic", epochs=2, width=0.0625, seed=3, batch_size=32)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # bit-for-bit comparisons at one thread


def adversarial(threat: str, **kw) -> TrainConfig:
    return TrainConfig("vgg", "synthetic", epochs=kw.pop("epochs", 2), width=0.0625, seed=1, batch_size=32,
                       threat_model=threat, holdout=16, **kw)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def killed_after_epoch(cfg: TrainConfig, out: Path, splits: Splits, epoch: int, monkeypatch) -> None:
    """A run killed right after epoch ``epoch``'s state was saved (as tests/test_train_checkpoints.py does)."""
    original = train_mod._save_state

    def save_then_die(path, *args):
        original(path, *args)
        if args[-2] == epoch:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(train_mod, "_save_state", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, splits=splits)
    assert out.with_name(out.name + ".state").exists() and not out.exists()


@pytest.mark.parametrize("threat", ADVERSARIAL)
def test_each_threat_model_trains_records_its_identity_and_curves_and_resumes_identically(threat, small, tmp_path,
                                                                                            monkeypatch):
    cfg = adversarial(threat)
    full = train(cfg, tmp_path / "full.pt", splits=small)
    meta = load_checkpoint(full).metadata
    expected = resolve_threat(threat)
    assert meta["training_threat_model"] == threat
    rec = meta["training_threat"]
    assert rec["eps"] == "8/255" and rec["eps_value"] == pytest.approx(8 / 255) and rec["steps"] == expected.steps
    assert rec["step_size"] == expected.step_size_label and rec["beta"] == expected.beta
    assert meta["train_config"]["threat_model"] == threat and meta["train_config"]["threat_eps"] == "8/255"
    assert meta["holdout"]["size"] == 16
    curves = meta["heldout_curves"]
    assert [c["epoch"] for c in curves] == [1, 2]
    assert all(0 <= c[k] <= 1 for c in curves for k in ("clean", "fgsm", "pgd", "test_clean"))
    kept = meta["kept_epoch"]
    assert kept == max(reversed(curves), key=lambda c: c["pgd"])  # best held-out PGD, the later on a tie
    assert meta["final_epoch"] == curves[-1] and meta["clean_accuracy"] == kept["test_clean"]
    assert meta["catastrophic_overfitting"]["detected"] == [] and "PGD-10" in meta["catastrophic_overfitting"]["rule"]

    out = tmp_path / "part.pt"
    killed_after_epoch(cfg, out, small, 1, monkeypatch)
    train(cfg, out, resume=True, splits=small)
    a, b = weights(full), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(out).metadata["heldout_curves"] == curves


def test_standard_training_holds_nothing_out_and_records_what_it_did(small, tmp_path):
    """Standard training stays what it was: every training image in every epoch (no held-out slice drawn from
    the seed's generator), no new metadata, the same recorded configuration keys, and deterministic."""
    steps: list[int] = []
    cfg = TrainConfig(**{**vars(STANDARD), "batch_size": 16})
    path = train(cfg, tmp_path / "std.pt", splits=small, on_batch=lambda done, total, *_: steps.append(total))
    assert set(steps) == {len(small.train) // 16}
    again = train(cfg, tmp_path / "again.pt", splits=small)
    assert digest(weights(path)) == digest(weights(again))
    meta = load_checkpoint(path).metadata
    assert meta["training_threat_model"] == "standard"
    assert not {"training_threat", "heldout_curves", "holdout"} & set(meta)
    assert set(meta["train_config"]) == {"architecture", "dataset", "epochs", "width", "seed", "batch_size", "lr",
                                         "momentum", "weight_decay", "schedule", "augment", "download"}


def scripted_holdout(monkeypatch, script):
    """Replace the held-out measurement by a script of (clean, fgsm, pgd) per epoch."""
    calls = iter(script)
    monkeypatch.setattr(train_mod, "evaluate_holdout", lambda *args, **kw: next(calls))


def saved_weights(monkeypatch) -> dict[int, dict[str, torch.Tensor]]:
    """The weights each epoch's training state saved, by epoch."""
    original, seen = train_mod._save_state, {}

    def save(path, *args):
        seen[args[-2]] = {k: v.clone() for k, v in args[1].state_dict().items()}
        original(path, *args)

    monkeypatch.setattr(train_mod, "_save_state", save)
    return seen


COLLAPSE = [(0.5, 0.4, 0.30), (0.6, 0.5, 0.40), (0.6, 0.7, 0.05), (0.6, 0.7, 0.05)]


def test_catastrophic_overfitting_stops_and_keeps_the_best_held_out_epoch(small, tmp_path, monkeypatch):
    scripted_holdout(monkeypatch, COLLAPSE)
    seen = saved_weights(monkeypatch)
    path = train(adversarial("fast-fgsm", epochs=4), tmp_path / "co.pt", splits=small)
    meta = load_checkpoint(path).metadata
    assert meta["epochs_trained"] == 3 and sorted(seen) == [1, 2, 3]  # stopped at the collapse
    assert meta["catastrophic_overfitting"]["detected"] == [{"epoch": 3, "action": "stop"}]
    assert meta["kept_epoch"]["epoch"] == 2 and meta["final_epoch"]["epoch"] == 3
    kept = weights(path)
    assert all(torch.equal(kept[k], seen[2][k]) for k in kept)


def test_rollback_returns_to_the_best_epoch_and_trains_on(small, tmp_path, monkeypatch):
    scripted_holdout(monkeypatch, COLLAPSE)
    seen = saved_weights(monkeypatch)
    path = train(adversarial("fast-fgsm", epochs=4, on_overfit="rollback"), tmp_path / "rb.pt", splits=small)
    meta = load_checkpoint(path).metadata
    assert sorted(seen) == [1, 2, 3, 4] and meta["epochs_trained"] == 4
    assert all(torch.equal(seen[3][k], seen[2][k]) for k in seen[2])  # epoch 3's collapse rolled back
    assert [e["epoch"] for e in meta["catastrophic_overfitting"]["detected"]] == [3, 4]


def point(epoch: int, fgsm: float, pgd: float) -> HeldoutEpoch:
    return HeldoutEpoch(epoch, 0.8, fgsm, pgd, 0.8)


def test_the_catastrophic_overfitting_rule_on_constructed_curves():
    healthy = [point(1, 0.50, 0.35), point(2, 0.55, 0.40)]
    assert not catastrophic_overfitting(healthy) and not catastrophic_overfitting(healthy[:1])
    assert catastrophic_overfitting([*healthy, point(3, 0.70, 0.02)])  # PGD collapses, FGSM high
    assert not catastrophic_overfitting([*healthy, point(3, 0.10, 0.02)])  # both fall: no FGSM gap
    assert not catastrophic_overfitting([*healthy, point(3, 0.60, 0.33)])  # robust overfitting, not a collapse
    assert not catastrophic_overfitting([point(1, 0.5, 0.05), point(2, 0.6, 0.0)])  # too little to lose
    assert best_epoch([*healthy, point(3, 0.6, 0.40), point(4, 0.7, 0.1)]).epoch == 3


def test_adversarial_training_refuses_a_model_without_input_gradients(small, tmp_path, monkeypatch):
    from robust_attn.models import create_model

    def detached(*args, **kw):
        model = create_model(*args, **kw)
        model.register_forward_pre_hook(lambda module, inputs: (inputs[0].detach(),))
        return model

    monkeypatch.setattr(train_mod, "create_model", detached)
    with pytest.raises(UserError, match="gives its input no gradient"):
        train(adversarial("pgd"), tmp_path / "x.pt", splits=small)
    assert not list(tmp_path.iterdir())
    check_input_gradients(create_model("vgg", width=0.0625), (3, 32, 32), torch.device("cpu"), "vgg")


def test_eps_text_and_threat_options():
    assert parse_eps_value("8/255") == (8 / 255, "8/255")
    assert parse_eps_value("0.1") == (0.1, "0.1") and parse_eps_value("2/510")[1] == "1/255"
    assert resolve_threat("trades", eps="4/255", beta=1).record()["eps"] == "4/255"
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        parse_eps_value("2")


def test_study_members_are_keyed_by_their_training_threat_model(tmp_path):
    raw = {"name": "s", "architectures": ["vgg"], "seeds": [1], "evaluate": {"attacks": ["fgsm"]},
           "train": {"dataset": "synthetic", "epochs": 2, "width": 0.0625, "batch_size": 32}}
    standard = parse_study(raw, tmp_path / "s.toml")
    pgd = parse_study({**raw, "train": {**raw["train"], "threat_model": "pgd"}}, tmp_path / "s.toml")
    spelled = parse_study({**raw, "train": {**raw["train"], "threat_model": "pgd", "threat_eps": "8/255",
                                            "threat_steps": 7}}, tmp_path / "s.toml")
    assert wanted_key(standard, "vgg", 1) != wanted_key(pgd, "vgg", 1) == wanted_key(spelled, "vgg", 1)
    recorded = train_mod._config_record(pgd.recipe.train_config("vgg", 1))  # what its checkpoint records
    assert recorded["threat_eps"] == "8/255" and recipe_key(recorded) == wanted_key(pgd, "vgg", 1)
    assert recipe_key(train_mod._config_record(STANDARD))[-2:] == ("standard", None)
