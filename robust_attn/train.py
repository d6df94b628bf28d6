"""Training: SGD with momentum and weight decay, the paper's step schedule or one-cycle,
batched tensor augmentation (random crop with 4-pixel zero padding + horizontal flip), on clean
images (``threat_model="standard"``) or adversarially (PGD, TRADES, fast FGSM: see
:mod:`robust_attn.threat_models` and :mod:`robust_attn.threat_training`).

Adversarial training holds out a slice of the training split and measures it every epoch (clean,
FGSM, PGD-10: :mod:`robust_attn.holdout`); the checkpoint keeps the epoch with the best held-out PGD
accuracy and records the curves, the final epoch and any catastrophic overfitting detected.

Deterministic on CPU for a given seed and thread count: shuffling and augmentation draw from
one seeded CPU generator, each epoch's draws up front, so a GPU run sees the same batches; the uint8
training set lives on the training device and is gathered and augmented there, and the running loss
and accuracy are read (a GPU sync) only when progress is shown. A training state is saved after every
epoch so ``resume=True`` continues from the last finished epoch.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from . import __version__
from .checkpoints import save_checkpoint
from .data import ImageSet, Splits, image_set_sha256, load_dataset
from .devices import resolve_device
from .distributed import Ranks
from .errors import UserError, require_int
from .files import atomic_write_bytes
from .holdout import (HeldoutEpoch, PGD_STEPS, best_epoch, catastrophic_overfitting, evaluate_holdout, holdout_size,
                      overfitting_rule, split_holdout)
from .models import check_model_args, create_model
from .threat_models import Threat, ThreatModel, resolve_threat
from .threat_training import Crafter, check_input_gradients, make_crafter, training_loss
from .train_defaults import TRAIN_DEFAULTS, OnOverfit, Schedule, parse_on_overfit

__all__ = ["AugmentDraws", "EpochPlan", "EpochStats", "OnOverfit", "RunningNumbers", "Schedule", "TrainConfig",
           "augment_batch", "crop_flip", "draw_augmentation", "evaluate_accuracy", "load_batch", "plan_epoch",
           "progress_due", "train", "training_step"]

log = logging.getLogger(__name__)
D = TRAIN_DEFAULTS
PROGRESS_SECONDS = 0.2  # the shortest time between two on_batch calls


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``model_args``: the architecture's own options (a ResNet's ``{"depth": 56}``);
    those not given take the architecture's defaults. A given one also reads as an attribute
    (``cfg.depth``), as on the built model."""

    architecture: str
    dataset: str
    data_dir: str | None = None
    epochs: int = D.epochs
    width: float = D.width
    seed: int = D.seed
    batch_size: int = D.batch_size
    lr: float = D.lr
    momentum: float = D.momentum
    weight_decay: float = D.weight_decay
    schedule: Schedule = D.schedule
    augment: bool = D.augment
    device: str = "auto"
    download: bool = False
    model_args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # the training threat model (robust_attn.threat_models); None: the threat model's paper default
    threat_model: str = D.threat_model
    threat_eps: str | None = None  # '8/255' or '0.1'
    threat_steps: int | None = None
    threat_step_size: str | None = None
    trades_beta: float | None = None
    holdout: int | None = None  # held-out training images; None: 10% capped at 500 (adversarial), 0 (standard)
    on_overfit: OnOverfit = D.on_overfit

    def threat(self) -> Threat:
        """The resolved training threat model (a :class:`UserError` for bad options)."""
        return resolve_threat(self.threat_model, self.threat_eps, self.threat_steps, self.threat_step_size,
                              self.trades_beta)

    def __getattr__(self, name: str) -> Any:
        model_args = self.__dict__.get("model_args", {})
        if name in model_args:
            return model_args[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def validate(self) -> None:
        clash = sorted(set(self.model_args) & {f.name for f in fields(self)})
        if clash:  # the training record holds model arguments beside the fields
            raise UserError(f"{self.architecture}: model argument {clash[0]!r} has the name of a training setting")
        check_model_args(self.architecture, self.model_args)
        require_int("epochs", self.epochs, 1)
        require_int("batch_size", self.batch_size, 1)
        for name in ("width", "lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a positive number, got {value!r}")
        for name in ("momentum", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"{name} must be a non-negative number, got {value!r}")
        self.threat()
        if self.holdout is not None:
            require_int("--holdout", self.holdout, 0)
        parse_on_overfit(self.on_overfit)


class EpochStats(NamedTuple):
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    heldout: HeldoutEpoch | None = None  # with a held-out slice
    overfit: bool = False  # catastrophic overfitting detected at this epoch


@dataclass
class TrainingWatch:
    """What the held-out slice has shown so far; saved in the training state so a resumed run keeps it."""

    curve: list[HeldoutEpoch] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None  # the weights of best_epoch(curve) (adversarial training)
    overfit: list[dict[str, Any]] = field(default_factory=list)  # catastrophic overfitting: epoch and action
    stopped: bool = False  # stopped early by --on-overfit stop

    def state(self) -> dict[str, Any]:
        return {"curve": [p.record() for p in self.curve], "best_state": self.best_state,
                "overfit": list(self.overfit), "stopped": self.stopped}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrainingWatch:
        return cls([HeldoutEpoch(**p) for p in state["curve"]], state["best_state"], list(state["overfit"]),
                   bool(state["stopped"]))


class AugmentDraws(NamedTuple):
    """The random numbers of a batch's augmentation: crop offsets and flips, one of each per image."""

    dy: torch.Tensor  # crop row offsets in [0, 2 * pad]
    dx: torch.Tensor  # crop column offsets in [0, 2 * pad]
    flip: torch.Tensor  # bool: flip horizontally


def draw_augmentation(n: int, generator: torch.Generator, pad: int = 4) -> AugmentDraws:
    """``n`` images' crop offsets and flips, drawn on the CPU from ``generator`` in the order training
    always drew them, so a seed gives the same batches on every device."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    return AugmentDraws(dy, dx, torch.rand(n, generator=generator) < 0.5)


def crop_flip(x: torch.Tensor, draws: AugmentDraws, pad: int = 4) -> torch.Tensor:
    """The crops (zero padding ``pad``) and horizontal flips ``draws`` names, of a whole N x C x H x W batch
    at once on ``x``'s device (``draws`` must be there too): integer indexing, so exact on every device."""
    n, c, h, w = x.shape
    device = x.device
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (draws.dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # n x 1 x h x 1
    cols = (draws.dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # n x 1 x 1 x w
    batch = torch.arange(n, device=device)[:, None, None, None]
    chans = torch.arange(c, device=device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    return torch.where(draws.flip[:, None, None, None], out.flip(3), out)


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of a whole N x C x H x W batch at once."""
    draws = draw_augmentation(len(x), generator, pad)
    return crop_flip(x, AugmentDraws(*(d.to(x.device) for d in draws)), pad)


class EpochPlan(NamedTuple):
    """An epoch's shuffled order and augmentation draws (None: no augmentation), on the training device."""

    order: torch.Tensor
    draws: AugmentDraws | None


def plan_epoch(n: int, batch_size: int, augment: bool, generator: torch.Generator, device: torch.device) -> EpochPlan:
    """All of an epoch's random numbers, drawn up front from ``generator`` in the order and sizes the
    step-by-step loop drew them (the permutation, then each batch's crops and flips; a last batch of one
    image, which is skipped, draws none), so the batches and the generator's state after the epoch are
    what they always were; then one copy to ``device`` per epoch instead of one per step."""
    order = torch.randperm(n, generator=generator)
    draws = None
    if augment:
        sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
        parts = [draw_augmentation(size, generator) for size in sizes if size >= 2]
        draws = AugmentDraws(*(torch.cat(d).to(device) for d in zip(*parts))) if parts else None
    return EpochPlan(order.to(device), draws)


def load_batch(images: ImageSet, plan: EpochPlan, start: int, stop: int,
               ranks: Ranks) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``start:stop`` of the epoch's order as a float32 channels_last batch in [0, 1] and its
    labels, this rank's slice (``rank::world``) of the global batch, gathered and augmented where
    ``images`` (uint8) lives."""
    idx = plan.order[start:stop][ranks.rank::ranks.world]
    xb = images.x[idx]
    if plan.draws is not None:
        xb = crop_flip(xb, AugmentDraws(*(d[start:stop][ranks.rank::ranks.world] for d in plan.draws)))
    return xb.float().div_(255.0).contiguous(memory_format=torch.channels_last), images.y[idx]


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  threat: Threat, craft: Crafter | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch: craft its adversarial examples, the threat model's loss, backward,
    step. On CUDA both run under bf16 autocast: the attack then targets the function the step trains (as
    Wong et al.'s mixed-precision fast FGSM does), and crafting in fp32 made adversarial steps cost 10.8x
    (PGD-7) and 2.4x (fast FGSM) a standard step at width 1 on an H200, over the 1.1 x (K+1) targets.
    The images and their perturbations stay fp32 (autocast casts only inside the model), and CPU
    training is untouched. Returns (loss, logits), detached and left on the device: reading them is a
    GPU sync, which the caller does only when it shows them."""
    use_amp = x.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext():
        x_adv = craft(x, y) if craft is not None else None
        if x_adv is not None:
            loss, logits = training_loss(threat, model, x, x_adv, y)
        else:
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


class RunningNumbers:
    """An epoch's running training loss and accuracy, summed on the training device: adding a step waits
    for nothing, reading is one sync (float64 sums: the same numbers as summing Python floats)."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss x images, correct predictions
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.sums[0] += loss.double() * len(y)
        self.sums[1] += (logits.argmax(1) == y).sum()
        self.seen += len(y)

    def read(self) -> tuple[float, float]:
        """(mean loss, accuracy) so far; (0, 0) before any step."""
        total_loss, correct = self.sums.tolist()
        return total_loss / max(self.seen, 1), correct / max(self.seen, 1)


def progress_due(seconds: float = PROGRESS_SECONDS) -> Callable[[bool], bool]:
    """``due(last)``: whether a progress display should be drawn now, at most every ``seconds`` (the first
    call and ``last=True`` always), since reading the running numbers off a GPU waits for it."""
    previous = -math.inf

    def due(last: bool) -> bool:
        nonlocal previous
        now = time.perf_counter()
        if last or now - previous >= seconds:
            previous = now
            return True
        return False

    return due


@torch.inference_mode()
def evaluate_accuracy(model: nn.Module, images: ImageSet, batch_size: int = 500, device: torch.device | None = None) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``images``."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x, y = images.float_batch(slice(start, start + batch_size))
        correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    model.train(was_training)
    return correct / len(images)


def _make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    if cfg.schedule is Schedule.ONECYCLE:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=25 * steps_per_epoch, gamma=0.5)


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    resume: bool = False,
    on_batch: Callable[[int, int, float, float], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    splits: Splits | None = None,
    sync_batchnorm: bool = False,
) -> Path:
    """Train ``cfg.architecture`` and write a checkpoint to ``out``; return its path.

    ``on_batch(done, total, loss, acc)`` and ``on_epoch(stats)`` let a caller draw progress.
    Under torchrun (an initialised process group) the model is wrapped in DistributedDataParallel:
    every rank draws the same shuffled, augmented global batch and trains on its slice of it
    (``rank::world``), optionally with SyncBatchNorm; rank 0 alone writes files.
    """
    cfg = TrainConfig(**{**vars(cfg), "schedule": Schedule(cfg.schedule), "on_overfit": parse_on_overfit(cfg.on_overfit)})
    cfg.validate()
    threat = cfg.threat()
    out = Path(out)
    device = resolve_device(cfg.device)
    if sync_batchnorm and device.type != "cuda":
        raise UserError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm works with GPU modules only)")
    splits = splits or load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download)
    if splits.train is None:
        raise UserError(f"dataset {cfg.dataset!r} is evaluation-only; train on {splits.cfg.name.removesuffix('-embedded')}")
    dcfg = splits.cfg
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.architecture, width=cfg.width, num_classes=dcfg.num_classes,
                         in_channels=dcfg.in_channels, mean=dcfg.mean, std=dcfg.std, **cfg.model_args)
    # channels_last: about 1.25x faster training on CPU (measured at width 0.125), same function.
    model = model.to(device, memory_format=torch.channels_last)
    ranks = Ranks.current()
    net = model  # what is saved; ``model`` may become its DDP wrapper
    if ranks.world > 1:
        if sync_batchnorm:
            net = model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                nesterov=False)
    # standard training without --holdout: size 0, the training split itself, as before
    train_set, held = split_holdout(splits.train, holdout_size(len(splits.train), cfg.holdout, threat.adversarial),
                                    cfg.seed)
    # the held-out attacks' eps: the threat model's, or for standard training PGD training's default
    watch_eps = threat.eps if threat.adversarial else resolve_threat(ThreatModel.PGD).eps
    craft = None
    if threat.adversarial:
        check_input_gradients(net, tuple(train_set.x.shape[1:]), device, cfg.architecture)
        craft = make_crafter(threat, net)
    watch = TrainingWatch()
    n = len(train_set)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    scheduler = _make_scheduler(cfg, optimizer, steps_per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed)
    start_epoch, seconds = 0, 0.0
    state_path = _state_path(out)
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state["config"] != _config_record(cfg):
            raise UserError(f"{state_path} was written by a different training configuration; remove it or drop --resume")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, seconds = state["epoch"], state["seconds"]
        watch = TrainingWatch.from_state(state["watch"]) if "watch" in state else watch
        log.info("resuming %s from epoch %d", out, start_epoch)
    # the uint8 training set lives on the training device (on CPU: the same tensors, no copy)
    images = ImageSet(train_set.x.to(device), train_set.y.to(device))
    test_accuracy = float("nan")
    for epoch in range(start_epoch, cfg.epochs):
        if watch.stopped:
            break
        t0 = time.perf_counter()
        model.train()
        plan = plan_epoch(n, cfg.batch_size, cfg.augment, generator, device)
        running = RunningNumbers(device)  # read (a GPU sync) only when progress is shown and at the epoch end
        due = progress_due()
        for step in range(steps_per_epoch):
            start, stop = step * cfg.batch_size, min((step + 1) * cfg.batch_size, n)
            if stop - start < 2:  # BatchNorm needs more than one example
                continue
            x, y = load_batch(images, plan, start, stop, ranks)
            loss, logits = training_step(model, optimizer, x, y, threat, craft)
            scheduler.step()
            running.add(loss, logits, y)
            if on_batch and ranks.is_writer and due(n - stop < 2):  # the epoch's last step that runs
                on_batch(step + 1, steps_per_epoch, *running.read())
        test_accuracy = evaluate_accuracy(net, splits.test, device=device)
        point, overfit = None, False
        if held is not None:
            point = HeldoutEpoch(epoch + 1, *evaluate_holdout(net, held, watch_eps, cfg.seed, device), test_accuracy)
            overfit = _watch_epoch(watch, point, net, optimizer, cfg, threat)
        seconds += time.perf_counter() - t0
        stats = EpochStats(epoch + 1, cfg.epochs, *running.read(), test_accuracy, point, overfit)
        log.info("epoch %d/%d loss %.4f train acc %.4f test acc %.4f", *stats[:5])
        if on_epoch and ranks.is_writer:
            on_epoch(stats)
        if ranks.is_writer:
            _save_state(state_path, cfg, net, optimizer, scheduler, generator, watch, epoch + 1, seconds)
    final = {"epoch": watch.curve[-1].epoch if watch.curve else cfg.epochs, "test_clean": test_accuracy}
    kept = None
    if threat.adversarial and watch.curve:  # robust overfitting: keep the best held-out PGD epoch (Rice et al.)
        kept = best_epoch(watch.curve)
        net.load_state_dict(watch.best_state)
        test_accuracy = kept.test_clean
        final = watch.curve[-1].record()
    if math.isnan(test_accuracy):  # resumed a finished run: measure again
        test_accuracy = evaluate_accuracy(net, splits.test, device=device)
    if not ranks.is_writer:
        return out
    net = net.cpu().eval()
    identity: dict[str, Any] = {"training_threat_model": threat.name}
    if threat.adversarial:
        identity["training_threat"] = threat.record()
    if held is not None:
        identity.update(_holdout_record(held, watch, watch_eps, cfg, threat, kept, final))
    path = save_checkpoint(net, out, {
        "dataset": cfg.dataset,
        "clean_accuracy": test_accuracy,
        "n_test": len(splits.test),
        "test_data_sha256": image_set_sha256(splits.test),  # the images clean_accuracy was measured on
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "train_config": _config_record(cfg),
        "training_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "processes": ranks.world,
        "version": __version__,
        **identity,
    })
    state_path.unlink(missing_ok=True)
    return path


def _watch_epoch(watch: TrainingWatch, point: HeldoutEpoch, net: nn.Module, optimizer: torch.optim.Optimizer,
                 cfg: TrainConfig, threat: Threat) -> bool:
    """Record an epoch's held-out numbers; for adversarial training keep the best epoch's weights and act
    on catastrophic overfitting (``cfg.on_overfit``). True when it was detected at this epoch."""
    watch.curve.append(point)
    log.info("held-out epoch %d: clean %.4f fgsm %.4f pgd-%d %.4f", point.epoch, point.clean, point.fgsm, PGD_STEPS,
             point.pgd)
    if not threat.adversarial:
        return False
    if best_epoch(watch.curve) is point:
        watch.best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    if not catastrophic_overfitting(watch.curve):
        return False
    action = cfg.on_overfit  # train() made it an OnOverfit
    watch.overfit.append({"epoch": point.epoch, "action": action.value})
    log.warning("catastrophic overfitting at epoch %d (%s); --on-overfit %s", point.epoch, overfitting_rule(),
                action.value)
    if action is OnOverfit.STOP:
        watch.stopped = True
    elif action is OnOverfit.ROLLBACK:  # the best epoch's weights, momentum started afresh
        net.load_state_dict(watch.best_state)
        optimizer.state.clear()
    return True


def _holdout_record(held: ImageSet, watch: TrainingWatch, eps: float, cfg: TrainConfig, threat: Threat,
                    kept: HeldoutEpoch | None, final: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint metadata of the held-out slice: how it was measured, the per-epoch curves, the
    epoch kept and the final epoch, and catastrophic overfitting (rule and events)."""
    record: dict[str, Any] = {
        "holdout": {"size": len(held), "seed": cfg.seed, "eps": eps, "attacks": ["fgsm", f"pgd-{PGD_STEPS}"],
                    "kept": "best held-out pgd accuracy" if kept else "final epoch"},
        "heldout_curves": [p.record() for p in watch.curve],
        "epochs_trained": watch.curve[-1].epoch if watch.curve else 0,
    }
    if threat.adversarial:
        record["kept_epoch"] = kept.record() if kept else None
        record["final_epoch"] = final
        record["catastrophic_overfitting"] = {"rule": overfitting_rule(), "detected": list(watch.overfit),
                                              "on_overfit": cfg.on_overfit.value}
    return record


def _config_record(cfg: TrainConfig) -> dict:
    """The recorded training configuration: its fields but where the data and the device were, and the
    model arguments given (unset ones left out) flat beside them, as 0.3 recorded ``depth``, so that
    studies match checkpoints of either version and records without model arguments keep their keys."""
    record = {k: (v.value if isinstance(v, Enum) else v) for k, v in vars(cfg).items()
              if k not in ("data_dir", "device", "model_args", *THREAT_FIELDS)}
    record.update({k: v for k, v in cfg.model_args.items() if v is not None})
    record.update(threat_record(cfg))
    return record


# TrainConfig fields of the training threat model: recorded resolved and only for adversarial training (and
# ``holdout`` when given), so a standard run records exactly the keys it recorded before threat models existed.
THREAT_FIELDS = ("threat_model", "threat_eps", "threat_steps", "threat_step_size", "trades_beta", "holdout",
                 "on_overfit")


def threat_record(cfg: TrainConfig) -> dict[str, Any]:
    """The threat-model part of a recorded training configuration, every default resolved (``{}`` for
    standard training without a held-out slice)."""
    threat = cfg.threat()
    record: dict[str, Any] = {}
    if threat.adversarial:
        record = {"threat_model": threat.name, "threat_eps": threat.eps_label, "threat_steps": threat.steps,
                  "threat_step_size": threat.step_size_label, "trades_beta": threat.beta,
                  "on_overfit": OnOverfit(cfg.on_overfit).value}
    if threat.adversarial or cfg.holdout is not None:
        record["holdout"] = cfg.holdout
    return record


def _save_state(path: Path, cfg, model, optimizer, scheduler, generator, watch: TrainingWatch, epoch: int,
                seconds: float) -> None:
    buf = io.BytesIO()
    torch.save({
        "config": _config_record(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "watch": watch.state(),
        "epoch": epoch,
        "seconds": seconds,
    }, buf)
    atomic_write_bytes(path, buf.getvalue())
