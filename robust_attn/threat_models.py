"""Training threat models: what a training step trains on, declared once with the papers' defaults.

A threat model is the adversary training defends against. ``standard`` trains on clean images (the
suite's training until now, unchanged); the others craft adversarial examples of each batch with a
torchattacks attack (the inner maximisation) and train on them:

- ``pgd``: Madry et al. 2018, PGD with a uniform random start, eps 8/255, 7 steps of 2/255,
  cross-entropy on the adversarial examples (``torchattacks.PGD``);
- ``trades``: Zhang et al. 2019, cross-entropy on the clean images plus ``beta`` (6) times the KL
  divergence between the clean and adversarial predictions, the adversarial examples maximising that
  KL divergence: 10 steps of 2/255 (the paper's 0.007) at eps 8/255 (``torchattacks.TPGD``);
- ``fast-fgsm``: Wong et al. 2020, one FGSM step of 10/255 (1.25 eps) from a uniform random start
  at eps 8/255 (``torchattacks.FFGSM``).

Like the attack registry, each entry is a frozen config citing its paper; :func:`resolve_threat`
turns an entry and the user's overrides into a validated :class:`Threat` (every mistake one
:class:`~robust_attn.errors.UserError` line). This module imports nothing heavy (no torch), so the
command line shows these defaults in ``--help`` without loading the training code.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import UserError, unknown_name

__all__ = ["THREAT_MODELS", "Threat", "ThreatModel", "ThreatModelCfg", "get_threat_model_cfg", "resolve_threat",
           "threat_summary"]


class ThreatModel(StrEnum):
    STANDARD = "standard"
    PGD = "pgd"
    TRADES = "trades"
    FAST_FGSM = "fast-fgsm"


@dataclass(frozen=True)
class ThreatModelCfg:
    """One training threat model and its paper's defaults (Linf, pixel units)."""

    name: ThreatModel
    paper: str
    inner_attack: str  # the torchattacks class that crafts the training examples ('' for standard)
    description: str
    eps: str = ""  # the papers' text form, e.g. '8/255'
    steps: int = 0
    step_size: str = ""
    beta: float | None = None  # TRADES' weight of the robustness term
    fixed_steps: bool = False  # the attack takes no step count (FFGSM is one step)
    cite: str = ""  # short form for help texts, e.g. 'Madry et al. 2018'

    @property
    def adversarial(self) -> bool:
        return self.name is not ThreatModel.STANDARD


THREAT_MODELS: dict[ThreatModel, ThreatModelCfg] = {cfg.name: cfg for cfg in (
    ThreatModelCfg(ThreatModel.STANDARD, "", "", "clean images only", cite="clean images"),
    ThreatModelCfg(
        ThreatModel.PGD,
        "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018, arXiv:1706.06083",
        "PGD", "cross-entropy on PGD examples (uniform random start)", eps="8/255", steps=7, step_size="2/255",
        cite="Madry et al. 2018"),
    ThreatModelCfg(
        ThreatModel.TRADES,
        "Zhang et al., Theoretically Principled Trade-off between Robustness and Accuracy, ICML 2019, arXiv:1901.08573",
        "TPGD", "clean cross-entropy + beta x KL(clean || adversarial), KL-maximising PGD", eps="8/255", steps=10,
        step_size="2/255", beta=6.0, cite="Zhang et al. 2019"),
    ThreatModelCfg(
        ThreatModel.FAST_FGSM,
        "Wong, Rice, Kolter, Fast is Better than Free: Revisiting Adversarial Training, ICLR 2020, arXiv:2001.03994",
        "FFGSM", "cross-entropy on one FGSM step of 1.25 eps from a uniform random start", eps="8/255", steps=1,
        step_size="10/255", fixed_steps=True, cite="Wong et al. 2020"),
)}


def get_threat_model_cfg(name: str) -> ThreatModelCfg:
    """The registered threat model ``name``; an unknown name is a UserError with a did-you-mean."""
    try:
        return THREAT_MODELS[ThreatModel(name)]
    except ValueError:
        raise unknown_name("training threat model", str(name), [t.value for t in ThreatModel]) from None


@dataclass(frozen=True)
class Threat:
    """A resolved training threat model: the entry with every parameter set and checked."""

    cfg: ThreatModelCfg
    eps: float = 0.0
    eps_label: str = ""
    steps: int = 0
    step_size: float = 0.0
    step_size_label: str = ""
    beta: float | None = None

    @property
    def name(self) -> str:
        return self.cfg.name.value

    @property
    def adversarial(self) -> bool:
        return self.cfg.adversarial

    def record(self) -> dict[str, Any]:
        """What a checkpoint records of it (plain JSON values): eps and step size as text and number."""
        if not self.adversarial:
            return {"threat_model": self.name}
        return {"threat_model": self.name, "eps": self.eps_label, "eps_value": self.eps, "steps": self.steps,
                "step_size": self.step_size_label, "step_size_value": self.step_size, "beta": self.beta,
                "inner_attack": f"torchattacks.{self.cfg.inner_attack}", "paper": self.cfg.paper}


