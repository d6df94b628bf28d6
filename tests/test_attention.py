"""The paper's attention, checked against its definitions on tiny tensors."""
from __future__ import annotations

import pytest
import torch

from robust_attn.models import AttentionBlock, Compatibility, create_model, get_model_cfg, list_models, register_model
from robust_attn.models.registry import ModelCfg
from robust_attn.errors import UserError

ATTENTION_MODELS = [n for n in list_models() if get_model_cfg(n).has_attention]


def test_registry_lists_vgg_and_all_twelve_variants():
    names = list_models()
    assert "vgg" in names
    expected = {f"vgg-att{d}-{c}-{p}" for d in (1, 2, 3) for c in ("concat", "indep") for p in ("pc", "dp")}
    assert expected <= set(names) and len(expected) == 12
    assert list_models("vgg-att3-*") == sorted(n for n in expected if n.startswith("vgg-att3"))


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelCfg(name="vgg", family="vgg"))(lambda cfg, **kw: None)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UserError, match="did you mean 'vgg-att3-concat-pc'"):
        create_model("vgg-att3-concat-pd")


@pytest.mark.parametrize("width", [0, -0.5, float("nan"), float("inf")])
def test_bad_width_is_rejected(width):
    with pytest.raises(UserError, match="width"):
        create_model("vgg", width=width)


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name, width=0.125, num_classes=7, in_channels=3)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    out = model.forward_with_attention(x.detach())
    assert torch.equal(out.logits, model(x.detach()))
    cfg = get_model_cfg(name)
    assert len(out.attention_maps) == len(cfg.attention_layers) == len(out.compatibility)


@pytest.mark.parametrize("name", ["vgg", "vgg-att3-concat-pc", "vgg-att2-indep-dp"])
def test_input_sizes_that_are_multiples_of_32_work(name):
    model = create_model(name, width=0.125, in_channels=1).eval()
    for size in (32, 64):
        assert model(torch.rand(1, 1, size, size)).shape == (1, 10)


def test_attended_resolutions_follow_the_paper():
    out = create_model("vgg-att3-concat-pc", width=0.125).forward_with_attention(torch.rand(1, 3, 32, 32))
    assert [tuple(a.shape[2:]) for a in out.attention_maps] == [(32, 32), (16, 16), (8, 8)]
    out = create_model("vgg-att2-concat-dp", width=0.125).forward_with_attention(torch.rand(1, 3, 32, 32))
    assert [tuple(a.shape[2:]) for a in out.attention_maps] == [(16, 16), (8, 8)]


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_attention_maps_sum_to_one_over_space(name):
    torch.manual_seed(1)
    out = create_model(name, width=0.125).eval().forward_with_attention(torch.rand(3, 3, 32, 32))
    for a, c in zip(out.attention_maps, out.compatibility):
        assert a.shape[1] == 1 and a.shape == c.shape
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(dim=(1, 2, 3)), torch.ones(3))
        torch.testing.assert_close(a, torch.softmax(c.flatten(1), 1).view_as(a))


def _direct(block: AttentionBlock, local: torch.Tensor, g: torch.Tensor):
    """The paper's definitions with loops: project every l_i, then c_i, softmax, g_a."""
    n, cl, h, w = local.shape
    p = block.project.weight.view(block.global_channels, cl) if block.project is not None else torch.eye(cl)
    c = torch.zeros(n, h, w)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                li = p @ local[b, :, i, j]
                if block.compatibility_fn is Compatibility.PC:
                    c[b, i, j] = block.u.weight.view(-1) @ (li + g[b])
                else:
                    c[b, i, j] = li @ g[b]
    a = torch.softmax(c.view(n, -1), 1).view(n, h, w)
    ga = torch.stack([sum(a[b, i, j] * (p @ local[b, :, i, j]) for i in range(h) for j in range(w)) for b in range(n)])
    return c, a, ga


