"""``robust-attn train``: train one architecture and write a checkpoint carrying its metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError
from ..threat_models import THREAT_MODELS
from ..train_defaults import TRAIN_DEFAULTS as D
from .application import app
from .options import BatchSize, DataDir, Depth, Device, ModelArgs, Seed, Threads, Width, command_line, model_arg_text, set_threads

# "standard (clean images), pgd (Madry et al. 2018), ...": the registry's names and papers
THREAT_HELP = ", ".join(f"{name.value} ({cfg.cite})" for name, cfg in THREAT_MODELS.items())


def _paper_defaults(attr: str) -> str:
    """'pgd 7, trades 10, fast-fgsm 1': each adversarial threat model's default for ``attr``, from the registry."""
    return ", ".join(f"{name.value} {getattr(cfg, attr):g}" if isinstance(getattr(cfg, attr), float)
                     else f"{name.value} {getattr(cfg, attr)}"
                     for name, cfg in THREAT_MODELS.items() if cfg.adversarial and getattr(cfg, attr) not in (None, ""))


@app.command("train")
def train_cmd(
    model: Annotated[str, typer.Argument(help="Architecture name (see `robust-attn models`).")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")],
    dataset: Annotated[str, typer.Option("--dataset")] = "cifar10-subset",
    data_dir: DataDir = None,
    epochs: Annotated[int, typer.Option("--epochs")] = D.epochs,
    width: Width = D.width,
    model_arg: ModelArgs = None,
    depth: Depth = None,
    seed: Seed = D.seed,
    batch_size: BatchSize = D.batch_size,
    lr: Annotated[float, typer.Option("--lr", help="Peak (one-cycle) or initial (step) learning rate.")] = D.lr,
    schedule: Annotated[str, typer.Option("--schedule", help="onecycle or step (paper: x0.5 every 25 epochs).")] = D.schedule.value,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = D.weight_decay,
    threads: Threads = None,
    device: Device = "auto",
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the dataset.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last finished epoch.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing checkpoint at --out.")] = False,
    manifest: Annotated[bool, typer.Option("--manifest", help="Record the checkpoint in manifest.json beside it.")] = False,
    sync_bn: Annotated[bool, typer.Option("--sync-bn", help="Under torchrun: synchronise BatchNorm statistics across ranks.")] = False,
    threat: Annotated[str, typer.Option("--threat", help=f"Training threat model: {THREAT_HELP}.")] = D.threat_model,
    threat_eps: Annotated[Optional[str], typer.Option(
        "--threat-eps", help=f"Linf budget of the training attack, e.g. 8/255 or 0.1 (default: {_paper_defaults('eps')}).")] = None,
    threat_steps: Annotated[Optional[int], typer.Option(
        "--threat-steps", help=f"Attack steps per batch (default: {_paper_defaults('steps')}).")] = None,
    threat_step_size: Annotated[Optional[str], typer.Option(
        "--threat-step-size", help=f"Attack step size, e.g. 2/255 (default: {_paper_defaults('step_size')} at 8/255, scaled with --threat-eps).")] = None,
    trades_beta: Annotated[Optional[float], typer.Option(
        "--trades-beta", help=f"TRADES' weight of the KL term (default: {_paper_defaults('beta')}).")] = None,
    holdout: Annotated[Optional[int], typer.Option(
        "--holdout", help=f"Training images held out and measured each epoch (clean, FGSM, PGD-10) (default: adversarial "
                          f"training {D.holdout_fraction:.0%} of them, at most {D.holdout_max}; standard none).")] = None,
    on_overfit: Annotated[str, typer.Option(
        "--on-overfit", help="On catastrophic overfitting: stop (keep the best held-out epoch), rollback (to it, "
                             "and train on) or continue.")] = D.on_overfit.value,
) -> None:
    """Train MODEL and write a checkpoint carrying its metadata.

    Under `torchrun --nproc-per-node N -m robust_attn train ...` training uses DistributedDataParallel
    (gloo on CPU, nccl on GPU); rank 0 writes the checkpoint.

    `--threat pgd|trades|fast-fgsm` trains adversarially (Madry 2018, Zhang 2019, Wong 2020) and keeps the
    epoch with the best PGD accuracy on a held-out slice of the training images.
    """
    from ..distributed import init_from_env, local_device, shutdown
    from ..files import ensure_dir
    from ..models import get_model_cfg, parse_model_args
    from ..train import Schedule, TrainConfig, train
    from .progress import CommandProgress

    try:
        sched = Schedule(schedule)
    except ValueError:
        raise UserError(f"--schedule must be one of {[s.value for s in Schedule]}, got {schedule!r}") from None
    set_threads(threads)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory, expected a checkpoint file path")
    if out.exists() and not (force or resume):
        raise UserError(f"checkpoint {out} exists; pass --force to overwrite (or --resume to continue it)")
    ranks = init_from_env(device)
    text = model_arg_text(model_arg, depth)
    model_args = parse_model_args(get_model_cfg(model), text) if text else {}
    cfg = TrainConfig(model, dataset, str(data_dir) if data_dir else None, epochs, width, seed, batch_size, lr,
                      weight_decay=weight_decay, schedule=sched, device=local_device(device), download=download,
                      model_args=model_args, threat_model=threat, threat_eps=threat_eps, threat_steps=threat_steps,
                      threat_step_size=threat_step_size, trades_beta=trades_beta, holdout=holdout,
                      on_overfit=on_overfit)
    cfg.validate()
    if ranks.is_writer:
        ensure_dir(out.parent, "checkpoint directory")
    # a bar in a terminal; one line per epoch in logs
    with CommandProgress(status=True, eta=True, enabled=ranks.is_writer) as bars:
        task = bars.add(f"{model} epoch 1/{epochs}", status="")

        def on_batch(done: int, total: int, loss: float, acc: float) -> None:
            bars.start()  # only once data loaded and the first batch ran
            bars.update(task, completed=done, total=total, status=f"loss {loss:.3f} acc {acc:.3f}")

        def on_epoch(stats) -> None:
            if ranks.is_writer:
                held = "" if stats.heldout is None else (
                    f" | held-out clean {stats.heldout.clean:.4f} fgsm {stats.heldout.fgsm:.4f} pgd {stats.heldout.pgd:.4f}")
                overfit = " | CATASTROPHIC OVERFITTING" if stats.overfit else ""
                bars.print(f"epoch {stats.epoch}/{stats.epochs}: loss {stats.train_loss:.4f} "
                           f"train acc {stats.train_accuracy:.4f} test acc {stats.test_accuracy:.4f}{held}{overfit}")
            bars.update(task, description=f"{model} epoch {min(stats.epoch + 1, epochs)}/{epochs}", completed=0)

        completed = False
        try:
            path = train(cfg, out, resume=resume, on_batch=on_batch, on_epoch=on_epoch, sync_batchnorm=sync_bn)
            completed = True
        finally:
            bars.stop()
            shutdown(completed)
    if not ranks.is_writer:
        return
    if manifest:
        from ..checkpoints import register_in_manifest

        entry = register_in_manifest(path, command=command_line())
        typer.echo(f"registered {entry.name} in {path.parent / 'manifest.json'}")
    typer.echo(f"wrote {path}")