def threat_summary(record: Mapping[str, Any] | None) -> str:
    """One line for a checkpoint's recorded training threat (its ``training_threat`` metadata, as
    :meth:`Threat.record` writes it; None: standard training), as listings and legends show it:
    'standard', 'fast-fgsm 8/255 (1 step of 10/255)', 'trades 8/255 (10 steps of 2/255, beta 6)'."""
    if not record or record.get("threat_model", "standard") == ThreatModel.STANDARD.value:
        return ThreatModel.STANDARD.value
    steps = record.get("steps")
    detail = f"{steps} step{'s' if steps != 1 else ''} of {record.get('step_size')}"
    if record.get("beta") is not None:
        detail += f", beta {record['beta']:g}"
    return f"{record['threat_model']} {record.get('eps')} ({detail})"


def resolve_threat(name: str, eps: str | float | None = None, steps: int | None = None,
                   step_size: str | float | None = None, beta: float | None = None) -> Threat:
    """The threat model ``name`` with the given overrides (None: the paper's default), checked:
    eps in [0, 1], steps >= 1, step size > 0, TRADES beta >= 0. An option the threat model does not
    take (any for ``standard``, beta for all but ``trades``, steps for ``fast-fgsm``) is an error
    rather than silently ignored, so a record never claims a setting that had no effect."""
    from .attacks.grids import parse_eps_value  # the sweep's number rule; imported here: it loads torch

    cfg = get_threat_model_cfg(name)
    given = {"--threat-eps": eps, "--threat-steps": steps, "--threat-step-size": step_size, "--trades-beta": beta}
    if not cfg.adversarial:
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise UserError(f"{extra[0]} applies to adversarial training; --threat standard crafts no examples")
        return Threat(cfg)
    if beta is not None and cfg.beta is None:
        raise UserError(f"--trades-beta applies to --threat trades only, not {cfg.name.value}")
    if steps is not None and cfg.fixed_steps and steps != cfg.steps:
        raise UserError(f"--threat-steps: {cfg.name.value} takes exactly {cfg.steps} step, got {steps!r}")
    eps_value, eps_label = parse_eps_value(_text(cfg.eps if eps is None else eps), "--threat-eps")
    step_value, step_label = _step_size(_default_step(cfg, eps_value) if step_size is None else step_size)
    n_steps = cfg.steps if steps is None else steps
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise UserError(f"--threat-steps must be an integer >= 1, got {n_steps!r}")
    weight = cfg.beta if beta is None else beta
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                               or not math.isfinite(weight) or weight < 0):
        raise UserError(f"--trades-beta must be a number >= 0, got {weight!r}")
    return Threat(cfg, eps_value, eps_label, n_steps, step_value, step_label,
                  None if weight is None else float(weight))


def _default_step(cfg: ThreatModelCfg, eps: float) -> str:
    """The paper's step size, scaled with the budget: the papers fix the step relative to eps (PGD and
    TRADES 2/255 at 8/255, a quarter; fast FGSM 1.25 eps, the ratio Wong et al. found to avoid both
    weak steps and catastrophic overfitting), so ``--threat-eps 0.1`` alone (Fashion-MNIST) steps 0.025
    (PGD) or 0.125 (fast FGSM), not 2/255 or 10/255. Written as n/255 when n is a whole number."""
    from .attacks.grids import parse_eps_value

    paper_eps, _ = parse_eps_value(cfg.eps, "eps")
    paper_step, _ = parse_eps_value(cfg.step_size, "step size")
    step = min(paper_step * eps / paper_eps, 1.0)  # a step over the whole pixel range is the same step
    if eps <= 0 or math.isclose(step, paper_step):  # eps 0 trains on clean images whatever the step
        return cfg.step_size
    in_255 = step * 255
    return f"{round(in_255)}/255" if math.isclose(in_255, round(in_255), abs_tol=1e-9) else repr(step)


def _text(value: str | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _step_size(value: str | float) -> tuple[float, str]:
    """A step size: a number > 0 in pixel units, written like eps ('2/255', '0.007')."""
    from .attacks.grids import parse_eps_value

    text = _text(value)
    try:
        number, label = parse_eps_value(text, "--threat-step-size")
    except UserError:
        number, label = -1.0, text
    if number <= 0:
        raise UserError(f"--threat-step-size must be a number in (0, 1] such as 2/255, got {text!r}")
    return number, label
