"""The training pipeline (issue 23, part 6): data on the training device, each epoch's random draws made
up front, running numbers read only when shown, and CPU training bit-for-bit what the step-by-step loop
trained before (compared with an independent copy of that loop, not with train() itself).

Fast by construction: width 0.0625, 64 synthetic training images, 2 epochs, one thread."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import robust_attn.train as train_mod
from robust_attn.checkpoints import load_checkpoint
from robust_attn.data import ImageSet, Splits
from robust_attn.distributed import Ranks
from robust_attn.models import create_model
from robust_attn.threat_training import make_crafter, training_loss
from robust_attn.train import (AugmentDraws, EpochStats, TrainConfig, augment_batch, crop_flip, draw_augmentation, load_batch,
                               plan_epoch, progress_due, train)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # bit-for-bit comparisons at one thread


def old_augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """augment_batch as it was before the pipeline moved to the device (a frozen copy: the reference)."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def old_training(cfg: TrainConfig, splits: Splits) -> tuple[dict[str, torch.Tensor], list[tuple[float, float]]]:
    """The step-by-step CPU loop train() ran before (one generator draw after another, per-step indexing,
    float()/int() of the running numbers every step): its weights and per-epoch (loss, accuracy)."""
    threat = cfg.threat()
    torch.manual_seed(cfg.seed)
    d = splits.cfg
    model = create_model(cfg.architecture, width=cfg.width, num_classes=d.num_classes, in_channels=d.in_channels,
                         mean=d.mean, std=d.std).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    craft = make_crafter(threat, model) if threat.adversarial else None
    n = len(splits.train)
    steps = math.ceil(n / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    stats = []
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=generator)
        total_loss, total_correct, seen = 0.0, 0, 0
        for step in range(steps):
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            x = old_augment(splits.train.x[idx], generator).float().div_(255.0).contiguous(
                memory_format=torch.channels_last)
            y = splits.train.y[idx]
            if craft is not None:
                loss, logits = training_loss(threat, model, x, craft(x, y), y)
            else:
                logits = model(x)
                loss = nn.CrossEntropyLoss()(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(y)
            total_correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        stats.append((total_loss / seen, total_correct / seen))
    return model.state_dict(), stats


@pytest.mark.parametrize("threat", ["standard", "fast-fgsm"])
def test_cpu_training_is_bit_for_bit_the_step_by_step_loop(small, tmp_path, threat):
    """The seed's weights and running numbers do not change with the pipeline (so the shipped checkpoints'
    manifest commands still reproduce them). Batch 21 on 64 images: the last step has one image and is
    skipped, drawing nothing."""
    cfg = TrainConfig("vgg", "synthetic", epochs=2, width=0.0625, seed=7, batch_size=21, threat_model=threat,
                      holdout=0 if threat != "standard" else None, device="cpu")
    seen: list = []
    path = train(cfg, tmp_path / "m.pt", splits=small, on_epoch=seen.append)
    want, want_stats = old_training(cfg, small)
    got = load_checkpoint(path).model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert [(s.train_loss, s.train_accuracy) for s in seen] == want_stats


def test_an_epoch_plan_draws_what_the_step_by_step_loop_drew():
    """Same numbers, and the generator left in the same state (what a resumed run continues from)."""
    n, batch = 50, 16  # batches 16, 16, 16, 2
    a, b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    plan = plan_epoch(n, batch, True, a, torch.device("cpu"))
    perm = torch.randperm(n, generator=b)
    assert torch.equal(plan.order, perm)
    for start in range(0, n, batch):
        draws = draw_augmentation(min(batch, n - start), b)
        for got, want in zip(plan.draws, draws):
            assert torch.equal(got[start:start + batch], want)
    assert torch.equal(a.get_state(), b.get_state())
    assert plan_epoch(n, batch, False, torch.Generator().manual_seed(4), torch.device("cpu")).draws is None


def test_a_last_batch_of_one_draws_nothing():
    a, b = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    plan = plan_epoch(33, 16, True, a, torch.device("cpu"))  # 16, 16, 1: the 1 is skipped
    assert len(plan.draws.dy) == 32
    torch.randperm(33, generator=b)
    draw_augmentation(16, b), draw_augmentation(16, b)
    assert torch.equal(a.get_state(), b.get_state())


def test_a_rank_gets_its_slice_of_the_augmented_global_batch(small):
    plan = plan_epoch(len(small.train), 32, True, torch.Generator().manual_seed(0), torch.device("cpu"))
    whole, labels = load_batch(small.train, plan, 0, 32, Ranks(0, 1))
    for rank in range(3):
        x, y = load_batch(small.train, plan, 0, 32, Ranks(rank, 3))
        assert torch.equal(x, whole[rank::3]) and torch.equal(y, labels[rank::3])
    assert whole.dtype == torch.float32 and whole.is_contiguous(memory_format=torch.channels_last)
    assert 0 <= whole.min() and whole.max() <= 1


def test_augment_batch_is_the_frozen_reference():
    x = torch.randint(0, 256, (9, 3, 12, 12), dtype=torch.uint8)
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(5)),
                       old_augment(x, torch.Generator().manual_seed(5)))
    zeros = torch.zeros(9, dtype=torch.long)
    flips = AugmentDraws(zeros, zeros, torch.ones(9, dtype=torch.bool))
    assert torch.equal(crop_flip(x, flips, pad=0), x.flip(3))


