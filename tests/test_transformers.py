"""The compact transformers (``robust_attn.models.transformer``): their maps checked against independent
computations, the pooling ablation, their sizes against the CCT paper, bad sizes as one-line errors, and every
command (sweep with attention panels, report, transfer, attention-shift, study) on them with no special case.

The registry-wide tests (tests/test_attention.py: shapes, gradients to the input, maps that sum to 1,
channels_last, determinism) cover them too, as every registered model.
"""
from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from timm.utils import AttentionExtract

from robust_attn.checkpoints import save_checkpoint
from robust_attn.models import AttentionMaps, create_model, get_model_cfg, list_models
from robust_attn.models.transformer import attention_rollout
from robust_attn.report import build_report
from robust_attn.report.transfer import build_transfer_report
from robust_attn.results import read_results_csv, read_transfer_csv
from robust_attn.study import run_study
from robust_attn.sweep import run_sweep
from robust_attn.transfer import run_transfer

from .conftest import invoke

TRANSFORMERS = ["cct", "cct-gap", "vit"]
TINY = {"depth": 2, "heads": 2}  # two blocks: enough for a rollout to multiply, cheap enough for every test
DATA, N = "cifar10-embedded", 16


def test_the_transformers_are_registered_with_their_maps_and_baseline():
    assert set(TRANSFORMERS) <= set(list_models())
    assert get_model_cfg("cct").baseline == "cct-gap" and get_model_cfg("cct").attention_maps is AttentionMaps.DISTRIBUTION
    assert get_model_cfg("cct-gap").attention_maps is AttentionMaps.NONE
    assert get_model_cfg("vit").attention_maps is AttentionMaps.ROLLOUT and get_model_cfg("vit").baseline is None


@pytest.mark.parametrize(("name", "params"), [("cct", 3_760_000), ("vit", 3_720_000)])
def test_width_one_is_the_papers_network(name, params):
    """CCT-7/3x1 has 3.76M parameters and ViT-Lite-7/4 3.72M (Hassani et al. 2021, table 1, CIFAR-10)."""
    n = sum(p.numel() for p in create_model(name, width=1.0).parameters())
    assert abs(n - params) < 10_000, n


def test_sequence_pooling_weights_are_a_softmax_over_the_tokens_and_pool_them():
    torch.manual_seed(0)
    model = create_model("cct", width=0.125, **TINY).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        features = model.net.forward_features(model.normalize(x))
        out = model.forward_with_attention(x)
    (a,), (c,) = out.attention_maps, out.compatibility
    assert a.shape == (3, 1, 16, 16)  # one conv layer: the 32x32 image halved, 256 tokens
    torch.testing.assert_close(a.flatten(1), torch.softmax(c.flatten(1), 1))
    pooled = (a.flatten(1)[:, :, None] * features.tokens).sum(1)
    torch.testing.assert_close(out.logits, model.net.head(pooled))


def test_the_ablation_is_the_same_network_with_uniform_pooling():
    """With its pooling scores zeroed, ``cct`` pools uniformly: it then computes exactly ``cct-gap`` on the same
    weights, so the pair differs in the pooling alone."""
    torch.manual_seed(1)
    cct = create_model("cct", width=0.125, **TINY).eval()
    gap = create_model("cct-gap", width=0.125, **TINY).eval()
    state = {k: v for k, v in cct.state_dict().items() if "pool_score" not in k}
    gap.load_state_dict(state)
    with torch.no_grad():
        cct.net.pool_score.weight.zero_()
        cct.net.pool_score.bias.zero_()
        x = torch.rand(4, 3, 32, 32)
        torch.testing.assert_close(cct(x), gap(x))
        assert torch.allclose(cct.forward_with_attention(x).attention_maps[0], torch.full((4, 1, 16, 16), 1 / 256))


