"""What a run writes about the models and attacks it ran, looked up in the registries when it runs, so
that rows describe themselves and a report decides nothing from a name.

A registered architecture answers from its :class:`~robust_attn.models.config.ModelCfg`. A user's
model (see :mod:`robust_attn.user_models`) has no registry entry: its family is its architecture string
(its class name), it has no baseline and its maps are ``none``: the sweep's panels and attention shift
read maps of registered architectures only, so a user model's ``forward_with_attention`` (if any) is
not a map the run uses. Its training seed and model arguments are unknown (``UNKNOWN``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..attacks import get_attack_cfg, list_attacks
from ..checkpoints import Checkpoint, recorded_model_args
from ..models import AttentionMaps, get_model_cfg
from ..results import STANDARD_TRAINING, UNKNOWN
from ..threat_models import threat_summary
from ..user_models import is_user_checkpoint


@dataclass(frozen=True)
class ModelFacts:
    """A model as its result rows describe it (results.csv's columns; transfer.csv's with a prefix)."""

    architecture: str
    family: str
    baseline: str  # '' for a backbone or a user's model
    attention_maps: str  # an AttentionMaps value
    training_threat_model: str
    training_seed: str  # the checkpoint's training seed (metadata "seed"); UNKNOWN for a user's model
    model_args: str  # canonical JSON of the architecture's arguments, defaults filled ("{}": none); UNKNOWN for a user's model


@dataclass(frozen=True)
class AttackFacts:
    """An attack as its result rows describe it."""

    attack_kind: str  # an AttackKind value
    ce_gradient: bool


def model_facts(ckpt: Checkpoint) -> ModelFacts:
    """The facts of a checkpoint's model: from the model registry, or the user-model rules."""
    architecture = str(ckpt.metadata["architecture"])
    # the whole threat (name, eps, steps, step size), so that baseline pairs and per-threat tables never
    # join models trained against different budgets; a checkpoint recording only a name keeps the name
    recorded = ckpt.metadata.get("training_threat")
    threat_model = (threat_summary(recorded) if isinstance(recorded, dict) and recorded
                    else str(ckpt.metadata.get("training_threat_model") or STANDARD_TRAINING))
    if is_user_checkpoint(ckpt):
        return ModelFacts(architecture, architecture, "", AttentionMaps.NONE.value, threat_model, UNKNOWN, UNKNOWN)
    cfg = get_model_cfg(architecture)
    seed = ckpt.metadata.get("seed")
    return ModelFacts(architecture, cfg.family, cfg.baseline or "", cfg.attention_maps.value, threat_model,
                      UNKNOWN if seed is None else str(seed), canonical_model_args(ckpt.metadata))


def canonical_model_args(metadata: dict[str, Any]) -> str:
    """A registered checkpoint's model arguments as canonical JSON, the architecture's defaults filled in,
    so a 0.3 checkpoint that recorded no ``depth`` and one that recorded the default compare equal."""
    args = {**get_model_cfg(str(metadata["architecture"])).model_args, **recorded_model_args(metadata)}
    return json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)


def attack_facts(name: str) -> AttackFacts:
    """The facts of a registered attack, from the attack registry."""
    cfg = get_attack_cfg(name)
    return AttackFacts(cfg.kind.value, cfg.ce_gradient)


def attack_catalog() -> dict[str, dict[str, Any]]:
    """Every registered attack as a run's start record lists it (``attack_catalog``), so a report can name
    attacks that were not run (the non-CE-gradient ones to try when gradient masking is suspected)
    without importing the attack registry."""
    catalog = {}
    for name in list_attacks():
        cfg = get_attack_cfg(name)
        catalog[name] = {"kind": cfg.kind.value, "norm": cfg.norm.value, "eps_bounded": cfg.eps_bounded,
                         "uses_gradient": cfg.uses_gradient, "ce_gradient": cfg.ce_gradient,
                         "objective": cfg.objective.value, **({"group": cfg.group} if cfg.group else {})}
    return catalog
