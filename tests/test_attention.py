"""The paper's attention, checked against its definitions on tiny tensors."""
from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robust_attn.models
from robust_attn.models import (
    AttentionBlock, AttentionMaps, Combine, Compatibility, ModelCfg, create_model, get_model_cfg, list_models, register_model,
)
from robust_attn.errors import UserError

# The paper's attention (softmax maps, attended descriptors): VGG-att and ResNet-att. CBAM's gates
# have spatial maps too (has_attention) but are tested in test_resnet.py; the transformers' maps in
# test_transformers.py.
ATTENTION_MODELS = [n for n in list_models() if get_model_cfg(n).compatibility is not None]
DISTRIBUTION_MODELS = [n for n in list_models() if get_model_cfg(n).maps_are_distributions]


def test_registry_lists_vgg_and_every_attention_variant():
    names = list_models()
    assert {"vgg", "vgg-se", "vgg-cbam", "resnet", "resnet-se", "resnet-cbam"} <= set(names)
    expected = {f"vgg-att{d}-{c}-{p}" for d in (1, 2, 3) for c in ("concat", "indep") for p in ("pc", "dp", "add")}
    assert expected <= set(names) and len(expected) == 18
    assert list_models("vgg-att3-*") == sorted(n for n in expected if n.startswith("vgg-att3"))
    resnet_att = {f"resnet-att{d}-{c}-{p}" for d in (2, 3) for c in ("concat", "indep") for p in ("pc", "dp")}
    assert set(list_models("resnet-att*")) == resnet_att
    # Every compatibility choice is registered, so the tests parametrised over ATTENTION_MODELS cover it.
    assert {get_model_cfg(n).compatibility for n in ATTENTION_MODELS} == set(Compatibility)


