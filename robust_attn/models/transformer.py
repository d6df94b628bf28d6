"""Compact vision transformers for 32x32 images: self-attention in the same registry as the paper's CNNs.

Two families, both built from timm's transformer blocks (``timm.models.vision_transformer.Block``, its
multi-head self-attention and MLP) rather than attention written here:

* ``vit``: timm's own ``VisionTransformer`` at CIFAR size, the ViT-Lite of Hassani et al. 2021 (patches of
  4 x 4 pixels, so a 32 x 32 image is 8 x 8 = 64 tokens plus the class token; 7 blocks of width 256,
  4 heads, MLP ratio 2 at ``width=1``), classified from the class token.
* ``cct``: the Compact Convolutional Transformer (Hassani et al. 2021, "Escaping the Big Data Paradigm
  with Compact Transformers", arXiv:2104.05704), CCT-7/3x1 at ``width=1``: a convolutional tokenizer
  (3x3 conv, ReLU, 3x3 max-pool of stride 2, per conv layer) instead of patches, learned positional
  embeddings, the same blocks, and **sequence pooling**: a learned score per token, softmax over the
  tokens, the weighted average of the tokens classified. That pooling is the paper's kind of attention
  (a softmax over positions, the descriptor its weighted sum), so ``cct-gap``, the same network with
  global average pooling (uniform weights), is its baseline, paired as ``vgg`` is with ``vgg-att*``.

Where this differs from Hassani et al.'s code: timm's blocks are pre-norm (CCT's encoder layer adds a
LayerNorm after the attention residual), attention dropout is 0 (0.1 there) so that the attention weights a
map reports are the ones the forward pass used, and stochastic depth (``drop_path``) defaults to 0 (0.1 there;
``--model-arg drop_path=0.1`` restores it) so that a training forward is as deterministic as a CNN's.

The maps (``forward_with_attention``), one N x 1 x h x w map on the token grid:

* ``cct``: the sequence-pooling weights, a distribution over tokens the model computes (sums to 1),
  with its scores as the compatibility;
* ``vit``: attention rollout (Abnar and Zuidema 2020, arXiv:2005.00928) from the class token: per block,
  the head-averaged attention plus the identity for the residual, rows renormalised, multiplied through
  the blocks; the class token's row over the patch tokens, renormalised to sum 1. It is an explanation
  computed from the attention weights, not a distribution the model classifies with; the compatibility
  is its logarithm (so that its softmax is the map);
* ``cct-gap``: none (its pooling weights are uniform).

Every block computes attention the unfused way (timm's own path), so the weights exist to read and the
plain forward and ``forward_with_attention`` give bitwise the same logits. Sizes are model arguments
(``depth``, ``heads``, ``mlp_ratio``, ``patch_size``, ``conv_layers``, ``kernel_size``, ``drop_path``) and the
embedding width is 256 x ``width``, which ``heads`` must divide.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from ..errors import UserError
from .config import AttentionMaps, ModelCfg, scale_channels
from .registry import register_model

HASSANI_2021 = ("Hassani et al., Escaping the Big Data Paradigm with Compact Transformers, 2021, arXiv:2104.05704 "
                "(timm's transformer blocks)")
DOSOVITSKIY_2021 = ("Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021, arXiv:2010.11929, as ViT-Lite-7/4 "
                    f"of {HASSANI_2021}; timm's VisionTransformer")
ABNAR_2020 = "attention rollout (Abnar and Zuidema, ACL 2020, arXiv:2005.00928)"

EMBED_DIM = 256  # the embedding width at width=1 (CCT-7 and ViT-Lite-7)
TOKENIZER_HIDDEN = 64  # the tokenizer's hidden conv layers' channels (CCT's in_planes, whatever the width)
IMAGE = 32  # the image size every dataset here has; positional embeddings are resampled for multiples of it
_BLOCK_ARGS = {"depth": 7, "heads": 4, "mlp_ratio": 2.0, "drop_path": 0.0}
_CCT_ARGS = {**_BLOCK_ARGS, "conv_layers": 1, "kernel_size": 3}
_VIT_ARGS = {**_BLOCK_ARGS, "patch_size": 4}

_CFGS: tuple[ModelCfg, ...] = (
    ModelCfg(name="cct-gap", family="cct", model_args=_CCT_ARGS, layer_unit="pooling",
             paper=f"{HASSANI_2021}, with global average pooling instead of sequence pooling (the ablation; not "
                   "in Jetley et al.)"),
    ModelCfg(name="cct", family="cct", baseline="cct-gap", attention_layers=(1,), model_args=_CCT_ARGS,
             layer_unit="pooling", maps=AttentionMaps.DISTRIBUTION, paper=HASSANI_2021, map_names=("sequence pooling",),
             maps_note="the sequence-pooling weights: a softmax over the tokens (N x 1 x h x w on the token grid, "
                       "summing to 1), the paper's kind of attention pooling"),
    ModelCfg(name="vit", family="vit", attention_layers=(1,), model_args=_VIT_ARGS, layer_unit="rollout",
             maps=AttentionMaps.ROLLOUT, paper=DOSOVITSKIY_2021, map_names=("rollout (explanation)",),
             maps_note=f"{ABNAR_2020} from the class token over the patch grid, renormalised to sum 1: an "
                       "explanation computed from the attention weights, not a distribution the model computes"),
)


class TokenFeatures(NamedTuple):
    """What a transformer's trunk hands its head: the normalised tokens and the token grid's size."""

    tokens: torch.Tensor  # N x T x D (the ViT's class token first)
    grid: tuple[int, int]  # h, w of the patch tokens
    attention: tuple[torch.Tensor, ...]  # per block, N x heads x T x T (the ViT's; empty for the CCT)


class TransformerOutput(NamedTuple):
    """The head's output, in the shape ``ModelWrapper.forward_with_attention`` reads."""

    logits: torch.Tensor
    attention_maps: tuple[torch.Tensor, ...]  # one N x 1 x h x w map, or none
    compatibility: tuple[torch.Tensor, ...]