@pytest.mark.parametrize("compat", list(Compatibility))
@pytest.mark.parametrize("local_channels", [3, 5])  # 3 < 5: projected; 5 == 5: not
def test_compatibility_matches_the_paper_by_hand(compat, local_channels):
    torch.manual_seed(2)
    block = AttentionBlock(local_channels, 5, compat)
    assert (block.project is not None) == (local_channels != 5)
    local, g = torch.randn(2, local_channels, 3, 4), torch.randn(2, 5)
    out = block(local, g)
    c, a, ga = _direct(block, local, g)
    torch.testing.assert_close(out.compatibility[:, 0], c)
    torch.testing.assert_close(out.attention[:, 0], a)
    torch.testing.assert_close(out.descriptor, ga)


def test_dot_product_compatibility_on_a_hand_computed_example():
    block = AttentionBlock(2, 2, Compatibility.DP)
    local = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # l_0 = (1, 0), l_1 = (0, 2)
    g = torch.tensor([[3.0, 1.0]])
    out = block(local, g)
    torch.testing.assert_close(out.compatibility.flatten(), torch.tensor([3.0, 2.0]))
    a = torch.softmax(torch.tensor([3.0, 2.0]), 0)
    torch.testing.assert_close(out.descriptor, (a[0] * torch.tensor([1.0, 0.0]) + a[1] * torch.tensor([0.0, 2.0]))[None])


def test_features_where_attention_is_zero_do_not_matter():
    torch.manual_seed(3)
    block = AttentionBlock(4, 6, Compatibility.PC)
    local = torch.randn(1, 4, 3, 3)
    attention = torch.zeros(1, 3, 3)
    attention[0, 0, 0], attention[0, 2, 1] = 0.25, 0.75
    changed = local.clone()
    changed[:, :, 1, :] += 100.0  # positions with a = 0
    torch.testing.assert_close(block.attend(local, attention), block.attend(changed, attention))
    changed[:, :, 0, 0] += 1.0  # a position with a > 0
    assert not torch.allclose(block.attend(local, attention), block.attend(changed, attention))


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_logits_come_from_the_attended_descriptors_alone(name):
    torch.manual_seed(4)
    net = create_model(name, width=0.125).eval().net
    features = net.forward_features(torch.rand(2, 3, 32, 32))
    logits = net.forward_head(features).logits
    descriptors = [b(l, features.global_feature).descriptor for b, l in zip(net.attention, features.local_features)]
    cfg = get_model_cfg(name)
    if cfg.combine.value == "concat":
        expected = net.classifier(torch.cat(descriptors, 1))
    else:
        expected = torch.stack([fc(d) for fc, d in zip(net.classifier, descriptors)]).mean(0)
    torch.testing.assert_close(logits, expected)
    # g reaches the logits only through the compatibility scores: with the attention fixed,
    # replacing g changes nothing.
    pooled = [b.attend(l, o.attention[:, 0]) for b, l, o in
              zip(net.attention, features.local_features, [b(l, features.global_feature) for b, l in zip(net.attention, features.local_features)])]
    torch.testing.assert_close(torch.cat(pooled, 1), torch.cat(descriptors, 1))


def test_concat_and_indep_differ_as_defined():
    concat = create_model("vgg-att2-concat-pc", width=0.125, num_classes=4).net
    indep = create_model("vgg-att2-indep-pc", width=0.125, num_classes=4).net
    g_dim = concat.dense.out_features
    assert concat.classifier.weight.shape == (4, 2 * g_dim)  # one classifier on the concatenation
    assert [fc.weight.shape for fc in indep.classifier] == [(4, g_dim), (4, g_dim)]  # one per g_a


def test_baseline_classifies_the_global_feature():
    net = create_model("vgg", width=0.125).eval().net
    x = torch.rand(2, 3, 32, 32)
    features = net.forward_features(x)
    assert features.local_features == ()
    torch.testing.assert_close(net(x), net.classifier(features.global_feature))


def test_width_scales_channels_and_backbones_are_shared():
    small = create_model("vgg", width=0.125)
    att = create_model("vgg-att3-concat-pc", width=0.125)
    assert small.net.layers[0][0].out_channels == 8 and small.net.dense.out_features == 64
    backbone = {k: v.shape for k, v in small.state_dict().items() if ".layers." in k or ".dense." in k}
    assert backbone == {k: v.shape for k, v in att.state_dict().items() if ".layers." in k or ".dense." in k}