def test_only_the_papers_compatibilities_claim_the_paper():
    for name in ATTENTION_MODELS:
        cfg = get_model_cfg(name)
        if cfg.compatibility is Compatibility.ADD:
            assert "Oktay et al. 2018" in cfg.paper and "not in Jetley et al." in cfg.paper
        else:
            assert cfg.paper.startswith("Jetley et al.") and "Oktay" not in cfg.paper
    assert [c.value for c in Compatibility if not c.in_paper] == ["add"]
    assert get_model_cfg("vgg").paper.startswith("Jetley et al.")


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
def test_every_variant_names_a_registered_baseline_of_its_family(name):
    """Result rows carry the baseline from the registry, so the report pairs a variant with it by this
    declaration and never by the name: a baseline must exist, be of the same family and have none itself."""
    cfg = get_model_cfg(name)
    if cfg.baseline is None:  # a backbone: no attention module of its own (a ViT's rollout only explains it)
        assert cfg.attention_maps in (AttentionMaps.NONE, AttentionMaps.ROLLOUT) and cfg.gate is None, \
            f"{name} has attention but declares no baseline"
        return
    base = get_model_cfg(cfg.baseline)
    assert base.family == cfg.family and base.baseline is None and base.attention_maps is AttentionMaps.NONE
    if cfg.compatibility is not None:  # the paper's block: softmax maps; CBAM: gates
        assert cfg.attention_maps is AttentionMaps.DISTRIBUTION
    elif cfg.gate is not None:
        assert cfg.attention_maps is (AttentionMaps.GATE if cfg.has_attention else AttentionMaps.NONE)
    assert cfg.maps_are_distributions == (cfg.attention_maps in (AttentionMaps.DISTRIBUTION, AttentionMaps.ROLLOUT))


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
    assert cfg.has_attention == bool(out.attention_maps)
    for a, c in zip(out.attention_maps, out.compatibility):
        assert a.shape[:2] == (2, 1) and a.shape == c.shape
        assert (a >= 0).all() and (a <= 1).all()  # softmax weights and CBAM's sigmoid gates alike


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_the_same_outputs_and_maps_in_channels_last(name):
    """``--channels-last`` is a layout, not a model: logits and maps agree with the standard layout's."""
    torch.manual_seed(0)
    model = create_model(name, width=0.125).eval()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out, out_fast = model.forward_with_attention(x), fast.forward_with_attention(
            x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out_fast.logits, out.logits, atol=1e-5, rtol=1e-4)
    for a, b in zip(out.attention_maps, out_fast.attention_maps, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_deterministic_on_the_cpu(name):
    """The same seed builds the same weights; the same input gives bitwise the same logits and gradient."""
    def run():
        torch.manual_seed(3)
        model = create_model(name, width=0.125)
        x = torch.rand(2, 3, 32, 32, requires_grad=True)
        model(x).square().sum().backward()
        return model.state_dict(), model(x.detach()), x.grad

    (state, logits, grad), (state2, logits2, grad2) = run(), run()
    assert all(torch.equal(v, state2[k]) for k, v in state.items())
    assert torch.equal(logits, logits2) and torch.equal(grad, grad2)


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


@pytest.mark.parametrize("name", DISTRIBUTION_MODELS)
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
                elif block.compatibility_fn is Compatibility.ADD:  # Oktay et al.: reads the unprojected l_i
                    w_l = block.w_local.weight.view(-1, cl)
                    hidden = w_l @ local[b, :, i, j] + block.w_global.weight @ g[b] + block.w_global.bias
                    c[b, i, j] = block.u.weight.view(-1) @ torch.relu(hidden)
                else:
                    c[b, i, j] = li @ g[b]
    a = torch.softmax(c.view(n, -1), 1).view(n, h, w)
    ga = torch.stack([sum(a[b, i, j] * (p @ local[b, :, i, j]) for i in range(h) for j in range(w)) for b in range(n)])
    return c, a, ga


@pytest.mark.parametrize("compat", list(Compatibility))
@pytest.mark.parametrize("local_channels", [3, 5])  # 3 < 5: projected; 5 == 5: not
def test_compatibility_matches_the_paper_by_hand(compat, local_channels):
    """Each compatibility against its definition with loops (the paper's for pc/dp, Oktay et al.'s for add)."""
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


def test_additive_compatibility_on_a_hand_computed_example():
    """c_i = <u, ReLU(W_l l_i + W_g g + b)> with W_l = W_g = I, b = 0, u = (1, 1): g decides which position wins."""
    block = AttentionBlock(2, 2, Compatibility.ADD)
    with torch.no_grad():
        block.w_local.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        block.w_global.weight.copy_(torch.eye(2))
        block.w_global.bias.zero_()
        block.u.weight.fill_(1.0)
    local = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # l_0 = (1, 0), l_1 = (0, 2)
    # g = (-2, 1): ReLU(-1, 1) = (0, 1) and ReLU(-2, 3) = (0, 3), so position 1 wins
    torch.testing.assert_close(block(local, torch.tensor([[-2.0, 1.0]])).compatibility.flatten(), torch.tensor([1.0, 3.0]))
    # g = (0, -3): ReLU(1, -3) = (1, 0) and ReLU(0, -1) = (0, 0), so position 0 wins
    torch.testing.assert_close(block(local, torch.tensor([[0.0, -3.0]])).compatibility.flatten(), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("local_channels", [3, 5])
def test_additive_intermediate_dimension_defaults_to_the_local_channels(local_channels):
    block = AttentionBlock(local_channels, 5, Compatibility.ADD)
    assert block.w_local.out_channels == block.w_global.out_features == block.u.in_channels == local_channels
    wide = AttentionBlock(local_channels, 5, Compatibility.ADD, intermediate_channels=7)
    assert wide.w_local.out_channels == wide.w_global.out_features == wide.u.in_channels == 7
    out = wide(torch.randn(2, local_channels, 3, 4), torch.randn(2, 5))
    assert out.descriptor.shape == (2, 5) and out.attention.shape == (2, 1, 3, 4)


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


@contextmanager
def _global_feature_replaced(net: nn.Module, g: torch.Tensor) -> Iterator[None]:
    """Within the block, the layer that produces g (VGG: the dense layer; ResNet: the final BN-ReLU-pool)
    outputs ``g`` instead: nothing else changes."""
    handle = net.global_layer.register_forward_hook(lambda module, inputs, output: g)
    try:
        yield
    finally:
        handle.remove()


def _classify(net: nn.Module, descriptors: list[torch.Tensor]) -> torch.Tensor:
    """The paper's heads by hand: one classifier on the concatenated g_a, or the mean of one per g_a."""
    if net.cfg.combine is Combine.CONCAT:
        return net.classifier(torch.cat(descriptors, 1))
    return torch.stack([fc(d) for fc, d in zip(net.classifier, descriptors)]).mean(0)


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_logits_come_from_the_attended_descriptors_alone(name):
    torch.manual_seed(4)
    net = create_model(name, width=0.125).eval().net
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = net.forward_features(x)
        out = net.forward_head(features)
        other_g = 3 * torch.randn_like(features.global_feature)
        with _global_feature_replaced(net, other_g):
            replaced = net.forward_features(x)
            out_replaced = net.forward_head(replaced)
    # The hook replaced g and nothing else.
    assert torch.equal(replaced.global_feature, other_g) and not torch.equal(other_g, features.global_feature)
    assert all(torch.equal(a, b) for a, b in zip(features.local_features, replaced.local_features))
    # With either g, the logits are the classifier applied to the descriptors pooled from the *original*
    # local features with that run's attention maps: g has no path to the logits except the attention.
    for result in (out, out_replaced):
        pooled = [b.attend(l, a[:, 0]) for b, l, a in zip(net.attention, features.local_features, result.attention_maps)]
        torch.testing.assert_close(result.logits, _classify(net, pooled))
    if net.cfg.compatibility is Compatibility.PC:  # <u, g> cancels in the softmax: g does not matter at all
        torch.testing.assert_close(out_replaced.logits, out.logits)
    else:  # dp, add: g moves the attention, and through it the logits
        assert not torch.allclose(out_replaced.logits, out.logits)


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_g_steers_the_attention_except_in_pc(name):
    """The paper's pc adds <u, g> to every position alike, so the softmax removes it; dp and add do not."""
    torch.manual_seed(5)
    model = create_model(name, width=0.125).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = model.forward_with_attention(x)
        g = model.net.forward_features(model.normalize(x)).global_feature
        for other_g in (torch.zeros_like(g), -g, 10 * torch.randn_like(g)):
            with _global_feature_replaced(model.net, other_g):
                after = model.forward_with_attention(x)
            for a, a_after, c, c_after in zip(before.attention_maps, after.attention_maps,
                                             before.compatibility, after.compatibility):
                if model.cfg.compatibility is Compatibility.PC:
                    torch.testing.assert_close(a_after, a)
                    shift = (c_after - c).flatten(1)  # the scores move by one constant per image: <u, g' - g>
                    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), atol=1e-4, rtol=1e-5)
                else:
                    assert not torch.allclose(a_after, a)