def embedding_width(cfg: ModelCfg, width: float, heads: int) -> int:
    """256 x ``width`` channels, which ``heads`` must divide (else a one-line UserError)."""
    dim = scale_channels(EMBED_DIM, width)
    if heads < 1 or dim % heads:
        raise UserError(f"{cfg.name}: heads ({heads}) must divide the embedding width {dim} "
                        f"({EMBED_DIM} x width {width:g}); pick heads or a width that does")
    return dim


MAX_MLP = 64.0  # beyond it the MLP's weights outgrow any machine before they say anything


def _check_blocks(cfg: ModelCfg, dim: int, depth: int, mlp_ratio: float, drop_path: float) -> None:
    if depth < 1:
        raise UserError(f"{cfg.name}: depth (transformer blocks) must be >= 1, got {depth}")
    # timm's MLP has int(dim x ratio) hidden units and silently takes dim where that is 0; refuses nan and inf too
    if not 0 < mlp_ratio <= MAX_MLP or int(dim * mlp_ratio) < 1:
        raise UserError(f"{cfg.name}: mlp_ratio must give the MLP at least one hidden unit (embedding width {dim} x "
                        f"mlp_ratio >= 1) and be at most {MAX_MLP:g}, got {mlp_ratio}")
    if not 0 <= drop_path < 1:
        raise UserError(f"{cfg.name}: drop_path must be in [0, 1), got {drop_path}")


def _unfused(blocks: nn.Sequential) -> None:
    """timm's unfused attention path, whose softmax weights pass ``attn_drop`` (where the hooks read them)."""
    for block in blocks:
        block.attn.fused_attn = False


class AttentionWeights:
    """Reads each block's attention weights (N x heads x T x T) while a forward pass runs inside
    :meth:`capture`, from a forward hook on timm's ``attn_drop`` (the hook timm's ``AttentionExtract`` uses),
    without changing the model's mode or output."""

    def __init__(self, blocks: nn.Sequential):
        self._store: list[torch.Tensor] | None = None
        for block in blocks:
            block.attn.attn_drop.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self._store is not None:
            self._store.append(output)

    @contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        store: list[torch.Tensor] = []
        self._store = store
        try:
            yield store
        finally:
            self._store = None


def attention_rollout(attention: tuple[torch.Tensor, ...], prefix: int = 1) -> torch.Tensor:
    """Abnar and Zuidema's rollout: per block the head-averaged attention plus the identity (the residual),
    rows renormalised, multiplied from the first block to the last; returns the first (class) token's row
    over the patch tokens (those after ``prefix``), renormalised to sum 1: N x (T - prefix)."""
    with torch.autocast(attention[0].device.type, enabled=False):  # float32 products, also inside an autocast forward
        return _rollout(attention, prefix)


def _rollout(attention: tuple[torch.Tensor, ...], prefix: int) -> torch.Tensor:
    rolled = None
    for a in attention:
        a = a.float().mean(dim=1)
        a = a + torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        rolled = a if rolled is None else a @ rolled
    assert rolled is not None
    row = rolled[:, 0, prefix:]
    return row / row.sum(dim=-1, keepdim=True)


class ConvTokenizer(nn.Module):
    """CCT's tokenizer: per conv layer a ``kernel_size`` conv (no bias), ReLU and a 3x3 max-pool of stride 2;
    the hidden layers have 64 channels (as in CCT's code, at every embedding width), the last the embedding width."""

    def __init__(self, in_channels: int, dim: int, hidden: int, layers: int, kernel_size: int):
        super().__init__()
        widths = [in_channels, *([hidden] * (layers - 1)), dim]
        self.layers = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False), nn.ReLU(),
                          nn.MaxPool2d(3, stride=2, padding=1))
            for cin, cout in zip(widths[:-1], widths[1:])
        ))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # N x D x h x w


