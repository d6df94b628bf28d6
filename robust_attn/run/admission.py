"""The checks RobustBench applies before it admits a model (Croce et al., "RobustBench: a standardized
adversarial robustness benchmark", NeurIPS 2021 Datasets and Benchmarks, section 3.1: no randomness
at inference, non-zero gradients with respect to the input, no optimisation loop in the forward
pass; and the clean accuracy checked against the submitted one). A run makes them on every model
before any attack, because each catches an evaluation that would otherwise report a wrong number
without any error:

- a random forward pass (dropout left on, input noise, a stochastic defence) makes plain gradient
  attacks follow one random draw of the gradient: their accuracy is an upper bound, and only an
  attack with expectation over transformation (EOT) estimates the robust accuracy;
- zero or non-finite input gradients leave gradient attacks nothing to follow (gradient masking);
- a clean accuracy that differs from the one recorded for the same images means the model does not
  see what it was trained on: wrong normalisation, channel order, resolution or labels.

Each check gives an :class:`~robust_attn.results.AdmissionRow`; the sweep logs one line per check and
keeps them in ``admission.csv``, which the report's sanity section reads.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..attacks import eval_mode
from ..data import get_dataset_cfg
from ..errors import UserError
from ..results import AdmissionCheck, AdmissionRow, CheckStatus
from .inputs import EvalData

# Two passes of a deterministic model agree to float rounding; a random one differs by orders more.
DETERMINISM_TOLERANCE = 1e-4  # largest |logit difference|, relative to 1 + the largest |logit|
GRADIENT_LIMIT = 0.10  # share of points with an all-zero or non-finite input gradient (the report's limit too)
CLEAN_ACCURACY_TOLERANCE = 0.01  # accuracy points: other hardware flips a few borderline images, never more


def check_deterministic(model: nn.Module, x: torch.Tensor, batch_size: int) -> tuple[CheckStatus, float, str]:
    """Two forward passes (eval mode, no gradient) of the same first batch: (status, largest logit
    difference relative to 1 + the largest |logit|, sentence)."""
    xb = x[:batch_size]
    with torch.inference_mode(), eval_mode(model):
        a, b = model(xb).float(), model(xb).float()
    if a.shape != b.shape:
        raise UserError(f"the model's two passes over the same {len(xb)} images returned shapes {tuple(a.shape)} "
                        f"and {tuple(b.shape)}")
    difference = float((a - b).abs().max()) / (1.0 + float(a.abs().max())) if a.numel() else 0.0
    if not math.isfinite(difference):
        difference = math.inf
    changed = int((a.argmax(1) != b.argmax(1)).sum())
    what = f"the same {len(xb)} images twice"
    if difference <= DETERMINISM_TOLERANCE:
        return CheckStatus.PASS, difference, f"{what}: the same logits (largest difference {difference:.2g} of scale)"
    return CheckStatus.FAIL, difference, (
        f"{what}: logits differ by up to {difference:.3g} of their scale and {changed} predictions change, so the "
        "forward pass is random (dropout left on, input noise, a stochastic defence): gradient attacks without "
        "expectation over transformation give an upper bound on its robust accuracy (run eot-pgd or autoattack-rand, "
        "or apgd-ce/apgd-dlr with --attack-arg eot_iter=20)")


def dead_gradients(grad: torch.Tensor) -> torch.Tensor:
    """Per point (the first dimension): is its input gradient all zero or not finite anywhere? The masking
    symptom of a saturated softmax or a non-differentiable layer; the sweep's clean pass counts it too."""
    flat = grad.flatten(1)
    return ~(flat != 0).any(1) | ~torch.isfinite(flat).all(1)


def check_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   zero_fraction: float | None = None) -> tuple[CheckStatus, float, str]:
    """The share of points whose cross-entropy gradient with respect to the input is all zero or not
    finite: ``zero_fraction`` where the clean pass measured it over the clean-correct points (the sweep's
    gradient diagnostic), else measured here on the first batch."""
    if zero_fraction is None or not math.isfinite(zero_fraction):
        xb, yb = x[:batch_size].clone().requires_grad_(True), y[:batch_size]
        with torch.enable_grad(), eval_mode(model):
            logits = model(xb)
            if not logits.requires_grad:
                grad = None
            else:
                (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits.float(), yb), xb, allow_unused=True)
        if grad is None:
            zero_fraction, where = 1.0, f"the first {len(xb)} points (the logits do not depend on the input)"
        else:
            zero_fraction = float(dead_gradients(grad).float().mean())
            where = f"the first {len(xb)} points"
    else:
        where = "the clean-correct points"
    text = f"{100 * zero_fraction:.1f}% of {where} have an all-zero or non-finite input gradient (limit {GRADIENT_LIMIT:.0%})"
    if zero_fraction <= GRADIENT_LIMIT:
        return CheckStatus.PASS, zero_fraction, text
    return CheckStatus.FAIL, zero_fraction, (
        text + ": gradient attacks have nothing to follow there (a non-differentiable layer, a saturated softmax), "
        "so their accuracy overstates robustness; run attacks that need no gradient (square) or none of the CE (apgd-dlr)")


