"""Attack registry, same conventions as the model registry.

An entry is a frozen :class:`AttackCfg` (norm, whether it is eps-bounded, what it needs from the
model's gradient, its parameters with defaults, paper) plus a builder
``build(model, eps, params, seed) -> perturb`` where ``perturb(x, y) -> x_adv`` works on
pixel-space images in [0, 1]. Builders hold no global state; :func:`create_attack` adds what every
attack needs: input checks, a standard memory layout for the attack's internals whatever the layout
of the model and the images, eval mode restored afterwards, and randomness taken from the seed
without touching the global RNG.
"""
from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ..errors import UserError, unknown_name
from ..key_values import parse_bool, split_key_values
from ..registry import Registry
from .layout import StandardLayout, memory_format_of


class Norm(StrEnum):
    """The distance an attack's budget bounds; ``NONE`` for common corruptions, whose grid is a severity
    (1-5), not a distance."""

    LINF = "Linf"
    L2 = "L2"
    NONE = "none"


Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Builder = Callable[[nn.Module, float, Mapping[str, Any], int], Perturb]


class Objective(StrEnum):
    """What an attack maximises: the classification loss (every label attack), or the change of the
    model's attention maps (``attention-shift``; needs a model with spatial maps). Label-attack sanity
    checks (monotone, stronger than noise, large budgets break everything) hold for the first only."""

    MISCLASSIFY = "misclassify"
    ATTENTION = "attention"
    NATURAL = "natural"  # common corruptions: a natural distribution shift that maximises nothing


class AttackKind(StrEnum):
    """How an attack searches, as the report's sanity checks need to know it (recorded in every result row,
    so a report never guesses it from the attack's name): an iterative attack should be at least as strong
    as a single-step one at the same eps, and every attack stronger than random noise of the same norm."""

    SINGLE_STEP = "single-step"  # one gradient step (FGSM)
    ITERATIVE = "iterative"  # several gradient steps inside the eps-ball (BIM, PGD, APGD, AutoAttack, attention-shift)
    MINIMAL_PERTURBATION = "minimal-perturbation"  # the smallest perturbation that flips the label (CW, DeepFool)
    SCORE_BASED = "score-based"  # random search on the model's scores, no gradient (Square)
    NOISE = "noise"  # random noise of norm eps: the floor every attack should beat
    CORRUPTION = "corruption"  # a common corruption at a severity (Hendrycks & Dietterich 2019), no adversary


@dataclass(frozen=True)
class AttackCfg:
    """What an attack is.

    ``eps_bounded`` attacks take the budget eps and return a perturbation inside the eps-ball.
    Minimal-perturbation attacks (CW, DeepFool) take no eps; they are reported as accuracy under a
    budget: an example counts as broken at eps only if the attack's perturbation norm is <= eps.

    Every entry declares, with no default (so a new entry cannot forget them):

    ``uses_gradient``
        the attack follows the model's input gradient (the sweep records the zero-gradient
        diagnostic for it; score-based and random attacks set False).
    ``ce_gradient``
        its strength depends on the scale of the cross-entropy gradient: when the softmax
        saturates, CE gradients underflow to exactly 0 and the attack stalls (FGSM, BIM, PGD,
        APGD-CE). Attacks on logit margins (CW, DLR, DeepFool) or on scores alone (Square) set
        False: they are the ones to run when the gradient diagnostic fires.
    ``still_robust_fast_path``
        the sweep may attack, at each eps of a grid, only the points still robust at the
        previous eps and carry the broken ones, instead of attacking every point.

    ``kind``
        how it searches (:class:`AttackKind`).

    ``objective`` (default: misclassify) says what the attack maximises (:class:`Objective`).

    ``group`` (common corruptions only): the corruption's group (noise, blur, weather, digital), which
    run logs record in their attack catalog so a report can average by group without knowing names.
    """

    name: str
    norm: Norm
    eps_bounded: bool
    paper: str
    _: KW_ONLY
    kind: AttackKind
    uses_gradient: bool
    ce_gradient: bool
    still_robust_fast_path: bool
    defaults: Mapping[str, Any] = field(default_factory=dict)
    randomized: bool = False
    description: str = ""
    objective: Objective = Objective.MISCLASSIFY
    group: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        for flag in ("eps_bounded", "uses_gradient", "ce_gradient", "still_robust_fast_path", "randomized"):
            if type(getattr(self, flag)) is not bool:
                raise TypeError(f"attack {self.name!r}: {flag} must be a bool, got {getattr(self, flag)!r}")
        if not isinstance(self.kind, AttackKind):
            raise TypeError(f"attack {self.name!r}: kind must be an AttackKind, got {self.kind!r}")
        if self.ce_gradient and not self.uses_gradient:
            raise ValueError(f"attack {self.name!r}: ce_gradient requires uses_gradient")
        if self.still_robust_fast_path and not self.eps_bounded:
            raise ValueError(f"attack {self.name!r}: still_robust_fast_path requires an eps-bounded attack")
        corruption = (self.kind is AttackKind.CORRUPTION, self.norm is Norm.NONE, self.objective is Objective.NATURAL)
        if any(corruption) and not all(corruption):
            raise ValueError(f"attack {self.name!r}: a corruption has kind corruption, norm none and objective "
                             "natural, and only a corruption has any of them")


