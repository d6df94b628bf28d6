"""The held-out slice of the training split, and the two failures of adversarial training it catches.

Adversarial training fails in two ways the training loss does not show (the test set must not be
used to see them: choosing weights on it would make every reported test number optimistic):

- **catastrophic overfitting** (Wong et al. 2020, typical of single-step training): within an epoch
  the model's PGD accuracy collapses towards 0 while its FGSM accuracy stays high or rises, because
  the loss surface has become so curved that one gradient step no longer finds the adversarial
  direction. :func:`catastrophic_overfitting` states the rule used here;
- **robust overfitting** (Rice et al. 2020): held-out robust accuracy peaks and then falls while
  training continues, so the weights kept are those of the epoch with the best held-out PGD
  accuracy (:func:`best_epoch`).

Every epoch the slice is measured clean, under FGSM and under PGD-10 (the sweep's ``fgsm`` and
``pgd`` attacks: step eps/4, random start, seeded so every epoch and a resumed run draw the same
start) at the training threat model's eps.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .attacks import create_attack
from .data import ImageSet
from .errors import UserError
from .train_defaults import TRAIN_DEFAULTS

__all__ = ["COLLAPSE_FRACTION", "HeldoutEpoch", "MIN_DROP", "MIN_GAP", "PGD_STEPS", "best_epoch",
           "catastrophic_overfitting", "evaluate_holdout", "holdout_size", "overfitting_rule", "split_holdout"]

PGD_STEPS = 10
# Catastrophic overfitting at an epoch: its held-out PGD accuracy fell below COLLAPSE_FRACTION of the
# best earlier epoch's and at least MIN_DROP below it, while its FGSM accuracy is at least MIN_GAP above
# its PGD accuracy (FGSM, the cheaper attack, no longer finds what PGD finds).
COLLAPSE_FRACTION = 0.5
MIN_DROP = 0.10
MIN_GAP = 0.20


@dataclass(frozen=True)
class HeldoutEpoch:
    """One epoch's accuracies (fractions) on the held-out slice, and its clean test accuracy."""

    epoch: int
    clean: float
    fgsm: float
    pgd: float
    test_clean: float

    def record(self) -> dict[str, Any]:
        return asdict(self)


def overfitting_rule() -> str:
    """The catastrophic-overfitting rule in words, as logs and checkpoints state it."""
    return (f"held-out PGD-{PGD_STEPS} accuracy below {COLLAPSE_FRACTION:g} x and at least {MIN_DROP:.0%} under "
            f"the best earlier epoch's, with FGSM accuracy at least {MIN_GAP:.0%} above PGD accuracy")


def holdout_size(n_train: int, requested: int | None, adversarial: bool) -> int:
    """How many training images are held out: ``requested``, or by default for adversarial training
    10% of them capped at 500 (standard training: none, as before, unless asked). At least two must
    remain to train on."""
    d = TRAIN_DEFAULTS
    if requested is None:
        return min(d.holdout_max, int(n_train * d.holdout_fraction)) if adversarial else 0
    if isinstance(requested, bool) or not isinstance(requested, int) or not 0 <= requested <= n_train - 2:
        raise UserError(f"--holdout must be an integer from 0 to {n_train - 2} (the training split has {n_train} "
                        f"images), got {requested!r}")
    return requested


def split_holdout(train: ImageSet, size: int, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """(images to train on, held-out slice): ``size`` images drawn by ``seed`` from their own generator,
    both parts kept in their original order. ``size`` 0 returns ``train`` itself, untouched."""
    if size == 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    held, kept = order[:size].sort().values, order[size:].sort().values
    return ImageSet(train.x[kept], train.y[kept]), ImageSet(train.x[held], train.y[held])


def evaluate_holdout(model: nn.Module, held: ImageSet, eps: float, seed: int, device: torch.device,
                     batch_size: int = 500) -> tuple[float, float, float]:
    """(clean, FGSM, PGD-10) accuracy of ``model`` on the held-out slice at ``eps``. The attacks run in
    eval mode, seeded, and leave the model and the global random state as they were."""
    fgsm = create_attack("fgsm", model, eps, seed=seed)
    pgd = create_attack("pgd", model, eps, seed=seed, steps=PGD_STEPS)
    was_training = model.training
    model.eval()
    correct = [0, 0, 0]
    for start in range(0, len(held), batch_size):
        x, y = held.float_batch(slice(start, start + batch_size))
        x, y = x.to(device), y.to(device)
        with torch.no_grad():
            correct[0] += int((model(x).argmax(1) == y).sum())
        for i, attack in ((1, fgsm), (2, pgd)):
            x_adv = attack(x, y)
            with torch.no_grad():
                correct[i] += int((model(x_adv).argmax(1) == y).sum())
    model.train(was_training)
    clean, by_fgsm, by_pgd = (c / len(held) for c in correct)
    return clean, by_fgsm, by_pgd


def catastrophic_overfitting(curve: Sequence[HeldoutEpoch]) -> bool:
    """Whether the last epoch of ``curve`` shows catastrophic overfitting (the rule of
    :func:`overfitting_rule`). Pure: the decision reads the numbers alone."""
    if len(curve) < 2:
        return False
    last, best = curve[-1], max(point.pgd for point in curve[:-1])
    collapsed = last.pgd < COLLAPSE_FRACTION * best and best - last.pgd >= MIN_DROP
    return collapsed and last.fgsm - last.pgd >= MIN_GAP


def best_epoch(curve: Sequence[HeldoutEpoch]) -> HeldoutEpoch:
    """The epoch whose weights are kept: the best held-out PGD accuracy (Rice et al. 2020); on a tie the
    later epoch, trained longer (clean accuracy usually still rises)."""
    if not curve:
        raise ValueError("no held-out epochs")
    best = curve[0]
    for point in curve[1:]:
        if point.pgd >= best.pgd or math.isnan(best.pgd):
            best = point
    return best
