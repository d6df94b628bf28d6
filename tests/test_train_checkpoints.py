from __future__ import annotations

import json
import threading
import zipfile

import pytest
import torch
from filelock import FileLock

from robust_attn.checkpoints import load_checkpoint, read_manifest, register_in_manifest, resolve_checkpoints, save_checkpoint
from robust_attn.data import image_set_sha256, load_dataset
from robust_attn.errors import UserError
from robust_attn.models import create_model
from robust_attn.train import TrainConfig, evaluate_accuracy, train

from .conftest import MODELS_DIR, TEST_THREADS, invoke, run_cli


@pytest.fixture(scope="module")
def synthetic_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "att.pt"
    result = run_cli("train", "vgg-att3-concat-pc", "--dataset", "synthetic", "--epochs", "1", "--width", "0.125",
                     "--seed", "3", "--threads", TEST_THREADS, "--out", str(out), "--manifest")
    assert result.returncode == 0, result.stderr
    return out


def test_train_cli_writes_a_checkpoint_that_reloads_into_identical_logits(synthetic_ckpt):
    ckpt = load_checkpoint(synthetic_ckpt)
    meta = ckpt.metadata
    assert meta["architecture"] == "vgg-att3-concat-pc" and meta["width"] == 0.125 and meta["dataset"] == "synthetic"
    assert meta["seed"] == 3 and meta["epochs"] == 1 and 0 <= meta["clean_accuracy"] <= 1
    assert {"num_classes", "in_channels", "mean", "std", "version", "training_seconds"} <= set(meta)
    # the images its clean accuracy was measured on, so a sweep knows when it may compare (admission check)
    assert meta["test_data_sha256"] == image_set_sha256(load_dataset("synthetic").test)
    x = torch.rand(4, 3, 32, 32)
    again = load_checkpoint(synthetic_ckpt)
    assert torch.equal(ckpt.model(x), again.model(x))
    entry = read_manifest(synthetic_ckpt.parent)["att"]
    assert entry.sha256 == ckpt.sha256 and entry.command.startswith("robust-attn train vgg-att3-concat-pc")


def test_training_is_deterministic_given_the_seed(tmp_path, synthetic_ckpt):
    """Same seed, same thread count (the CLI run used --threads TEST_THREADS): the same weights, bit for bit."""
    cfg = TrainConfig("vgg-att3-concat-pc", "synthetic", epochs=1, width=0.125, seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(TEST_THREADS))
    try:
        path = train(cfg, tmp_path / "again.pt")
    finally:
        torch.set_num_threads(threads)
    a, b = load_checkpoint(path).model.state_dict(), load_checkpoint(synthetic_ckpt).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_saved_state_matches_an_uninterrupted_run(tmp_path):
    import shutil

    cfg = TrainConfig("vgg", "synthetic", epochs=2, width=0.125, seed=5)
    full = load_checkpoint(train(cfg, tmp_path / "full.pt")).model.state_dict()
    # a run killed after epoch 1 leaves its state file; recreate that by running 1 of 2 epochs
    seen = []

    def kill_after_state(stats):
        seen.append(stats.epoch)

    out = tmp_path / "part.pt"
    import robust_attn.train as train_mod

    original = train_mod._save_state

    def save_then_die(path, *args):
        original(path, *args)
        if args[-2] == 1:
            raise KeyboardInterrupt

    train_mod._save_state = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out)
    finally:
        train_mod._save_state = original
    assert out.with_name(out.name + ".state").exists() and not out.exists()
    train(cfg, out, resume=True, on_epoch=kill_after_state)
    assert seen == [2]
    resumed = load_checkpoint(out).model.state_dict()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    shutil.rmtree(tmp_path)


def test_train_on_real_subset_images(tmp_path, dev_data):
    data = dev_data("cifar10-subset")
    result = run_cli("train", "vgg", "--dataset", "cifar10-subset", "--data-dir", str(data), "--width", "0.125",
                     "--epochs", "1", "--threads", TEST_THREADS, "--out", str(tmp_path / "vgg.pt"))
    assert result.returncode == 0, result.stderr
    meta = load_checkpoint(tmp_path / "vgg.pt").metadata
    assert meta["n_test"] == 932 and meta["clean_accuracy"] > 0.15  # above chance after one real epoch