def recorded_clean_accuracy(metadata: Mapping[str, Any], ev: EvalData) -> tuple[float | None, str]:
    """The clean accuracy a checkpoint records for exactly these images, or None with the reason.

    A checkpoint that records the hash of its test images (``test_data_sha256``) is compared when the
    hashes agree. One written before it recorded them is compared when the images are its dataset's
    whole test split: the dataset itself or its embedded evaluation set (the first images of that split),
    with as many images as the checkpoint's ``n_test``."""
    recorded = metadata.get("clean_accuracy")
    if not isinstance(recorded, (int, float)) or isinstance(recorded, bool) or not math.isfinite(recorded):
        return None, "the model records no clean accuracy"
    n_test, trained_on = metadata.get("n_test"), metadata.get("dataset")
    theirs = f"{n_test:,} {trained_on} test images" if isinstance(n_test, int) else f"{trained_on} test images"
    sha = metadata.get("test_data_sha256")
    if isinstance(sha, str) and sha:
        return (float(recorded), "") if sha == ev.sha256 else (
            None, f"the checkpoint's {100 * recorded:.1f}% was measured on other images ({theirs})")
    try:
        same_split = {str(trained_on), str(get_dataset_cfg(str(trained_on)).evaluation_set)}
    except UserError:
        same_split = {str(trained_on)}
    if ev.dataset in same_split and n_test == len(ev.images):
        return float(recorded), ""
    return None, f"the checkpoint's {100 * recorded:.1f}% was measured on {theirs}, not these {len(ev.images):,} {ev.dataset} images"


def check_clean_accuracy(metadata: Mapping[str, Any], ev: EvalData, clean_correct: torch.Tensor
                         ) -> tuple[CheckStatus, float, float, str]:
    """(status, measured, recorded or NaN, sentence): the clean accuracy on the evaluation images against
    the one the checkpoint records for the same images."""
    measured = float(clean_correct.double().mean())
    recorded, why_not = recorded_clean_accuracy(metadata, ev)
    here = f"{100 * measured:.1f}% on these {len(ev.images):,} images"
    if recorded is None:
        return CheckStatus.NOT_TESTED, measured, math.nan, f"{here}; {why_not}"
    text = f"{here}; the checkpoint records {100 * recorded:.1f}% on the same images"
    if abs(measured - recorded) <= CLEAN_ACCURACY_TOLERANCE + 1e-12:
        return CheckStatus.PASS, measured, recorded, text
    return CheckStatus.FAIL, measured, recorded, (
        f"{text}: more than {100 * CLEAN_ACCURACY_TOLERANCE:g} point apart, so the model does not see what it was "
        "trained on (wrong normalisation, channel order or resolution, or shuffled labels)")


def admit(name: str, sha256: str, metadata: Mapping[str, Any], ev: EvalData, model: nn.Module, x: torch.Tensor,
          y: torch.Tensor, clean_pred: torch.Tensor, batch_size: int,
          zero_fraction: float | None = None) -> list[AdmissionRow]:
    """The three admission checks of one model on its evaluation images (``x``, ``y`` on the model's
    device, ``clean_pred`` the clean pass's predictions), in the order a report lists them."""
    def row(check: AdmissionCheck, status: CheckStatus, measured: float, expected: float, detail: str) -> AdmissionRow:
        return AdmissionRow(name, sha256, ev.dataset, ev.sha256, len(ev.images), check.value, status.value,
                            measured, expected, detail, __version__)

    status, difference, text = check_deterministic(model, x, batch_size)
    rows = [row(AdmissionCheck.DETERMINISTIC, status, difference, DETERMINISM_TOLERANCE, text)]
    status, fraction, text = check_gradient(model, x, y, batch_size, zero_fraction)
    rows.append(row(AdmissionCheck.GRADIENT, status, fraction, GRADIENT_LIMIT, text))
    status, measured, recorded, text = check_clean_accuracy(metadata, ev, clean_pred.cpu() == y.cpu())
    rows.append(row(AdmissionCheck.CLEAN_ACCURACY, status, measured, recorded, text))
    return rows