def test_progress_is_drawn_at_most_every_interval_and_always_at_the_end(monkeypatch):
    clock = iter([0.0, 0.1, 0.25, 0.3, 0.31])
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: next(clock))
    due = progress_due(0.2)
    assert [due(False), due(False), due(False), due(False), due(True)] == [True, False, True, False, True]


@pytest.mark.parametrize("batch_size", [16, 21], ids=["whole-batches", "last-batch-of-one-skipped"])
def test_on_batch_ends_each_epoch_on_the_epochs_running_numbers(small, tmp_path, batch_size):
    events: list = []
    cfg = TrainConfig("vgg", "synthetic", epochs=2, width=0.0625, seed=3, batch_size=batch_size, device="cpu")
    train(cfg, tmp_path / "m.pt", splits=small, on_batch=lambda *a: events.append(a), on_epoch=events.append)
    epochs = [i for i, e in enumerate(events) if isinstance(e, EpochStats)]
    assert len(epochs) == 2 and not any(isinstance(events[i - 1], EpochStats) for i in epochs)
    # the call just before each epoch's end is that epoch's last step that ran, with the epoch's numbers
    last_run = len(small.train) // batch_size  # 4 of 4; 3 of 4 when the fourth batch holds one image
    assert [events[i - 1][:2] for i in epochs] == [(last_run, 4)] * 2
    assert [events[i - 1][2:] for i in epochs] == [(events[i].train_loss, events[i].train_accuracy) for i in epochs]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_are_the_cpu_batches(small):
    """The device pipeline gathers and augments on the GPU the very images the CPU gets for a seed (the
    uint8 pixels; the float conversion may round a last bit differently on another device)."""
    cpu = plan_epoch(len(small.train), 32, True, torch.Generator().manual_seed(1), torch.device("cpu"))
    gpu = plan_epoch(len(small.train), 32, True, torch.Generator().manual_seed(1), torch.device("cuda"))
    images = ImageSet(small.train.x.cuda(), small.train.y.cuda())
    assert gpu.order.is_cuda and gpu.draws.dy.is_cuda
    for start in (0, 32):
        x, y = load_batch(small.train, cpu, start, start + 32, Ranks(0, 1))
        gx, gy = load_batch(images, gpu, start, start + 32, Ranks(0, 1))
        assert gx.is_cuda and torch.equal(gy.cpu(), y)
        assert torch.equal((gx.cpu() * 255).round(), (x * 255).round())
        assert torch.allclose(gx.cpu(), x, rtol=1e-6, atol=0)
