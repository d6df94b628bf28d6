"""The training recipe's defaults, declared once: the library's :class:`~robust_attn.train.TrainConfig`,
the ``train`` command's options and study files' ``[train]`` table all read them from here.

It imports nothing heavy (no torch), so the command line can show these defaults in ``--help``
without paying for the training code.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import UserError


class Schedule(StrEnum):
    ONECYCLE = "onecycle"
    STEP = "step"  # the paper: lr x 0.5 every 25 epochs


class OnOverfit(StrEnum):
    """What adversarial training does when it detects catastrophic overfitting (see
    :mod:`robust_attn.holdout`). ``stop`` is the default: the checkpoint keeps the epoch with the best
    held-out PGD accuracy anyway (Rice et al. 2020), which precedes the collapse, and after a collapse
    PGD accuracy rarely recovers (Wong et al. 2020), so the remaining epochs would cost time for
    weights that are not kept. ``rollback`` returns to the best epoch's weights (fresh momentum) and
    trains the remaining epochs of the schedule; ``continue`` only records it."""

    STOP = "stop"
    ROLLBACK = "rollback"
    CONTINUE = "continue"


def parse_on_overfit(value: object, what: str = "--on-overfit") -> OnOverfit:
    """``value`` as an :class:`OnOverfit`; anything else is one :class:`UserError` line naming ``what`` (the
    command's option, a study file's key)."""
    try:
        return OnOverfit(value)
    except ValueError:
        raise UserError(f"{what} must be one of {[o.value for o in OnOverfit]}, got {value!r}") from None


@dataclass(frozen=True)
class TrainDefaults:
    """What a training run uses for every hyperparameter it is not given (CPU scale: width 0.125)."""

    epochs: int = 30
    width: float = 0.125
    seed: int = 0
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Schedule = Schedule.ONECYCLE
    augment: bool = True
    threat_model: str = "standard"  # see robust_attn.threat_models (each threat model's own defaults there)
    # the held-out slice of the training split, for adversarial threat models (standard: none unless asked):
    # 10% of the training images, at most 500, drawn from the seed
    holdout_fraction: float = 0.1
    holdout_max: int = 500
    on_overfit: OnOverfit = OnOverfit.STOP


TRAIN_DEFAULTS = TrainDefaults()
