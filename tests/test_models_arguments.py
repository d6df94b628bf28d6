"""Model arguments, the timm way: a family declares its own options with defaults (ModelCfg.model_args);
create_model, training, checkpoints, study files and the command line carry them without naming them.

A test-only family (a 3-layer CNN with a sigmoid spatial gate, one model argument ``channels``) is
registered from this file: its model code and its registration are all it takes to build, train,
save and reload it with a non-default argument.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robust_attn.checkpoints import load_checkpoint, read_checkpoint_file, recorded_model_args, save_checkpoint
from robust_attn.errors import UserError
from robust_attn.models import (
    AttentionClassifier,
    AttentionMaps,
    Features,
    ModelCfg,
    check_model_args,
    create_model,
    get_model_cfg,
    list_models,
    parse_model_args,
    register_model,
)
from robust_attn.study.spec import parse_study, recipe_key
from robust_attn.train import TrainConfig, _config_record, train
from robust_attn.train_defaults import TRAIN_DEFAULTS

from .conftest import MODELS_DIR, invoke

W = 0.0625


# ------------------------------------------------------------------ a family registered from the test
class TinyGateNet(AttentionClassifier):
    """Three 3x3 conv layers; a sigmoid spatial gate on the third (CBAM-style: [0, 1], not a distribution)."""

    def __init__(self, cfg: ModelCfg, width: float, num_classes: int, in_channels: int, channels: int):
        super().__init__()
        self.cfg = cfg
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        self.gate = nn.Conv2d(channels, 1, 1) if cfg.attention_layers else None
        self.build_head(cfg, [], channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> Features:
        x = self.convs(x)
        maps, scores = (), ()
        if self.gate is not None:
            score = self.gate(x)
            maps, scores = (torch.sigmoid(score),), (score,)
            x = x * maps[0]
        return Features((), x.mean((2, 3)), maps, scores)


TINY_ARGS = {"channels": 8}
if "test-tinynet" not in list_models():
    for _cfg in (ModelCfg(name="test-tinynet", family="test-tinynet", model_args=TINY_ARGS, paper="a test"),
                 ModelCfg(name="test-tinynet-gate", family="test-tinynet", baseline="test-tinynet",
                          attention_layers=(3,), model_args=TINY_ARGS, paper="a test")):
        register_model(_cfg)(lambda cfg, *, width, num_classes, in_channels, channels:
                             TinyGateNet(cfg, width, num_classes, in_channels, channels))


def test_a_family_is_its_model_code_and_registration():
    cfg = get_model_cfg("test-tinynet-gate")
    assert cfg.attention_maps is AttentionMaps.GATE and cfg.baseline == "test-tinynet"
    model = create_model("test-tinynet-gate", channels=4)
    assert model.model_args == {"channels": 4} and model.channels == 4
    out = model.forward_with_attention(torch.rand(2, 3, 32, 32))
    assert out.logits.shape == (2, 10) and out.attention_maps[0].shape == (2, 1, 16, 16)
    assert create_model("test-tinynet").model_args == {"channels": 8}  # the declared default


def test_the_family_trains_saves_and_reloads_with_its_argument(tmp_path):
    cfg = TrainConfig("test-tinynet-gate", "synthetic", epochs=1, batch_size=64, model_args={"channels": 4})
    assert cfg.channels == 4  # a given model argument reads as an attribute, as on the model
    ckpt = load_checkpoint(train(cfg, tmp_path / "t.pt"))
    assert ckpt.metadata["model_args"] == {"channels": 4} and ckpt.metadata["train_config"]["channels"] == 4
    assert ckpt.model.model_args == {"channels": 4}
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(ckpt.model(x), load_checkpoint(tmp_path / "t.pt").model(x))


# ------------------------------------------------------------------ validation
def test_unknown_and_mistyped_arguments_are_one_line_errors_naming_the_accepted_ones():
    with pytest.raises(UserError, match=r"resnet takes no dpeth; did you mean 'depth'\? \(its model arguments: depth\)"):
        create_model("resnet", dpeth=20)
    with pytest.raises(UserError, match="vgg takes no depth"):
        create_model("vgg", depth=20)
    with pytest.raises(UserError, match="test-tinynet: channels must be an integer, got 4.0"):
        create_model("test-tinynet", channels=4.0)
    assert create_model("vgg", depth=None).model_args == {}  # None: the default (none here), as in timm


def test_registration_refuses_reserved_names_and_non_plain_defaults():
    builder = lambda cfg, **kw: nn.Identity()  # noqa: E731
    with pytest.raises(ValueError, match="cannot be a model argument"):
        register_model(ModelCfg(name="test-bad-width", family="x", model_args={"width": 1.0}))(builder)
    with pytest.raises(ValueError, match="needs a bool, int, float or str default"):
        register_model(ModelCfg(name="test-bad-default", family="x", model_args={"sizes": (1, 2)}))(builder)
    assert "test-bad-width" not in list_models() and "test-bad-default" not in list_models()


def test_text_values_are_parsed_to_the_declared_type():
    resnet = get_model_cfg("resnet")
    assert parse_model_args(resnet, {"depth": "56"}) == {"depth": 56}
    with pytest.raises(UserError, match="resnet: depth must be an integer, got 'abc'"):
        parse_model_args(resnet, {"depth": "abc"})
    with pytest.raises(UserError, match="vgg takes no depth"):
        parse_model_args(get_model_cfg("vgg"), {"depth": "20"})


def test_the_builder_checks_values_without_building_weights():
    assert check_model_args("resnet", {"depth": 1001}) == {"depth": 1001}  # on the meta device: instant
    with pytest.raises(UserError, match="6n \\+ 2"):
        check_model_args("resnet", {"depth": 22})
    with pytest.raises(UserError, match="6n \\+ 2"):
        TrainConfig("resnet", "synthetic", model_args={"depth": 22}).validate()


# ------------------------------------------------------------------ checkpoints, records, study files
def test_checkpoints_record_model_args_and_0_3_checkpoints_load_from_their_depth_key(tmp_path):
    shipped = read_checkpoint_file(MODELS_DIR / "resnet_c10s.pt")["metadata"]
    assert "model_args" not in shipped and recorded_model_args(shipped) == {"depth": shipped["depth"]}
    assert load_checkpoint(MODELS_DIR / "resnet_c10s.pt").model.model_args == {"depth": shipped["depth"]}
    path = save_checkpoint(create_model("resnet-se", width=W, depth=56), tmp_path / "r.pt", {"dataset": "synthetic"})
    meta = load_checkpoint(path).metadata
    assert meta["model_args"] == {"depth": 56} and meta["depth"] == 56  # 0.3's key too, for its readers
    vgg = save_checkpoint(create_model("vgg", width=W), tmp_path / "v.pt", {"dataset": "synthetic"})
    assert load_checkpoint(vgg).metadata["model_args"] == {}


def test_training_records_keep_0_3_keys_and_recipe_keys_read_either_form():
    cfg = TrainConfig("resnet", "synthetic", model_args={"depth": 56})
    record = _config_record(cfg)
    assert record["depth"] == 56 and "model_args" not in record
    assert recipe_key(record) == recipe_key({**vars(cfg), "schedule": cfg.schedule.value})
    assert recipe_key({**record, "depth": 20}) != recipe_key(record)
    assert TrainConfig("vgg", "synthetic").epochs == TRAIN_DEFAULTS.epochs  # one declaration of the defaults


def _study(**train) -> dict:
    return {"name": "s", "architectures": ["resnet", "resnet-se", "vgg"], "seeds": [0],
            "train": {"dataset": "synthetic", "epochs": 1, **train}, "evaluate": {"attacks": ["fgsm"], "eps": "0:2:1"}}


def test_study_files_take_model_args_and_the_0_3_depth_key():
    spec = parse_study(_study(model_args={"depth": 56}), Path("/tmp/s.toml"))
    assert spec.recipe.train_config("resnet-se", 0).model_args == {"depth": 56}
    assert spec.recipe.train_config("vgg", 0).model_args == {}  # each argument goes to those that declare it
    assert parse_study(_study(depth=56), Path("/tmp/s.toml")).recipe.model_args == {"depth": 56}
    assert spec.record()["train"]["model_args"] == {"depth": 56}
    for train, message in (({"model_args": {"dpeth": 56}},
                            "none of ['resnet', 'resnet-se', 'vgg'] takes a dpeth; did you mean 'depth'?"),
                           ({"model_args": 56}, "[train] model_args must be a table"),
                           ({"depth": 20, "model_args": {"depth": 56}}, "disagree"),
                           ({"model_args": {"depth": "56"}}, "[train]: resnet: depth must be an integer")):
        with pytest.raises(UserError, match=None) as info:
            parse_study(_study(**train), Path("/tmp/s.toml"))
        assert message in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------ the command line
def test_model_arg_option_mirrors_attack_arg_and_depth_is_its_alias():
    details = invoke("models", "--details", "resnet", "--width", "0.0625", "--model-arg", "depth=8")
    assert details.returncode == 0 and "depth            8" in details.stdout, details.stderr
    for args, message in ((["--model-arg", "dpeth=8"], "did you mean 'depth'"),
                          (["--model-arg", "depth=abc"], "depth must be an integer, got 'abc'"),
                          (["--model-arg", "depth"], "--model-arg expects KEY=VALUE"),
                          (["--model-arg", "depth=56", "--depth", "20"], "disagree")):
        bad = invoke("models", "--details", "resnet", *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
