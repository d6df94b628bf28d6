"""Bring your own model: a module from Python, a ``module:function`` spec, an entry-point plugin."""
from __future__ import annotations

import copy
import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import robust_attn as ra
from robust_attn.checkpoints import load_checkpoint
from robust_attn.errors import UserError
from robust_attn.registry import Registry
from robust_attn.results import RESULTS_FILE
from robust_attn.user_models import UserModel, is_spec, load_spec, state_dict_sha256

from .conftest import MODELS_DIR, ROOT, TEST_THREADS, run_cli

DATA = "cifar10-embedded"
NUMBERS = ["eps_label", "n_correct", "accuracy", "worst_case_n_correct", "clean_accuracy", "max_perturbation",
           "attack_failures", "zero_gradient_fraction"]

# The file a user would write: `build` returns a seeded linear classifier on the flattened image.
MODEL_FILE = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


def seven():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 7))


def not_a_module():
    return 3
"""


def linear(outputs: int = 10) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, outputs))


def by_hand_sha256(module: nn.Module) -> str:
    """The documented hash, written out: sorted keys; key, dtype, shape, raw bytes."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        h.update(key.encode() + b"\0")
        h.update(f"{t.dtype}{tuple(t.shape)}".encode() + b"\0")
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "mymodels.py"
    path.write_text(MODEL_FILE)
    return path


# ---------------------------------------------------------------- (a) a module from Python

def test_plain_sequential_is_swept_with_its_state_dict_hash_and_left_untouched(embedded_cifar):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 32 * 32, 10)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    frame = ra.run_sweep({"mynet": net}, ["fgsm"], "0:2:1", data=DATA, n=24)

    assert list(frame["model"].unique()) == ["mynet"] and len(frame) == 3
    assert set(frame["checkpoint_sha256"]) == {by_hand_sha256(net)} == {state_dict_sha256(net)}
    assert set(frame["architecture"]) == {"Sequential"} and frame["width"].isna().all()
    assert set(frame["trained_on"]) == {"unknown"} and set(frame["dataset"]) == {DATA}
    with torch.no_grad():  # the clean column is the module's own argmax (eval mode) on the first 24 images
        pred = copy.deepcopy(net).eval()(embedded_cifar.x[:24].float() / 255).argmax(1)
    assert frame["clean_accuracy"].iloc[0] == pytest.approx(float((pred == embedded_cifar.y[:24]).float().mean()))
    # the caller's module: same mode, weights and BatchNorm statistics, layout and grad flags as before
    assert all(m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.is_contiguous() and p.requires_grad and p.grad is None for p in net.parameters())


def test_a_checkpoints_module_gives_the_checkpoints_numbers():
    ckpt = load_checkpoint(MODELS_DIR / "vgg_c10s.pt")
    common = {"data": DATA, "n": 16, "models_dir": MODELS_DIR}
    as_module = ra.run_sweep([UserModel("mine", ckpt.model)], ["fgsm"], "0:2:1", **common)
    as_checkpoint = ra.run_sweep(["vgg_c10s"], ["fgsm"], "0:2:1", **common)
    pd.testing.assert_frame_equal(as_module[NUMBERS], as_checkpoint[NUMBERS])
    assert set(as_module["checkpoint_sha256"]) == {state_dict_sha256(ckpt.model)}
    assert set(as_module["architecture"]) == {"ModelWrapper"}


def test_state_dict_hash_follows_the_weights_not_the_order():
    a, b = linear(), linear()
    assert state_dict_sha256(a) == state_dict_sha256(b)
    with torch.no_grad():
        b[1].bias[0] += 1e-6
    assert state_dict_sha256(a) != state_dict_sha256(b)
    half = linear().to(torch.bfloat16)  # dtypes numpy lacks hash too
    assert len(state_dict_sha256(half)) == 64 and state_dict_sha256(half) != state_dict_sha256(a)