def test_corrupt_and_truncated_checkpoints_are_user_errors(tmp_path, synthetic_ckpt):
    data = synthetic_ckpt.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    for name in ("trunc.pt", "junk.pt"):
        with pytest.raises(UserError, match="not a readable checkpoint"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(UserError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path, synthetic_ckpt):
    blob = torch.load(synthetic_ckpt, weights_only=True)
    blob["metadata"]["architecture"] = "vgg"
    torch.save(blob, tmp_path / "lying.pt")
    with pytest.raises(UserError, match="do not fit vgg"):
        load_checkpoint(tmp_path / "lying.pt")


def test_sha256_mismatch_with_manifest_is_refused(tmp_path, synthetic_ckpt):
    with pytest.raises(UserError, match="does not match the manifest"):
        load_checkpoint(synthetic_ckpt, expected_sha256="0" * 64)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_MARKER",))


def test_a_checkpoint_that_runs_code_when_unpickled_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = create_model("vgg", width=0.125)
    torch.save({"format": "robust-attn-checkpoint/1", "metadata": {"evil": _Exploit()}, "state_dict": model.state_dict()},
               tmp_path / "evil.pt")
    # the payload is real: a plain pickle load would run it
    with zipfile.ZipFile(tmp_path / "evil.pt") as z:
        assert any(b"system" in z.read(n) for n in z.namelist() if n.endswith(".pkl"))
    with pytest.raises(UserError, match="refusing to load"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED_MARKER").exists()
    result = run_cli("sweep", "--models", str(tmp_path / "evil.pt"), "--attack", "fgsm", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "refusing to load" in result.stderr
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_resolve_checkpoints_by_name_path_and_glob(tmp_path):
    model = create_model("vgg", width=0.125)
    for name in ("a", "b"):
        save_checkpoint(model, tmp_path / f"{name}.pt", {"dataset": "synthetic", "clean_accuracy": 0.5})
        register_in_manifest(tmp_path / f"{name}.pt")
    names = lambda specs: [r.name for r in resolve_checkpoints(specs, tmp_path)]
    assert names(None) == ["a", "b"]
    assert names(["b"]) == ["b"]
    assert names([str(tmp_path / "*.pt")]) == ["a", "b"]
    assert all(r.sha256 for r in resolve_checkpoints([str(tmp_path / "a.pt")], tmp_path))  # path found in manifest
    with pytest.raises(UserError, match="did you mean 'a'"):
        resolve_checkpoints(["aa"], tmp_path)
    json.loads((tmp_path / "manifest.json").read_text())


def test_manifest_registration_waits_for_a_concurrent_writer(tmp_path):
    """Trainings run side by side register at their end; a registration must not overwrite a concurrent one."""
    model = create_model("vgg", width=0.125)
    for name in ("a", "b"):
        save_checkpoint(model, tmp_path / f"{name}.pt", {"dataset": "synthetic", "clean_accuracy": 0.5})
    register_in_manifest(tmp_path / "a.pt")
    with FileLock(tmp_path / "manifest.json.lock"):  # another process in the middle of its read-modify-write
        worker = threading.Thread(target=register_in_manifest, args=(tmp_path / "b.pt",))
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive(), "registration did not wait for the manifest lock"
        assert list(read_manifest(tmp_path)) == ["a"]
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert list(read_manifest(tmp_path)) == ["a", "b"]


def test_shipped_checkpoints_meet_their_targets_with_one_recipe(shipped, embedded_cifar):
    """The small-checkpoint issue's acceptance: >= 70% clean accuracy on the 932 CIFAR-10 test images
    (recomputed here, and equal to what the manifest records), the five trained by one command that differs
    only in the architecture (a fair comparison), >= 90% for Fashion-MNIST, models/ under 30 MB (the
    study issue's bound, seed replicas included; 60 MB since the robust-training issue added its checkpoints,
    whose own bars are in tests/test_shipped_robust.py)."""
    manifest = read_manifest(MODELS_DIR)
    recipes = set()
    for name, ckpt in shipped.items():
        if not ckpt.metadata["architecture"].startswith("vgg"):  # the ResNets: tests/test_resnet.py (>= 65%)
            continue
        if manifest[name].training_threat:  # adversarially trained: tests/test_shipped_robust.py
            continue
        accuracy = evaluate_accuracy(ckpt.model, embedded_cifar)
        assert accuracy == manifest[name].clean_accuracy, name
        assert accuracy >= 0.70, f"{name}: {accuracy:.3f}"
        arch = manifest[name].architecture
        recipes.add(manifest[name].command.replace(f" {arch} ", " ARCH ").replace(f"/{name}.pt", "/OUT.pt"))
    assert len(recipes) == 1, recipes
    fashion = [e for e in manifest.values() if e.dataset == "fashion-mnist" and not e.training_threat]
    assert len(fashion) >= 2 and all(e.clean_accuracy >= 0.90 for e in fashion)
    assert sum(f.stat().st_size for f in MODELS_DIR.iterdir()) < 60 * 2**20


def _two_checkpoint_manifest(tmp_path):
    model = create_model("vgg", width=0.125)
    for name in ("a", "b"):
        save_checkpoint(model, tmp_path / f"{name}.pt", {"dataset": "synthetic", "clean_accuracy": 0.5})
        register_in_manifest(tmp_path / f"{name}.pt")


def test_a_manifest_entry_whose_file_is_missing_is_skipped_or_with_strict_an_error(tmp_path, caplog):
    _two_checkpoint_manifest(tmp_path)
    (tmp_path / "b.pt").unlink()
    with caplog.at_level("WARNING", logger="robust_attn.checkpoints"):
        refs = resolve_checkpoints(None, tmp_path)
    assert [r.name for r in refs] == ["a"]
    assert any("'b'" in r.message and str(tmp_path / "b.pt") in r.message and r.levelname == "WARNING"
               for r in caplog.records), caplog.text
    with pytest.raises(UserError, match=r"manifest entry 'b'.*b\.pt does not exist") as info:
        resolve_checkpoints(None, tmp_path, strict=True)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="does not exist"):  # named explicitly: an error, strict or not
        from robust_attn.run.inputs import load_models

        load_models(["b"], tmp_path)
    (tmp_path / "a.pt").unlink()
    with pytest.raises(UserError, match="no checkpoints"):
        resolve_checkpoints(None, tmp_path)


def test_seed_replicas_are_left_out_of_the_default_set_but_stay_addressable(tmp_path, caplog):
    _two_checkpoint_manifest(tmp_path)
    model = create_model("vgg", width=0.125)
    for seed in (1, 2):
        save_checkpoint(model, tmp_path / f"a_s{seed}.pt", {"dataset": "synthetic", "clean_accuracy": 0.5, "seed": seed})
        register_in_manifest(tmp_path / f"a_s{seed}.pt", replica_of="a")
    assert read_manifest(tmp_path)["a_s1"].replica_of == "a" and read_manifest(tmp_path)["a"].replica_of is None
    with caplog.at_level("INFO", logger="robust_attn.checkpoints"):
        assert [r.name for r in resolve_checkpoints(None, tmp_path)] == ["a", "b"]
    assert any("2 seed replica" in r.message and r.levelname == "INFO" for r in caplog.records), caplog.text
    assert [r.name for r in resolve_checkpoints(["a_s2"], tmp_path)] == ["a_s2"]
    by_path = resolve_checkpoints([str(tmp_path / "a_s*.pt")], tmp_path)
    assert [r.name for r in by_path] == ["a_s1", "a_s2"] and all(r.sha256 for r in by_path)
    rows = json.loads((tmp_path / "manifest.json").read_text())["checkpoints"]
    assert [("replica_of" in r) for r in rows] == [False, True, True, False]  # a, a_s1, a_s2, b


def test_rewriting_the_shipped_manifest_keeps_its_bytes(tmp_path):
    from robust_attn.checkpoints import write_manifest

    write_manifest(tmp_path, read_manifest(MODELS_DIR))
    assert (tmp_path / "manifest.json").read_bytes() == (MODELS_DIR / "manifest.json").read_bytes()


def test_train_refuses_to_overwrite_a_checkpoint_without_force(tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"an earlier result")
    args = ["train", "vgg", "--dataset", "synthetic", "--epochs", "1", "--width", "0.125", "--threads", TEST_THREADS,
            "--out", str(out)]
    refused = invoke(*args)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == f"error: checkpoint {out} exists; pass --force to overwrite (or --resume to continue it)"
    assert out.read_bytes() == b"an earlier result" and not out.with_name("m.pt.state").exists()
    forced = invoke(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert load_checkpoint(out).metadata["architecture"] == "vgg"
    resumed = invoke(*args, "--resume")  # --resume needs no --force, as before
    assert resumed.returncode == 0, resumed.stderr
