"""What an architecture is: the config types shared by the registry, the wrapper and the builders.

They live in their own module, which imports nothing else from this package, so that
``registry`` (which wraps built networks) and ``wrapper`` (which reads a network's config)
both depend on it rather than on each other.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import UserError

JETLEY_2018 = "Jetley et al., Learn To Pay Attention, ICLR 2018, arXiv:1804.02391"
OKTAY_2018_ADDITIVE = (
    "Oktay et al. 2018 additive attention (not in Jetley et al.): Attention U-Net, MIDL 2018, arXiv:1804.03999, "
    "on the backbone and heads of Jetley et al. 2018"
)
HE_2016_PREACT = "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016, arXiv:1603.05027"
HU_2018_SE = "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, arXiv:1709.01507 (timm's SEModule)"
WOO_2018_CBAM = "Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018, arXiv:1807.06521 (timm's CbamModule)"


class Combine(StrEnum):
    """How several attended descriptors g_a feed the classifier (paper, section 3.3)."""

    CONCAT = "concat"  # concatenate every g_a, one linear classifier
    INDEP = "indep"  # one linear classifier per g_a, logits averaged


class Compatibility(StrEnum):
    """The compatibility function c_i = C(l_i, g), whose softmax over positions is the attention.

    ``PC`` and ``DP`` are the paper's (section 3.2). In ``PC`` the term <u, g> is the same at
    every position and cancels in the softmax, so the attention, g_a and the logits depend on the
    local features alone: g does not enter the attention, and the layers that only feed g get no
    gradient. ``ADD`` is not the paper's: Oktay et al.'s additive attention, whose nonlinearity
    stops the g term from cancelling, registered so that a variant where g steers the attention
    exists beside ``DP``.
    """

    PC = "pc"  # parametrised (paper): <u, l_i + g> = <u, l_i> + const; g cancels in the softmax
    DP = "dp"  # dot product (paper): <l_i, g>; g weights every position differently
    ADD = "add"  # additive (Oktay et al. 2018, NOT the paper's): <u, ReLU(W_l l_i + W_g g + b)>

    @property
    def in_paper(self) -> bool:
        """Whether Jetley et al. define this compatibility (``ADD`` is borrowed from Oktay et al.)."""
        return self is not Compatibility.ADD

    @property
    def uses_global_feature(self) -> bool:
        """Whether the attention maps depend on g (false for ``PC``: <u, g> cancels in the softmax)."""
        return self is not Compatibility.PC


class Gate(StrEnum):
    """An attention module of the kind most CNNs carry, gating features inside the backbone
    (not Jetley et al.'s: no softmax over positions, no attended descriptor)."""

    SE = "se"  # squeeze-and-excitation (Hu et al. 2018): channel gate only, no spatial map
    CBAM = "cbam"  # CBAM (Woo et al. 2018): channel gate, then a spatial gate in [0, 1] per position


class AttentionMaps(StrEnum):
    """What ``forward_with_attention`` returns per attended layer, as the report needs to know it (recorded in
    every result row, so a report never guesses it from the model's name)."""

    NONE = "none"  # no spatial maps (a backbone, or SE's channel-only gates)
    DISTRIBUTION = "distribution"  # the paper's softmax over positions: each map sums to 1
    GATE = "gate"  # a sigmoid gate in [0, 1] per position (CBAM's spatial gate): not a distribution
    # an explanation computed from the model's attention weights (a ViT's attention rollout), renormalised to
    # sum 1 over positions: compared as a distribution, but not one the model computes or classifies with
    ROLLOUT = "rollout"

    @property
    def is_distribution(self) -> bool:
        """Whether each map sums to 1 over positions (the measure of a shift is then Jensen-Shannon)."""
        return self in (AttentionMaps.DISTRIBUTION, AttentionMaps.ROLLOUT)


@dataclass(frozen=True)
class ModelCfg:
    """What an architecture is; everything a builder needs besides width and class count.

    ``paper`` names the source of the architecture as built here, so a variant that is not
    the paper's says so wherever its config is shown or recorded.

    ``attention_layers`` are the layers (VGG: conv layer numbers; ResNet: stage numbers, see
    ``layer_unit``) whose spatial attention maps ``forward_with_attention`` returns: the paper's
    softmax maps (``compatibility`` set; each sums to 1 over positions) or CBAM's spatial gates
    (``gate`` is CBAM; values in [0, 1], not distributions). ``gate``/``gated_layers``: where a
    SE or CBAM module gates the features. An SE model has gates but no spatial map, so its
    ``attention_layers`` is empty and ``has_attention`` false. ``baseline``: the registered name of the
    architecture a variant is compared against (its backbone without attention: ``vgg`` for
    ``vgg-att3-concat-pc``); ``None`` for a backbone itself.

    ``model_args``: the options particular to this architecture, with their defaults (a ResNet's
    ``{"depth": 20}``); ``create_model`` takes them as keywords and hands them to the builder, as timm
    does, so nothing between the command line and the builder names them. A default's type is the
    argument's type. Treat the mapping as read-only (it is left out of the config's hash).

    ``maps``: the kind of map a family without the paper's compatibility or a gate exposes (a
    transformer's sequence-pooling weights are a ``DISTRIBUTION``, a ViT's rollout a ``ROLLOUT``); unset,
    the kind follows from ``compatibility`` and ``gate``. ``maps_note``: what the maps are, in words, for
    ``models --details``. ``map_names``: what each map is called in reports and listings where "layer 7" or
    "stage 2" would say nothing (a transformer's one map); unset, ``layer_unit`` and the number.
    """

    name: str
    family: str
    attention_layers: tuple[int, ...] = ()
    combine: Combine | None = None
    compatibility: Compatibility | None = None
    input_multiple: int = 32
    paper: str = JETLEY_2018
    gate: Gate | None = None
    gated_layers: tuple[int, ...] = ()
    model_args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    layer_unit: str = "layer"
    baseline: str | None = None
    maps: AttentionMaps | None = None
    maps_note: str = ""
    map_names: tuple[str, ...] = ()

    @property
    def has_attention(self) -> bool:
        """Whether ``forward_with_attention`` returns spatial maps (the paper's or CBAM's)."""
        return bool(self.attention_layers)

    @property
    def map_labels(self) -> tuple[str, ...]:
        """One label per map of ``forward_with_attention`` ("layer 7", "stage 2", "sequence pooling")."""
        if self.map_names:
            return self.map_names
        return tuple(f"{self.layer_unit} {j}" for j in self.attention_layers)

    @property
    def maps_are_distributions(self) -> bool:
        """Whether each spatial map sums to 1 over positions: the paper's softmax attention, a CCT's
        sequence-pooling weights, a ViT's rollout; false for CBAM's sigmoid gates and for models without maps."""
        return self.attention_maps.is_distribution

    @property
    def attention_maps(self) -> AttentionMaps:
        """The kind of spatial maps the model exposes (see :class:`AttentionMaps`)."""
        if not self.has_attention:
            return AttentionMaps.NONE
        if self.maps is not None:
            return self.maps
        return AttentionMaps.DISTRIBUTION if self.compatibility is not None else AttentionMaps.GATE


def validate_width(width: float) -> float:
    """``width`` as a float if it is a finite positive number, else a one-line :class:`UserError`."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise UserError(f"width must be a positive number, got {width!r}")
    return float(width)


def scale_channels(channels: int, width: float) -> int:
    """Channel count at ``width`` (at least 1), so every layer shrinks by the same factor."""
    return max(1, int(round(channels * width)))