def test_resume_keys_on_the_hash(tmp_path: Path):
    out = tmp_path / "out"
    ra.run_sweep({"mynet": linear()}, ["fgsm"], "0:1:1", data=DATA, n=8, out=out)
    other = linear()
    with torch.no_grad():
        other[1].bias += 1
    with pytest.raises(UserError, match="checkpoint_sha256"):
        ra.run_sweep({"mynet": other}, ["fgsm"], "0:1:1", data=DATA, n=8, out=out)


# ---------------------------------------------------------------- (b) module:function specs

def test_spec_through_the_cli_and_python_give_the_same_rows(model_file: Path, tmp_path: Path):
    out = tmp_path / "out"
    spec = f"{model_file}:build"
    result = run_cli("sweep", "--models", spec, "--models", "vgg_c10s", "--models-dir", str(MODELS_DIR), "--attack",
                     "fgsm", "--eps", "0:2:1", "--dataset", DATA, "--n", "16", "--out", str(out), "--no-report")
    assert result.returncode == 0, result.stderr
    cli = pd.read_csv(out / RESULTS_FILE)
    assert sorted(cli["model"].unique()) == ["build", "vgg_c10s"]
    cli = cli[cli["model"] == "build"].reset_index(drop=True)
    api = ra.run_sweep([spec], ["fgsm"], "0:2:1", data=DATA, n=16)
    assert set(cli["checkpoint_sha256"]) == set(api["checkpoint_sha256"]) == {state_dict_sha256(linear())}
    pd.testing.assert_frame_equal(cli[NUMBERS], api[NUMBERS], check_dtype=False)


def test_package_module_spec_imports_from_the_current_folder(tmp_path: Path, monkeypatch):
    pkg = tmp_path / "userpkg_ra_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("userpkg_ra_test", "userpkg_ra_test.nets"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    frame = ra.run_sweep(["userpkg_ra_test.nets:build"], ["fgsm"], "0:1:1", data=DATA, n=8)
    assert set(frame["model"]) == {"build"} and set(frame["checkpoint_sha256"]) == {state_dict_sha256(linear())}
    assert str(tmp_path) not in sys.path  # the folder was on sys.path only while importing


def test_a_taken_function_name_falls_back_to_the_spec(model_file: Path):
    frame = ra.run_sweep([f"{model_file}:build", UserModel("build", linear())], ["fgsm"], "0", data=DATA, n=4)
    assert set(frame["model"]) == {"build", f"{model_file}:build"}


def test_spec_recognition():
    assert is_spec("pkg.mod:build") and is_spec("some/dir/file.py:make_net") and is_spec("mod:f")
    for not_spec in ("vgg_c10s", "models/vgg_c10s.pt", "models/*.pt", "C:\\models\\x.pt", "a b:c", "pkg.mod:"):
        assert not is_spec(not_spec), not_spec


# ---------------------------------------------------------------- (c) entry-point plugins

PLUGIN = """
from torch import nn

from robust_attn.models import ModelCfg, register_model


@register_model(ModelCfg(name="{name}", family="tiny", paper="a test plugin"))
def tiny(cfg, width, num_classes, in_channels):
    return nn.Sequential(nn.Conv2d(in_channels, max(1, int(8 * width)), 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(max(1, int(8 * width)), num_classes))
"""