class CompactTransformer(nn.Module):
    """CCT: convolutional tokens, learned positions, timm blocks, a final LayerNorm, then sequence pooling
    (``cct``) or global average pooling (``cct-gap``) and a linear classifier."""

    def __init__(self, cfg: ModelCfg, *, width: float, num_classes: int, in_channels: int, depth: int, heads: int,
                 mlp_ratio: float, drop_path: float, conv_layers: int, kernel_size: int):
        super().__init__()
        self.cfg = cfg
        dim = embedding_width(cfg, width, heads)
        _check_blocks(cfg, dim, depth, mlp_ratio, drop_path)
        if not 1 <= conv_layers <= 5:
            raise UserError(f"{cfg.name}: conv_layers must be 1 to 5 (each halves the 32x32 image), got {conv_layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise UserError(f"{cfg.name}: kernel_size must be odd and >= 1, got {kernel_size}")
        self.tokenizer = ConvTokenizer(in_channels, dim, TOKENIZER_HIDDEN, conv_layers, kernel_size)
        side = IMAGE >> conv_layers
        self.grid = (side, side)
        self.pos_embed = nn.Parameter(torch.zeros(1, side * side, dim))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth grows with depth, as in CCT
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, qkv_bias=False, drop_path=r) for r in rates))
        _unfused(self.blocks)
        self.norm = nn.LayerNorm(dim)
        self.pool_score = nn.Linear(dim, 1) if cfg.has_attention else None  # sequence pooling's scores
        self.head = nn.Linear(dim, num_classes)
        trunc_normal_(self.pos_embed, std=0.2)  # CCT's initialisation
        for m in [*self.blocks.modules(), self.norm, self.head, *([self.pool_score] if self.pool_score else [])]:
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> TokenFeatures:
        x = self.tokenizer(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        pos = self.pos_embed if grid == self.grid else resample_abs_pos_embed(
            self.pos_embed, list(grid), list(self.grid), num_prefix_tokens=0)
        return TokenFeatures(self.norm(self.blocks(x + pos)), grid, ())

    def forward_head(self, features: TokenFeatures) -> TransformerOutput:
        tokens, (h, w) = features.tokens, features.grid
        if self.pool_score is None:
            return TransformerOutput(self.head(tokens.mean(dim=1)), (), ())
        scores = self.pool_score(tokens)[..., 0]  # N x T
        weights = torch.softmax(scores, dim=1)
        pooled = torch.einsum("nt,ntd->nd", weights, tokens)
        n = len(tokens)
        return TransformerOutput(self.head(pooled), (weights.view(n, 1, h, w),), (scores.view(n, 1, h, w),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)).logits


class CifarViT(nn.Module):
    """timm's ``VisionTransformer`` at CIFAR size (class token, learned positions resampled for other image
    sizes), with attention rollout from the class token as its map."""

    def __init__(self, cfg: ModelCfg, *, width: float, num_classes: int, in_channels: int, depth: int, heads: int,
                 mlp_ratio: float, drop_path: float, patch_size: int):
        super().__init__()
        self.cfg = cfg
        dim = embedding_width(cfg, width, heads)
        _check_blocks(cfg, dim, depth, mlp_ratio, drop_path)
        if patch_size < 1 or IMAGE % patch_size:
            raise UserError(f"{cfg.name}: patch_size must divide the {IMAGE}x{IMAGE} image (1, 2, 4, 8, 16 or 32), "
                            f"got {patch_size}")
        self.vit = VisionTransformer(img_size=IMAGE, patch_size=patch_size, in_chans=in_channels,
                                     num_classes=num_classes, embed_dim=dim, depth=depth, num_heads=heads,
                                     mlp_ratio=mlp_ratio, drop_path_rate=drop_path, dynamic_img_size=True)
        _unfused(self.vit.blocks)
        self.weights = AttentionWeights(self.vit.blocks)

    def forward_features(self, x: torch.Tensor) -> TokenFeatures:
        grid = (x.shape[2] // self.vit.patch_embed.patch_size[0], x.shape[3] // self.vit.patch_embed.patch_size[1])
        with self.weights.capture() as attention:
            tokens = self.vit.forward_features(x)
        return TokenFeatures(tokens, grid, tuple(attention))

    def forward_head(self, features: TokenFeatures) -> TransformerOutput:
        logits = self.vit.forward_head(features.tokens)
        (h, w), n = features.grid, len(features.tokens)
        rollout = attention_rollout(features.attention, self.vit.num_prefix_tokens).view(n, 1, h, w)
        return TransformerOutput(logits, (rollout,), (rollout.log(),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)


for _cfg in _CFGS:  # each class is its own builder: builder(cfg, width=, num_classes=, in_channels=, **model_args)
    register_model(_cfg)(CifarViT if _cfg.family == "vit" else CompactTransformer)