_REGISTRY: Registry[AttackCfg, Builder] = Registry("attack")


def register_attack(cfg: AttackCfg) -> Callable[[Builder], Builder]:
    """Register ``builder(model, eps, params, seed) -> perturb`` under ``cfg.name``; a group name
    (:data:`CORRUPTIONS`) is refused, since the command line would read it as the group."""
    if cfg.name == CORRUPTIONS:
        raise ValueError(f"attack name {cfg.name!r} is reserved: it names every common corruption")
    return _REGISTRY.register(cfg.name, cfg)


def list_attacks(pattern: str = "*") -> list[str]:
    """Registered attack names matching a shell-style ``pattern``, sorted."""
    return _REGISTRY.names(pattern)


# Names that stand for several registered entries on the command line and in study files.
CORRUPTIONS = "corruptions"  # every common corruption (robust_attn.corruptions), in Hendrycks & Dietterich's order


def expand_attack_names(names: Sequence[str]) -> list[str]:
    """``names`` with ``corruptions`` replaced by every registered corruption (in the order the corruptions
    package lists them), so ``--attack corruptions`` reads like one threat next to the attacks."""
    out: list[str] = []
    for name in names:
        if name == CORRUPTIONS:
            from ..corruptions import list_corruptions

            out += [c for c in list_corruptions() if c in _REGISTRY.names()]
        elif name not in _REGISTRY.names():  # the close matches include the group name ('corruption')
            raise unknown_name("attack", name, [*_REGISTRY.names(), CORRUPTIONS])
        else:
            out.append(name)
    return out


def listed_twice(requested: Sequence[str]) -> str | None:
    """What ``requested`` (names as the user wrote them, before :func:`expand_attack_names`) lists twice, as
    the end of an error line, or None: a name written twice is named alone (not the 15 corruptions that
    ``corruptions, corruptions`` would expand to), and a corruption written beside the group is said to be in it."""
    twice = sorted({n for n in requested if requested.count(n) > 1})
    if twice:
        return ", ".join(twice)
    grouped = set(expand_attack_names([CORRUPTIONS])) if CORRUPTIONS in requested else set()
    inside = sorted(n for n in requested if n in grouped)
    return f"{', '.join(inside)} ({CORRUPTIONS!r} already runs every corruption)" if inside else None


def is_corruption(name: str) -> bool:
    """Whether a registered entry is a common corruption (its grid is a severity, not an eps)."""
    return get_attack_cfg(name).kind is AttackKind.CORRUPTION


def grid_name(name: str) -> str:
    """What a grid value of this entry is called in messages and tables: ``severity`` for a corruption,
    ``eps`` for an attack."""
    return "severity" if is_corruption(name) else "eps"


def get_attack_cfg(name: str) -> AttackCfg:
    return _REGISTRY.cfg(name)


# ------------------------------------------------------------------ parameters

# Every int / float parameter of a registered attack is in exactly one of these (a test checks).
_POSITIVE = {"steps", "n_queries", "restarts", "rel_stepsize", "p_init", "binary_search_steps", "stepsize",
             "initial_const", "eot_iter"}
_NON_NEGATIVE = {"overshoot", "confidence"}