def install_plugin(site: Path, dist: str, entry_points: str, files: dict[str, str]) -> Path:
    """A distribution as pip leaves it: the code plus a dist-info with METADATA and entry_points.txt."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[robust_attn.models]\n{entry_points}\n")
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return site


@pytest.fixture()
def fresh_model_registry(monkeypatch):
    """The model registry as if no plugin had been loaded yet in this process (ours registered)."""
    from robust_attn.models import registry as models_registry

    fresh = Registry("model", entry_points="robust_attn.models")
    fresh._entries = dict(models_registry._REGISTRY._entries)
    monkeypatch.setattr(models_registry, "_REGISTRY", fresh)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield fresh


def test_plugin_architectures_are_listed_created_and_trained(tmp_path: Path, fresh_model_registry, monkeypatch):
    site = install_plugin(tmp_path / "site", "ra-tiny-plugin", "tiny = ra_tiny_plugin",
                          {"ra_tiny_plugin/__init__.py": PLUGIN.format(name="tiny-plugin")})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "ra_tiny_plugin", raising=False)

    from robust_attn.models import create_model, get_model_cfg, list_models

    assert "tiny-plugin" in list_models() and "vgg" in list_models()
    assert list_models("tiny*") == ["tiny-plugin"]  # loaded once: a second load would register twice
    assert get_model_cfg("tiny-plugin").paper == "a test plugin"
    model = create_model("tiny-plugin", width=1.0, num_classes=10)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "robust_attn", *args], check=False, cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    listed = run("models", "tiny*")
    assert listed.returncode == 0 and "tiny-plugin" in listed.stdout, listed.stderr
    details = run("models", "--details", "tiny-plugin")  # a plain network: no forward_with_attention head
    assert details.returncode == 0 and "multiply-adds" in details.stdout and "a test plugin" in details.stdout, \
        details.stderr
    out = tmp_path / "x.pt"
    trained = run("train", "tiny-plugin", "--dataset", "synthetic", "--epochs", "1", "--width", "1", "--threads", TEST_THREADS,
                  "--device", "cpu", "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    assert load_checkpoint(out).metadata["architecture"] == "tiny-plugin"


CALLABLE_PLUGIN = """
from torch import nn

from robust_attn.models import ModelCfg, register_model


def register():
    register_model(ModelCfg(name="call-plugin", family="tiny"))(build)