def _g_only_parameters(net: nn.Module) -> list[nn.Parameter]:
    """Parameters that feed g and nothing else. VGG: the conv layers after the last attended one, and the
    dense layer; ResNet (g pools the last attended stage): the final BatchNorm."""
    if net.cfg.family == "resnet":
        return list(net.final.parameters())
    after_last = [p for i, layer in enumerate(net.layers, start=1) if i > max(net.cfg.attention_layers)
                  for p in layer.parameters()]
    return after_last + list(net.dense.parameters())


def _relative_g_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """|dL/d(g-only params)| / |dL/d(other params)| for the cross-entropy L, in float64 on a copy of ``model``."""
    model = copy.deepcopy(model).eval().double()
    g_only = _g_only_parameters(model.net)
    # VGG: layers 14, 15 (conv + BatchNorm) at least, and the dense layer; ResNet: the final BatchNorm
    assert len(g_only) >= (2 if model.cfg.family == "resnet" else 2 + 3 * 2)
    ids = {id(p) for p in g_only}
    others = [p for p in model.parameters() if id(p) not in ids]
    grads = torch.autograd.grad(F.cross_entropy(model(x.double()), y), g_only + others)
    norm = lambda gs: torch.cat([g.flatten() for g in gs]).norm()  # noqa: E731
    return float(norm(grads[:len(g_only)]) / norm(grads[len(g_only):]))


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_the_g_branch_gets_gradient_except_in_pc(name):
    torch.manual_seed(6)
    model = create_model(name, width=0.125)
    ratio = _relative_g_gradient(model, torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    if model.cfg.compatibility is Compatibility.PC:
        assert ratio < 1e-12  # zero up to float64 rounding (measured ~1e-18)
    else:
        assert ratio > 1e-5  # measured 3e-4 .. 4e-3 at this initialisation


def test_the_shipped_pc_checkpoints_never_trained_the_g_branch(shipped, embedded_cifar):
    """On the trained checkpoints: layers 14, 15 and the dense layer get no gradient in pc, a large one in dp."""
    x, y = embedded_cifar.float_batch(slice(0, 32))
    ratios = {name: _relative_g_gradient(ckpt.model, x, y) for name, ckpt in shipped.items()
              if ckpt.model.cfg.compatibility is not None}
    assert any(ckpt.model.cfg.compatibility is Compatibility.PC for ckpt in shipped.values())
    for name, ratio in ratios.items():
        if shipped[name].model.cfg.compatibility is Compatibility.PC:
            assert ratio < 1e-12, name
        else:
            assert ratio > 1e-2, name  # measured 0.2 on vgg-att3-concat-dp_c10s (float32)


def test_models_package_has_no_import_cycles():
    """No module under robust_attn/models imports another that (directly or not) imports it back."""
    package = Path(robust_attn.models.__file__).parent
    modules = {p.stem for p in package.glob("*.py")}
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
                found |= {t.split(".")[0] for t in targets} & modules
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found |= {n.split(".")[2] for n in names if n.startswith("robust_attn.models.")} & modules
        imports[path.stem] = found - {path.stem}
    assert imports["registry"] >= {"config", "wrapper"} and "registry" not in imports["wrapper"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(m == target or (m not in seen and reaches(m, target, seen | {m})) for m in imports.get(start, ()))

    cycles = sorted(m for m in imports if m != "__init__" and reaches(m, m, set()))
    assert not cycles, f"import cycles through {cycles}: {imports}"


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
