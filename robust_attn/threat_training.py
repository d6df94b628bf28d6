"""Adversarial training steps: the inner maximisation (a torchattacks attack crafting each batch's
adversarial examples) and the outer loss the optimiser minimises, per training threat model (see
:mod:`robust_attn.threat_models` for the papers and defaults).

**BatchNorm while crafting: eval mode** (torchattacks' default: its attacks switch the model to eval
mode while attacking and back). Why: (1) the running statistics then move once per training step, on
the batch the optimiser trains on, as in standard training, instead of once more per attack step on
half-crafted images; (2) each example's perturbation depends on that example alone, not on which
other images share its batch (batch statistics couple them); (3) the attack maximises the loss of the
function that is evaluated and shipped, the eval-mode model. TRADES' reference code crafts in eval
mode too; Madry's and Wong's reference code craft in train mode, so numbers can differ slightly from
theirs. The outer loss is always computed in train mode.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torchattacks
from torch import nn

from .errors import UserError
from .threat_models import Threat, ThreatModel

__all__ = ["Crafter", "check_input_gradients", "make_crafter", "training_loss"]

Crafter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_crafter(threat: Threat, model: nn.Module) -> Crafter:
    """``craft(x, y) -> x_adv`` for ``threat`` on ``model`` (the bare network, not a DDP wrapper: each
    rank crafts its own slice). Random starts draw from torch's global generator, which the training
    state saves, so a resumed run crafts the same examples."""
    kind = threat.cfg.name
    if kind is ThreatModel.PGD:
        attack = torchattacks.PGD(model, eps=threat.eps, alpha=threat.step_size, steps=threat.steps, random_start=True)
    elif kind is ThreatModel.TRADES:
        attack = torchattacks.TPGD(model, eps=threat.eps, alpha=threat.step_size, steps=threat.steps)
    elif kind is ThreatModel.FAST_FGSM:
        attack = torchattacks.FFGSM(model, eps=threat.eps, alpha=threat.step_size)
    else:
        raise ValueError(f"threat model {kind.value!r} crafts no examples")

    def craft(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return attack(x, y).detach()

    return craft


def training_loss(threat: Threat, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits whose accuracy the progress display shows) of one adversarial training step.

    PGD and fast FGSM: cross-entropy on the adversarial examples. TRADES: cross-entropy on the clean
    images plus beta x KL(softmax(f(x)) || softmax(f(x_adv))) averaged over the batch, the clean and
    adversarial images in separate forward passes as in the paper's code."""
    if threat.cfg.name is ThreatModel.TRADES:
        clean = model(x)
        adv = model(x_adv)
        kl = nn.functional.kl_div(nn.functional.log_softmax(adv.float(), dim=1),
                                  nn.functional.softmax(clean.float(), dim=1), reduction="batchmean")
        return nn.functional.cross_entropy(clean, y) + threat.beta * kl, clean
    logits = model(x_adv)
    return nn.functional.cross_entropy(logits, y), logits


def check_input_gradients(model: nn.Module, image_shape: tuple[int, ...], device: torch.device, name: str) -> None:
    """Refuse adversarial training of a model whose logits give its input no usable gradient (a
    non-differentiable step inside, a detached input): every inner attack would craft noise and the
    run would train for nothing. One forward and backward pass on two random images, drawn from their
    own generator so the training's random stream is untouched."""
    x = torch.rand(2, *image_shape, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(x)
            grad = torch.autograd.grad(out[:, 0].sum(), x, allow_unused=True)[0] if out.requires_grad else None
    finally:
        model.train(was_training)
    if grad is None or not torch.isfinite(grad).all() or not grad.abs().sum() > 0:
        raise UserError(f"{name} gives its input no gradient; adversarial training needs one (use --threat standard)")