def _coerce(cfg: AttackCfg, key: str, value: Any) -> Any:
    default = cfg.defaults[key]
    kind = type(default)
    if isinstance(value, str):
        text = value.strip()
        try:
            if kind is bool:
                value = parse_bool(text)
            elif kind is int:
                value = int(text)
            elif kind is float:
                value = float(text)
            else:
                value = text
        except ValueError:
            raise UserError(f"attack {cfg.name!r}: {key}={value!r} is not a valid {kind.__name__}") from None
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise UserError(f"attack {cfg.name!r}: {key} must be {kind.__name__}, got {value!r}")
    if kind in (int, float) and not math.isfinite(value):
        raise UserError(f"attack {cfg.name!r}: {key} must be finite, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise UserError(f"attack {cfg.name!r}: {key} must be > 0, got {value!r}")
    if key in _NON_NEGATIVE and value < 0:
        raise UserError(f"attack {cfg.name!r}: {key} must be >= 0, got {value!r}")
    if key == "p_init" and value > 1:
        raise UserError(f"attack {cfg.name!r}: p_init must be in (0, 1], got {value!r}")
    return value


def resolve_params(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The attack's defaults with ``overrides`` applied, type-checked; unknown keys are errors."""
    cfg = get_attack_cfg(name)
    params = dict(cfg.defaults)
    for key, value in (overrides or {}).items():
        if key not in cfg.defaults:
            known = ", ".join(sorted(cfg.defaults)) or "none"
            raise UserError(f"attack {name!r} has no parameter {key!r} (parameters: {known})")
        params[key] = _coerce(cfg, key, value)
    return params


def parse_attack_args(items: list[str] | None) -> dict[str, str]:
    """``["steps=20", "random_start=false"]`` -> ``{"steps": "20", ...}`` (typed later per attack)."""
    return split_key_values(items, "--attack-arg")


def params_json(params: Mapping[str, Any]) -> str:
    """Canonical JSON of attack parameters: the resume key and the CSV column."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------ running

def check_images(x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None) -> None:
    """Reject (never clamp) inputs an attack must not see."""
    if not torch.is_floating_point(x) or x.ndim != 4:
        raise UserError(f"images must be a float N x C x H x W tensor, got {x.dtype} {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise UserError("images contain NaN or inf")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise UserError(f"images must lie in [0, 1], got [{float(x.min()):.4g}, {float(x.max()):.4g}]")
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"labels must be a vector of {len(x)} entries, got shape {tuple(y.shape)}")
    if num_classes is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise UserError(f"labels must lie in [0, {num_classes - 1}]")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration, then the model's previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """The model's parameters need no gradient for the duration, then as before.

    Attacks need input gradients only; some engines (foolbox, torchattacks' DeepFool) call
    ``loss.backward()``, which would also compute weight gradients and leave them in the caller's
    ``.grad`` attributes.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in trainable:
            p.requires_grad_(True)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Take randomness from ``seed`` and leave the global RNG as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def create_attack(name: str, model: nn.Module, eps: float, seed: int = 0, **overrides: Any) -> Perturb:
    """A ready attack ``perturb(x, y) -> x_adv`` for ``model`` at budget ``eps`` (raw units).

    Images are N x C x H x W floats in [0, 1]; labels N int64. The model runs in eval mode with
    gradients enabled (also when called under ``torch.no_grad()``) and no weight gradients, and is
    restored to its previous mode afterwards; randomness comes from ``seed``.

    Memory layout does not matter: the attack's internals always see standard-contiguous images and
    get standard-contiguous input gradients (the model itself is fed the layout of its own weights,
    e.g. channels_last, through :class:`~robust_attn.attacks.layout.StandardLayout`), so an attack
    runs, and draws its random numbers, the same way whatever the layout of ``model`` and ``x``
    (results differ only by the model's own float rounding between layouts); ``x_adv`` comes back
    in the layout of ``x``. The caller's model is left as it was (mode, ``requires_grad``, weights,
    layout) and gets no ``.grad``.
    """
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0):
        raise UserError(f"eps must be a finite number >= 0, got {eps!r}")
    params = resolve_params(name, overrides)
    builder = _REGISTRY.builder(name)
    num_classes = getattr(model, "num_classes", None)

    def perturb(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_images(x, y, num_classes)
        layout = memory_format_of(x)
        with eval_mode(model), frozen_parameters(model), torch.enable_grad(), seeded(seed, x.device):
            attack = builder(StandardLayout(model).eval(), float(eps), params, seed)
            x_adv = attack(x.contiguous(), y)
        return x_adv.detach().contiguous(memory_format=layout)

    return perturb