def build(cfg, width, num_classes, in_channels):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
"""


def test_a_plugin_callable_is_called_to_register(tmp_path: Path, fresh_model_registry, monkeypatch):
    site = install_plugin(tmp_path / "site", "ra-call-plugin", "call = ra_call_plugin.entry:register",
                          {"ra_call_plugin/__init__.py": "", "ra_call_plugin/entry.py": CALLABLE_PLUGIN})
    monkeypatch.syspath_prepend(str(site))
    for name in ("ra_call_plugin", "ra_call_plugin.entry"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert fresh_model_registry.names("call-*") == ["call-plugin"]
    assert fresh_model_registry.cfg("call-plugin").family == "tiny"


def test_a_broken_plugin_is_one_line_naming_it_once(tmp_path: Path, fresh_model_registry, monkeypatch):
    site = install_plugin(tmp_path / "site", "ra-broken-plugin", "broken = ra_broken_plugin",
                          {"ra_broken_plugin/__init__.py": "import ra_no_such_dependency\n"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "ra_broken_plugin", raising=False)
    with pytest.raises(UserError) as first:
        fresh_model_registry.names()
    message = str(first.value)
    assert "'broken'" in message and "ra_broken_plugin" in message and "ra_no_such_dependency" in message
    assert "\n" not in message
    with pytest.raises(UserError) as again:  # the same error, without importing the plugin again
        fresh_model_registry.entry("vgg")
    assert again.value is first.value and "ra_broken_plugin" not in sys.modules

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    cli = subprocess.run([sys.executable, "-m", "robust_attn", "models"], check=False, cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2 and cli.stderr.strip().count("\n") == 0 and "'broken'" in cli.stderr, cli.stderr


# ---------------------------------------------------------------- bad inputs: one line naming it

class Raises(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom\nsecond line")


class Returns(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize(("module", "message"), [
    (linear(7), "model 'mynet' returned shape (2, 7) on 2 cifar10-embedded images; expected (2, 10)"),
    (Returns(lambda x: torch.zeros(len(x), 10, dtype=torch.long)),
     "model 'mynet' returned torch.int64 logits on 2 cifar10-embedded images; expected a floating dtype"),
    (Returns(lambda x: torch.full((len(x), 10), float("nan"))),
     "model 'mynet' returned non-finite logits on 2 cifar10-embedded images"),
    (Returns(lambda x: (torch.zeros(len(x), 10), None)),
     "model 'mynet' returned a value of type tuple on 2 cifar10-embedded images; expected a tensor of logits"),
    (Raises(), "model 'mynet' raised RuntimeError: boom on 2 cifar10-embedded images"),
])
def test_a_module_that_cannot_answer_is_one_line_before_any_work(module, message, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        ra.run_sweep({"mynet": module}, ["fgsm"], "0:1:1", data=DATA, n=8, out=out)
    assert str(err.value) == message
    assert not out.exists()


def test_a_module_without_an_input_gradient_is_one_line_for_gradient_attacks_only(tmp_path: Path):
    """A module that detaches its input answers, but gives gradient attacks nothing to follow: one line
    before any work under fgsm; noise, which needs no gradient, still runs on it."""
    detached = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    module = Returns(lambda x: detached(x.detach()))
    with pytest.raises(UserError) as err:
        ra.run_sweep({"mynet": module}, ["fgsm"], "0:1:1", data=DATA, n=8, out=tmp_path / "out")
    assert str(err.value).startswith("model 'mynet' gives no gradient with respect to its input on 2 cifar10-embedded "
                                     "images (RuntimeError: ") and str(err.value).count("\n") == 0
    assert not (tmp_path / "out").exists()
    assert len(ra.run_sweep({"mynet": module}, ["noise"], "0:1:1", data=DATA, n=8)) == 2


def test_bad_specs_are_one_line(model_file: Path, tmp_path: Path):
    missing = tmp_path / "missing.py"
    cases = {
        "ra_no_such_module_xyz:build": "'ra_no_such_module_xyz:build': no module named 'ra_no_such_module_xyz'",
        f"{missing}:build": f"model spec '{missing}:build': file {missing} does not exist",
        f"{model_file}:biuld": f"{model_file} has no function 'biuld'; did you mean 'build'?",
        f"{model_file}:not_a_module": "not_a_module() returned a value of type int, not a torch.nn.Module",
    }
    for spec, message in cases.items():
        with pytest.raises(UserError) as err:
            ra.run_sweep([spec], ["fgsm"], "0", data=DATA, n=4)
        assert message in str(err.value) and "\n" not in str(err.value), spec
    with pytest.raises(UserError, match=r"returned shape \(2, 7\)"):
        ra.run_sweep([f"{model_file}:seven"], ["fgsm"], "0", data=DATA, n=4)
    broken = tmp_path / "broken.py"
    broken.write_text("def build():\n    raise ValueError('no weights here')\n")
    with pytest.raises(UserError, match=r"calling build\(\) raised ValueError: no weights here$"):
        load_spec(f"{broken}:build")
    with pytest.raises(UserError, match="needs a name"):
        ra.run_sweep([linear()], ["fgsm"], "0", data=DATA, n=4)


def test_user_models_need_a_dataset(model_file: Path, tmp_path: Path):
    with pytest.raises(UserError, match="is not a checkpoint: pass --dataset"):
        ra.run_sweep({"mynet": linear()}, ["fgsm"], "0")
    result = run_cli("sweep", "--models", f"{model_file}:build", "--attack", "fgsm", "--eps", "0",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert f"model '{model_file}:build' is not a checkpoint: pass --dataset" in result.stderr
    assert not (tmp_path / "out").exists()


def test_width_is_nan_in_the_run_log(tmp_path: Path):
    ra.run_sweep({"mynet": linear()}, ["fgsm"], "0", data=DATA, n=4, out=tmp_path / "out")
    import json

    start = json.loads((tmp_path / "out" / "runs.jsonl").read_text().splitlines()[0])
    (entry,) = start["checkpoints"]
    assert entry["architecture"] == "Sequential" and math.isnan(entry["width"]) and entry["path"] == "<python object>"
