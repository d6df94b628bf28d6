"""The training recipe's defaults, declared once: the library's :class:`~robust_attn.train.TrainConfig`,
the ``train`` command's options and study files' ``[train]`` table all read them from here.

It imports nothing heavy (no torch), so the command line can show these defaults in ``--help``
without paying for the training code.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Schedule(StrEnum):
    ONECYCLE = "onecycle"
    STEP = "step"  # the paper: lr x 0.5 every 25 epochs


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


TRAIN_DEFAULTS = TrainDefaults()