def test_vit_rollout_matches_the_attention_timm_extracts():
    """The rollout from the weights timm's own ``AttentionExtract`` reads, multiplied out by hand."""
    torch.manual_seed(2)
    model = create_model("vit", width=0.125, **TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        (rollout,) = model.forward_with_attention(x).attention_maps
        extracted = AttentionExtract(copy.deepcopy(model.net.vit), method="hook")(model.normalize(x))
    weights = list(extracted.values())
    assert len(weights) == 2 and weights[0].shape == (2, 2, 65, 65)  # blocks; N x heads x (cls + 64) x (cls + 64)
    eye = torch.eye(65)
    rolled = eye
    for w in weights:
        a = 0.5 * w.mean(1) + 0.5 * eye  # Abnar and Zuidema: the residual as the identity, rows sum to 1
        rolled = a @ rolled
    row = rolled[:, 0, 1:]
    torch.testing.assert_close(rollout.flatten(1), row / row.sum(1, keepdim=True))
    assert rollout.shape == (2, 1, 8, 8)


def test_rollout_of_identity_attention_is_uniform_and_follows_a_single_patch():
    n, t = 1, 5
    uniform = torch.full((n, 1, t, t), 1 / t)
    torch.testing.assert_close(attention_rollout((uniform, uniform)), torch.full((n, t - 1), 1 / (t - 1)))
    to_patch = torch.zeros(n, 1, t, t)
    to_patch[..., 2] = 1  # every token attends to patch 2 only
    assert attention_rollout((to_patch,)).argmax().item() == 1  # patch 2 is the second patch token


def test_rollout_multiplies_the_blocks_in_order():
    """Block 1 attends to patch a, block 2 to patch b (tokens: class, a, b). With the residual, 0.5 A + 0.5 I:
    block 2's class row is (0.5, 0, 0.5), block 1's rows are (0.5, 0.5, 0), (0, 1, 0), (0, 0.5, 0.5), so the
    class token's rollout is 0.5 (0.5, 0.5, 0) + 0.5 (0, 0.5, 0.5) = (0.25, 0.5, 0.25): patches (2/3, 1/3). The
    other order would give (1/3, 2/3)."""
    first, second = torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)
    first[..., 1], second[..., 2] = 1, 1
    torch.testing.assert_close(attention_rollout((first, second)), torch.tensor([[2 / 3, 1 / 3]]))


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_other_multiples_of_32_resample_the_positions(name):
    model = create_model(name, width=0.125, in_channels=1, **TINY).eval()
    out = model.forward_with_attention(torch.rand(1, 1, 64, 64))
    assert out.logits.shape == (1, 10)
    assert len(out.attention_maps) == (0 if name == "cct-gap" else 1)
    assert all(a.shape[2:] == (32 if name.startswith("cct") else 16,) * 2 for a in out.attention_maps)


@pytest.mark.parametrize(("args", "message"), [
    (["vit", "--model-arg", "patch_size=5"], "vit: patch_size must divide the 32x32 image"),
    (["cct", "--model-arg", "heads=3"], "cct: heads (3) must divide the embedding width"),
    (["vit", "--width", "0.1"], "vit: heads (4) must divide the embedding width 26"),
    (["cct-gap", "--model-arg", "conv_layers=6"], "cct-gap: conv_layers must be 1 to 5"),
    (["cct", "--model-arg", "kernel_size=4"], "cct: kernel_size must be odd"),
    (["vit", "--model-arg", "depth=0"], "vit: depth (transformer blocks) must be >= 1"),
])
def test_bad_sizes_are_one_line_errors(args, message, tmp_path):
    name, *rest = args
    for command in (["models", "--details", name, *rest],
                    ["train", name, "--dataset", "synthetic", "--epochs", "1", "--out", str(tmp_path / "m.pt"), *rest]):
        result = invoke(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not (tmp_path / "m.pt").exists()


def test_models_details_gives_parameters_multiply_adds_and_the_maps():
    out = invoke("models", "--details", "vit", "--width", "0.25", "--model-arg", "depth=2").stdout
    assert "multiply-adds" in out and "parameters" in out and "rollout" in out and "not a distribution" in out
    for ratio in ("nan", "inf", "0.001", "1e12"):  # no hidden unit, or more than any machine holds
        result = invoke("models", "--details", "vit", "--model-arg", f"mlp_ratio={ratio}")
        assert result.returncode == 2 and result.stderr.startswith("error: vit: mlp_ratio must give the MLP"), ratio
    listing = invoke("models", "cct*").stdout
    assert "cct-gap" in listing and "conv_layers" in listing


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained two-block checkpoints of the three (the plumbing is under test, not accuracy), seed 0 each."""
    folder = tmp_path_factory.mktemp("transformers")
    paths = []
    for arch in TRANSFORMERS:
        torch.manual_seed(0)
        model = create_model(arch, width=0.125, **TINY, **({"conv_layers": 2} if arch.startswith("cct") else {}))
        paths.append(str(save_checkpoint(model, folder / f"{arch}.pt", {"dataset": "cifar10-subset", "seed": 0})))
    return paths


def test_sweep_and_report_draw_the_transformers_maps_and_pair_the_ablation(checkpoints, tmp_path):
    out = tmp_path / "results"
    run_sweep(checkpoints, ["fgsm"], "0,2", DATA, n=64, out=out, per_example=True)
    with_maps = [c for c in checkpoints if not c.endswith("cct-gap.pt")]  # the attack on the maps needs maps
    run_sweep(with_maps, ["pgd", "attention-shift"], "0,2", DATA, n=64, out=out, per_example=True,
              attack_args={"steps": 2})  # untrained: 64 images for a few clean-correct ones to follow
    rows = read_results_csv(out / "results.csv").drop_duplicates("model").set_index("model")
    assert rows.loc["cct", ["model_family", "baseline", "attention_maps"]].tolist() == ["cct", "cct-gap", "distribution"]
    assert rows.loc["vit", ["model_family", "baseline", "attention_maps"]].tolist() == ["vit", "", "rollout"]
    assert rows.loc["cct-gap", "attention_maps"] == "none"
    build_report([out], tmp_path / "report", panel_images=2, shift_images=64)
    pairs = pd.read_csv(tmp_path / "report" / "attention_vs_baseline.csv")
    assert set(zip(pairs["model"], pairs["baseline"])) == {("cct", "cct-gap")}
    html = (tmp_path / "report" / "index.html").read_text()
    for model in ("cct", "vit"):
        assert f"attention_{model}.png" in html and (tmp_path / "report" / f"attention_{model}.png").exists()
    assert "attention_cct-gap.png" not in html
    shift = pd.read_csv(tmp_path / "report" / "attention_robustness.csv")
    assert {"cct", "vit"} == set(shift["model"]) and shift["mean_js"].notna().all()
    assert set(shift["measure"]) == {"Jensen-Shannon distance"}  # both kinds of map are distributions
    assert set(zip(shift["model"], shift["layer"])) == {("cct", "sequence pooling"), ("vit", "rollout (explanation)")}


def test_transfer_between_transformers_and_a_cnn(checkpoints, tmp_path):
    torch.manual_seed(0)
    cnn = save_checkpoint(create_model("vgg", width=0.125), tmp_path / "vgg.pt", {"dataset": "cifar10-subset", "seed": 0})
    models = [*checkpoints, str(cnn)]
    run_transfer(models, models, "fgsm", "0,4", DATA, n=N, out=tmp_path / "transfer")
    cells = read_transfer_csv(tmp_path / "transfer" / "transfer.csv")
    assert {"cct", "vit", "vgg"} <= set(cells["source"]) and {"cct", "vit", "vgg"} <= set(cells["target"])
    assert set(cells.drop_duplicates("target").set_index("target").loc[["cct", "vit"], "target_attention_maps"]) == \
        {"distribution", "rollout"}
    build_transfer_report(tmp_path / "transfer", tmp_path / "transfer-report")
    assert (tmp_path / "transfer-report" / "index.html").exists()


def test_a_study_trains_the_pair_and_compares_cct_with_its_ablation(tmp_path):
    spec = tmp_path / "cct.toml"
    spec.write_text("""
name = "cct"
architectures = ["cct-gap", "cct"]
seeds = [0, 1]
[train]
dataset = "synthetic"
epochs = 1
width = 0.125
batch_size = 64
model_args = { depth = 1, heads = 2, conv_layers = 2 }
[evaluate]
attacks = ["fgsm"]
eps = "0,2"
n = 16
""")
    result = run_study(spec, tmp_path / "out", report=True)
    assert set(result.members["architecture"]) == {"cct", "cct-gap"} and len(result.members) == 4
    assert set(zip(result.effects["architecture"], result.effects["baseline"])) == {("cct", "cct-gap")}
    assert result.report is not None and "cct-gap" in result.report.read_text()


def test_the_shipped_transformer_checkpoints_and_the_studys_replicas():
    """Seed 0 of the three ships in the default set, seeds 1-4 of the pair as the study's replicas; every one at the
    CCT-2/3x2 sizes of scripts/train_transformer_checkpoints.sh, and the pair on one recipe (the study pools them)."""
    from robust_attn.checkpoints import read_checkpoint_file, read_manifest, sha256_file

    from .conftest import MODELS_DIR

    manifest = read_manifest(MODELS_DIR)
    names = {f"{arch}_c10s" for arch in TRANSFORMERS} | {f"{arch}_c10s_seed{k}" for arch in ("cct", "cct-gap")
                                                          for k in range(1, 5)}
    assert names <= set(manifest)
    recipes = {}
    for name in sorted(names):
        entry = manifest[name]
        assert sha256_file(MODELS_DIR / entry.file) == entry.sha256
        meta = read_checkpoint_file(MODELS_DIR / entry.file)["metadata"]
        sizes = {k: meta["model_args"][k] for k in ("depth", "heads", "mlp_ratio")}
        assert meta["width"] == 0.5 and sizes == {"depth": 2, "heads": 2, "mlp_ratio": 1.0}, name
        assert (entry.replica_of is None) == name.endswith("_c10s") and entry.seed == meta["seed"]
        if entry.architecture != "vit":
            assert meta["model_args"]["conv_layers"] == 2
            recipes.setdefault(entry.architecture, set()).add(
                entry.command.replace(f"--seed {entry.seed}", "").replace(entry.file, "").replace(entry.architecture, "A"))
    assert len(recipes["cct"] | recipes["cct-gap"]) == 1  # the same command but for the architecture and the seed
