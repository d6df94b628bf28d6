"""The ``robust-attn`` command: a thin typer layer over the library.

Heavy imports (torch, pandas) happen inside the commands so ``--help`` is instant. A
:class:`~robust_attn.errors.UserError` or a click usage error becomes one stderr line and exit
status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

try:  # typer >= 0.25 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer depends on click itself
    import click.exceptions as click_exceptions

from .errors import UserError, require_int

app = typer.Typer(
    name="robust-attn",
    help="Adversarial-robustness evaluation of the 'Learn To Pay Attention' CNNs.",
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Dataset utilities.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# ------------------------------------------------------------------ shared option aliases
Width = Annotated[float, typer.Option("--width", help="Channel multiplier (1.0 = the paper's size).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; recorded in every output.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder (or .npz) holding the dataset.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for torch (default: torch's choice).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Examples per batch.")]
ModelsDir = Annotated[Path, typer.Option("--models-dir", help="Folder with checkpoints and manifest.json.")]

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(require_int("--threads", threads, 1))


def command_line() -> str:
    """The command as typed, for provenance records."""
    return shlex.join(["robust-attn", *sys.argv[1:]])


# ------------------------------------------------------------------ models
@app.command("models")
def models_cmd(
    width: Width = 0.125,
    pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'vgg-att3-*'.")] = "*",
    num_classes: Annotated[int, typer.Option("--num-classes")] = 10,
    depth: Annotated[Optional[int], typer.Option("--depth", help="ResNet depth for the counts (default: each entry's, 20); entries without a depth ignore it in the list.")] = None,
    details: Annotated[Optional[str], typer.Option("--details", help="Show one entry in full: config, paper reference, parameters and multiply-adds at --width/--depth.")] = None,
) -> None:
    """List registered architectures with their parameter counts at WIDTH (or one in full with --details)."""
    from rich.console import Console
    from rich.table import Column, Table

    from .models import create_model, get_model_cfg, list_models

    if details is not None:
        _model_details(details, width, depth, num_classes)
        return
    names = list_models(pattern)
    if not names:
        raise UserError(f"no model matches {pattern!r}")
    table = Table("attended", "combine", "compatibility", "gate", "depth", f"params @ width {width:g}")
    table.columns.insert(0, Column("model", no_wrap=True))
    for name in names:
        cfg = get_model_cfg(name)
        own_depth = depth if getattr(cfg, "default_depth", None) is not None else None
        model = create_model(name, width=width, num_classes=num_classes, depth=own_depth)
        n_params = sum(p.numel() for p in model.parameters())
        table.add_row(
            name,
            _attended(cfg),
            cfg.combine.value if cfg.combine else "-",
            cfg.compatibility.value if cfg.compatibility else "-",
            getattr(cfg, "gate", None) or "-",
            str(model.depth) if getattr(model, "depth", None) is not None else "-",
            f"{n_params:,}",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _attended(cfg) -> str:
    """"7,10,13" for VGG layers, "stages 2,3" for ResNet stages, "-" without spatial maps."""
    if not cfg.attention_layers:
        return "-"
    unit = getattr(cfg, "layer_unit", "layer")
    layers = ",".join(map(str, cfg.attention_layers))
    return layers if unit == "layer" else f"{unit}s {layers}"


def count_macs(model, in_channels: int, size: int = 32) -> int:
    """Multiply-adds of one forward pass on a 1 x C x size x size input: torch's FlopCounterMode
    counts 2 flops per multiply-add of every conv, matrix product and einsum (elementwise work,
    pooling, normalisation and softmax are not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # the plain forward: our heads compute the maps in it, a plugin has no other
        model.eval()(torch.zeros(1, in_channels, size, size))
    return counter.get_total_flops() // 2


def _model_details(name: str, width: float, depth: int | None, num_classes: int) -> None:
    from .models import create_model, get_model_cfg

    cfg = get_model_cfg(name)  # unknown: one line with close matches
    model = create_model(name, width=width, num_classes=num_classes, depth=depth)
    n_params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, model.in_channels)
    gate = getattr(cfg, "gate", None)
    if cfg.compatibility is not None:
        maps = "the paper's softmax attention, one N x 1 x H x W map per attended layer, summing to 1 over positions"
    elif cfg.has_attention:
        maps = f"{gate} spatial gates in [0, 1], one N x 1 x H x W map per attended layer (not distributions)"
    else:
        maps = "none (no spatial attention maps)"
    rows = [
        ("model", name),
        ("family", cfg.family),
        ("paper", cfg.paper),
        ("attended " + getattr(cfg, "layer_unit", "layer") + "s", ",".join(map(str, cfg.attention_layers)) or "-"),
        ("compatibility", cfg.compatibility.value if cfg.compatibility else "-"),
        ("combination", cfg.combine.value if cfg.combine else "-"),
        ("gate", f"{gate} after {getattr(cfg, 'layer_unit', 'layer')}s "
                 f"{','.join(map(str, cfg.gated_layers))}" if gate else "-"),
        ("attention maps", maps),
        ("width", f"{width:g}"),
        ("depth", str(model.depth) if getattr(model, "depth", None) is not None else "- (takes no depth)"),
        ("classes", str(num_classes)),
        ("parameters", f"{n_params:,}"),
        ("multiply-adds", f"{macs:,} per 32x32 image ({macs / 1e6:.2f} M)"),
    ]
    label = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{label}}  {value}")


# ------------------------------------------------------------------ train
@app.command("train")
def train_cmd(
    model: Annotated[str, typer.Argument(help="Architecture name (see `robust-attn models`).")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")],
    dataset: Annotated[str, typer.Option("--dataset")] = "cifar10-subset",
    data_dir: DataDir = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 30,
    width: Width = 0.125,
    depth: Annotated[Optional[int], typer.Option("--depth", help="ResNet depth: 6n+2 basic blocks (20, 56, 110) or 9n+2 bottleneck from 164 (the paper's); default 20. Other architectures take none.")] = None,
    seed: Seed = 0,
    batch_size: BatchSize = 128,
    lr: Annotated[float, typer.Option("--lr", help="Peak (one-cycle) or initial (step) learning rate.")] = 0.1,
    schedule: Annotated[str, typer.Option("--schedule", help="onecycle or step (paper: x0.5 every 25 epochs).")] = "onecycle",
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 5e-4,
    threads: Threads = None,
    device: Device = "auto",
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the dataset.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last finished epoch.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing checkpoint at --out.")] = False,
    manifest: Annotated[bool, typer.Option("--manifest", help="Record the checkpoint in manifest.json beside it.")] = False,
    sync_bn: Annotated[bool, typer.Option("--sync-bn", help="Under torchrun: synchronise BatchNorm statistics across ranks.")] = False,
) -> None:
    """Train MODEL and write a checkpoint carrying its metadata.

    Under `torchrun --nproc-per-node N -m robust_attn train ...` training uses DistributedDataParallel
    (gloo on CPU, nccl on GPU); rank 0 writes the checkpoint.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .distributed import init_from_env, local_device, shutdown
    from .files import ensure_dir
    from .train import Schedule, TrainConfig, train

    try:
        sched = Schedule(schedule)
    except ValueError:
        raise UserError(f"--schedule must be one of {[s.value for s in Schedule]}, got {schedule!r}") from None
    _set_threads(threads)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory, expected a checkpoint file path")
    if out.exists() and not (force or resume):
        raise UserError(f"checkpoint {out} exists; pass --force to overwrite (or --resume to continue it)")
    ranks = init_from_env(device)
    cfg = TrainConfig(model, dataset, str(data_dir) if data_dir else None, epochs, width, seed, batch_size, lr,
                      weight_decay=weight_decay, schedule=sched, device=local_device(device), download=download,
                      depth=depth)
    cfg.validate()
    if ranks.is_writer:
        ensure_dir(out.parent, "checkpoint directory")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    from rich.console import Console

    console = Console(stderr=True)
    live = ranks.is_writer and console.is_terminal  # a bar in a terminal; one line per epoch in logs
    progress = Progress(*columns, transient=False, console=console, disable=not live)
    task = progress.add_task(f"{model} epoch 1/{epochs}", total=None, status="")

    def on_batch(done: int, total: int, loss: float, acc: float) -> None:
        if live and not progress.live.is_started:  # only once data loaded and the first batch ran
            progress.start()
        progress.update(task, completed=done, total=total, status=f"loss {loss:.3f} acc {acc:.3f}")

    def on_epoch(stats) -> None:
        if ranks.is_writer:
            console.print(f"epoch {stats.epoch}/{stats.epochs}: loss {stats.train_loss:.4f} "
                          f"train acc {stats.train_accuracy:.4f} test acc {stats.test_accuracy:.4f}", highlight=False)
        progress.update(task, description=f"{model} epoch {min(stats.epoch + 1, epochs)}/{epochs}", completed=0)

    completed = False
    try:
        path = train(cfg, out, resume=resume, on_batch=on_batch, on_epoch=on_epoch, sync_batchnorm=sync_bn)
        completed = True
    finally:
        progress.stop()
        shutdown(completed)
    if not ranks.is_writer:
        return
    if manifest:
        from .checkpoints import register_in_manifest

        entry = register_in_manifest(path, command=command_line())
        typer.echo(f"registered {entry.name} in {path.parent / 'manifest.json'}")
    typer.echo(f"wrote {path}")


# ------------------------------------------------------------------ sweep
def _split(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists both work: --attack fgsm,pgd == --attack fgsm --attack pgd."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _print_tables(frame, console) -> None:
    """Per attack: the per-eps accuracy (the attack at that eps alone), then the worst case over
    every eps' <= eps it tried; where they differ, the second is the stronger claim."""
    from rich.table import Table

    from .results import accuracy_table

    for attack in frame["attack"].unique():
        for value, title in (("accuracy", f"accuracy (%) under {attack} at each eps"),
                             ("worst_case_accuracy", f"worst case (%): robust to {attack} at every eps' <= eps")):
            wide = accuracy_table(frame, attack, value)
            table = Table(title=title, title_justify="left")
            table.add_column("model", no_wrap=True)
            for label in wide.columns:
                table.add_column(str(label), justify="right", no_wrap=True)
            for model, values in wide.iterrows():
                table.add_row(str(model), *(f"{100 * v:.1f}" for v in values))
            console.print(table)


@app.command("sweep")
def sweep_cmd(
    attack: Annotated[list[str], typer.Option("--attack", "-a", help="Attack name(s); repeat or comma-separate.")],
    eps: Annotated[str, typer.Option("--eps", help="Grid: START:STOP:STEP (stop included) or a list 0,1,2,4,8.")] = "0:8:1",
    eps_unit: Annotated[str, typer.Option("--eps-unit", help="255 (eps in 1/255, Linf) or raw (e.g. L2).")] = "255",
    models: Annotated[Optional[list[str]], typer.Option("--models", "-m", help="Manifest names, checkpoint paths or globs (default: all of --models-dir); or your own model as package.module:function or path/to/file.py:function (a function returning a torch.nn.Module; needs --dataset).")] = None,
    attack_arg: Annotated[Optional[list[str]], typer.Option("--attack-arg", help="Override an attack parameter, KEY=VALUE.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Evaluation dataset (default: each checkpoint's embedded set).")] = None,
    data_dir: DataDir = None,
    n: Annotated[Optional[int], typer.Option("--n", "-n", "--examples", help="Evaluate the first N examples (default: all). Under torchrun use -n or --examples (torchrun claims --n).")] = None,
    batch_size: BatchSize = 256,
    seed: Seed = 0,
    device: Device = "cpu",
    out: Annotated[Path, typer.Option("--out", help="Results folder; rerunning on it resumes.")] = Path("results"),
    per_example: Annotated[bool, typer.Option("--per-example/--no-per-example", help="Also write per_example.csv (paired tests in reports).")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build an HTML report in --report-dir.")] = True,
    report_dir: Annotated[Optional[Path], typer.Option("--report-dir", help="Report folder (default: OUT/report).")] = None,
    models_dir: ModelsDir = Path("models"),
    threads: Threads = None,
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast on CUDA (changes gradients; off by default).")] = False,
    fast_path: Annotated[bool, typer.Option("--fast-path/--no-fast-path", help="Attack only the points still robust at the previous eps where the attack allows it (pgd, bim); --no-fast-path attacks every point at every eps.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Without --models: a manifest entry whose checkpoint file is missing is an error (default: a warning that skips it).")] = False,
) -> None:
    """Evaluate checkpoints under attacks over an eps grid; write OUT/results.csv.

    Under `torchrun --nproc-per-node N -m robust_attn sweep ...` the attacked examples are shared
    among the processes and the results equal a single-process run's; rank 0 writes them.
    """
    from .distributed import init_from_env, local_device, shutdown

    _set_threads(threads)
    ranks = init_from_env(device)  # under torchrun: join the process group (gloo on CPU, nccl on GPU)
    device = local_device(device)
    completed = False
    try:
        _sweep_and_report(attack, eps, eps_unit, models, attack_arg, dataset, data_dir, n, batch_size, seed, device,
                          out, per_example, report, report_dir, models_dir, amp, fast_path, ranks.is_writer, strict)
        completed = True
    finally:
        shutdown(completed)


def _sweep_and_report(attack, eps, eps_unit, models, attack_arg, dataset, data_dir, n, batch_size, seed, device,
                      out, per_example, report, report_dir, models_dir, amp: bool, fast_path: bool, writer: bool,
                      strict: bool = False) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .attacks import parse_attack_args
    from .sweep import RESULTS_FILE, sweep

    console = Console(stderr=True, quiet=not writer)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    live = console.is_terminal  # a bar in a terminal; one line per finished cell in logs
    progress = Progress(*columns, console=console, disable=not live)
    task = progress.add_task("sweep", total=None)

    def on_start(total: int) -> None:  # after validation, so a bad input prints one line only
        progress.update(task, total=total)
        if live:
            progress.start()

    def on_cell(event) -> None:
        progress.update(task, completed=event.done, total=event.total,
                        description=f"{event.model} {event.attack} eps={event.eps_label}")
        if not live:
            resumed = " (stored)" if event.stored else ""
            console.print(f"cell {event.done}/{event.total}: {event.model} {event.attack} eps={event.eps_label} "
                          f"accuracy {100 * event.accuracy:.1f}%{resumed}", highlight=False)

    try:
        frame = sweep(
            _split(models), _split(attack), eps, dataset, eps_unit=eps_unit, attack_args=parse_attack_args(attack_arg),
            data_dir=data_dir, models_dir=models_dir, n=n, batch_size=batch_size, seed=seed, device=device, out=out,
            per_example=per_example, amp=amp, fast_path=fast_path, on_start=on_start, on_cell=on_cell,
            provenance={"command": command_line()}, strict=strict,
        )
    finally:
        progress.stop()
    if not writer:  # under torchrun, rank 0 alone reports
        return
    _print_tables(frame, Console(width=None if sys.stdout.isatty() else 160))
    typer.echo(f"wrote {out / RESULTS_FILE} ({len(frame)} rows)")
    if report:
        from .report import build_report

        with console.status("building report"):
            index = build_report([out], report_dir or out / "report", command=command_line())
        typer.echo(f"wrote {index}")


# ------------------------------------------------------------------ report
@app.command("report")
def report_cmd(
    results: Annotated[list[Path], typer.Argument(help="One or more sweep result folders (merged).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: RESULTS/report for one folder).")] = None,
    panel_images: Annotated[int, typer.Option("--panel-images", help="Images in the attention panels (0: none).")] = 8,
    shift_images: Annotated[int, typer.Option("--shift-images", help="Images for the attention-shift curve.")] = 64,
    panel_attack: Annotated[Optional[str], typer.Option("--panel-attack", help="Attack for the panels (default: fgsm).")] = None,
    threads: Threads = None,
) -> None:
    """Build an HTML + CSV report from sweep result folders (it reads their files only)."""
    from .report import build_report

    _set_threads(threads)
    if out is None:
        if len(results) != 1:
            raise UserError("several results folders: pass --out for the merged report")
        out = results[0] / "report"
    index = build_report(results, out, panel_images=panel_images, shift_images=shift_images,
                         panel_attack=panel_attack, command=command_line())
    typer.echo(f"wrote {index}")


# ------------------------------------------------------------------ regress
@app.command("regress")
def regress_cmd(
    models_dir: ModelsDir = Path("models"),
    update: Annotated[bool, typer.Option("--update", help="Rewrite the expected results and print what moved.")] = False,
    threads: Threads = None,
) -> None:
    """Re-run the regression suite on the shipped checkpoints; exit 1 if any cell moved."""
    from rich.console import Console
    from rich.table import Table

    from .regress import compare, read_expected, read_suite, run_suite, write_expected

    _set_threads(threads)
    suite = read_suite(models_dir)
    err = Console(stderr=True)
    actual = run_suite(models_dir, on_entry=lambda i, total, e: err.print(f"[{i + 1}/{total}] {e.attack} eps {e.eps}"))
    expected_path = models_dir / "regress_expected.csv"
    try:
        diffs = compare(read_expected(models_dir), actual, suite) if (expected_path.exists() or not update) else []
    except UserError as exc:  # --update replaces an expectation of an older format; without it, that is the error
        if not update:
            raise
        err.print(f"replacing {expected_path}: {exc}")
        diffs = []
    if diffs:
        table = Table("cell", "expected", "actual", "tolerance",
                      title=f"{len(diffs)} of {len(actual)} regression cells moved", title_justify="left")
        for d in diffs:
            table.add_row(d.cell, d.expected, d.actual, str(d.allowed))
        Console(width=200).print(table)
    if update:
        typer.echo(f"wrote {write_expected(models_dir, actual)} ({len(actual)} cells)")
        return
    if diffs:
        raise typer.Exit(1)
    typer.echo(f"regression suite passed: {len(actual)} cells match")


# ------------------------------------------------------------------ study
def _print_verdicts(effects, console) -> None:
    """The verdict table: per comparison, attack and metric, the across-seed difference of the
    normalised area under the accuracy-vs-eps curve, its 95% interval and what it says."""
    from rich.table import Table

    rows = effects[effects["summary"] == "auc"]
    table = Table(title="study verdicts (difference of normalised AUC, points, 95% interval across seeds)",
                  title_justify="left")
    for column in ("architecture", "baseline", "attack", "metric", "seeds", "difference", "95% interval", "p (Holm)",
                   "verdict"):
        table.add_column(column, justify="right" if column in ("seeds", "difference", "p (Holm)") else "left")
    for r in rows.itertuples():
        interval = "-" if r.ci_low != r.ci_low else f"[{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]"
        p = "-" if r.p_holm != r.p_holm else f"{r.p_holm:.2g}"
        table.add_row(r.architecture, r.baseline, r.attack, r.metric, f"{r.n_seeds}+{r.n_seeds_baseline}",
                      f"{100 * r.difference:+.1f}", interval, p, r.verdict)
    console.print(table)


@app.command("study")
def study_cmd(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML): recipe, architectures, seeds, evaluation.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Study folder (default: results/<study file name>); rerunning on it resumes.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Trainings at once (CPU threads are split between them).")] = 1,
    device: Device = "auto",
    threads: Threads = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build the study report in OUT/report.")] = True,
    n: Annotated[Optional[int], typer.Option("--n", "-n", "--examples", help="Evaluate the first N examples (overrides the study file's n; for a quick look).")] = None,
) -> None:
    """Train what a study is missing, sweep every (architecture, seed), and report across seeds.

    A checkpoint counts as present when its recorded training configuration and seed match the
    study's, whatever its file name; the study's own trainings go to OUT/checkpoints and resume
    after an interruption. Writes OUT/study.csv, effects.csv, per_seed.csv, within_seed.csv and
    OUT/report/index.html.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .study import EFFECTS_FILE, STUDY_FILE, load_study, study

    _set_threads(threads)
    require_int("--jobs", jobs, 1)
    spec = load_study(study_file)
    if n is not None:
        import dataclasses

        spec = dataclasses.replace(spec, evaluation=dataclasses.replace(spec.evaluation, n=require_int("-n", n, 1)))
    out = out or Path("results") / study_file.stem
    console = Console(stderr=True)
    live = console.is_terminal  # bars in a terminal; one line per epoch and per cell in logs
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=not live)
    tasks: dict[tuple[str, int], int] = {}
    sweep_task: list[int] = []

    def on_training(event) -> None:
        key = (event.architecture, event.seed)
        if live and not progress.live.is_started:
            progress.start()
        if key not in tasks:
            tasks[key] = progress.add_task(f"train {event.architecture} seed {event.seed}", total=event.epochs)
        progress.update(tasks[key], completed=event.epoch)
        if not live and event.epoch:
            console.print(f"train {event.architecture} seed {event.seed}: epoch {event.epoch}/{event.epochs} "
                          f"test acc {event.test_accuracy:.4f}", highlight=False)

    def on_start(total: int) -> None:
        sweep_task.append(progress.add_task("sweep", total=total))
        if live and not progress.live.is_started:
            progress.start()

    def on_cell(event) -> None:
        progress.update(sweep_task[0], completed=event.done, description=f"sweep {event.model} {event.attack} "
                                                                         f"eps={event.eps_label}")
        if not live:
            console.print(f"cell {event.done}/{event.total}: {event.model} {event.attack} eps={event.eps_label} "
                          f"accuracy {100 * event.accuracy:.1f}%{' (stored)' if event.stored else ''}", highlight=False)

    try:
        result = study(spec, out, jobs=jobs, device=device, report=report, command=command_line(),
                       on_training=on_training, on_start=on_start, on_cell=on_cell)
    finally:
        progress.stop()
    _print_verdicts(result.effects, Console(width=None if sys.stdout.isatty() else 160))
    typer.echo(f"wrote {out / STUDY_FILE}, {out / EFFECTS_FILE}")
    if result.report:
        typer.echo(f"wrote {result.report}")


# ------------------------------------------------------------------ transfer
def _print_transfer_tables(frame, console) -> None:
    """Per attack and eps: source x target accuracy (%) on the source's adversarial examples."""
    from rich.table import Table

    targets = list(dict.fromkeys(frame["target"]))
    for (attack, params), by_attack in frame.groupby(["attack", "attack_params"], sort=False):
        for label, cell in by_attack.groupby("eps_label", sort=False):
            table = Table(title=f"{attack} eps {label}: accuracy (%) of each target on the source's examples",
                          title_justify="left")
            table.add_column("source \\ target", no_wrap=True)
            present = [t for t in targets if t in set(cell["target"])]
            for target in present:
                table.add_column(target, justify="right")
            values = {(r.source, r.target): r.accuracy for r in cell.itertuples()}
            for source in dict.fromkeys(cell["source"]):
                table.add_row(source, *("-" if (source, t) not in values else f"{100 * values[source, t]:.1f}"
                                        for t in present))
            console.print(table)


def _transfer_report_builder():
    """The report's transfer builder, when this version has one (None otherwise)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("robust_attn.report.transfer") is None:
        return None
    return getattr(importlib.import_module("robust_attn.report.transfer"), "build_transfer_report", None)


@app.command("transfer")
def transfer_cmd(
    attack: Annotated[list[str], typer.Option("--attack", "-a", help="Eps-bounded label attack(s) to craft with; repeat or comma-separate.")],
    eps: Annotated[str, typer.Option("--eps", help="Grid: START:STOP:STEP (stop included) or a list 0,1,2,4,8.")] = "0:8:2",
    eps_unit: Annotated[str, typer.Option("--eps-unit", help="255 (eps in 1/255, Linf) or raw (e.g. L2).")] = "255",
    sources: Annotated[list[str] | None, typer.Option("--sources", "-s", help="Models the examples are crafted on: manifest names, checkpoint paths or globs (default: all of --models-dir).")] = None,
    targets: Annotated[list[str] | None, typer.Option("--targets", "-t", help="Models the examples are evaluated on (default: every model of --models-dir evaluated on each source's images).")] = None,
    attack_arg: Annotated[list[str] | None, typer.Option("--attack-arg", help="Override an attack parameter, KEY=VALUE.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Evaluation dataset (default: each checkpoint's embedded set).")] = None,
    data_dir: DataDir = None,
    n: Annotated[int | None, typer.Option("--n", "-n", "--examples", help="Evaluate the first N examples (default: all).")] = None,
    batch_size: BatchSize = 256,
    seed: Seed = 0,
    device: Device = "cpu",
    out: Annotated[Path, typer.Option("--out", help="Transfer results folder; rerunning on it resumes.")] = Path("results/transfer"),
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build the transfer report in OUT/report.")] = True,
    models_dir: ModelsDir = Path("models"),
    threads: Threads = None,
    strict: Annotated[bool, typer.Option("--strict", help="Default model set: a manifest entry whose checkpoint file is missing is an error.")] = False,
) -> None:
    """Craft adversarial examples once per source, attack and eps; evaluate them on every target.

    Writes OUT/transfer.csv (source x target x attack x eps: accuracy of the target on the source's
    examples, Wilson interval) and OUT/transfer_examples.csv. The diagonal (source = target) is the
    white-box per-eps accuracy, equal to `sweep --no-fast-path` for the same grid, seed, n and batch size.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .attacks import parse_attack_args
    from .transfer import TRANSFER_FILE, transfer

    _set_threads(threads)
    console = Console(stderr=True)
    live = console.is_terminal  # a bar in a terminal; one line per finished cell in logs
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), console=console, disable=not live)
    task = progress.add_task("transfer", total=None)

    def on_start(total: int) -> None:  # after validation, so a bad input prints one line only
        progress.update(task, total=total)
        if live:
            progress.start()

    def on_cell(event) -> None:
        progress.update(task, completed=event.done, total=event.total,
                        description=f"{event.source} {event.attack} eps={event.eps_label}")
        if not live:
            accuracy = ", ".join(f"{t} {100 * a:.1f}%" for t, a in event.accuracy.items())
            console.print(f"cell {event.done}/{event.total}: {event.source} {event.attack} eps={event.eps_label} -> "
                          f"{accuracy}{' (stored)' if event.stored else ''}", highlight=False, soft_wrap=True)

    try:
        frame = transfer(_split(sources), _split(targets), _split(attack), eps, dataset, eps_unit=eps_unit,
                         attack_args=parse_attack_args(attack_arg), data_dir=data_dir, models_dir=models_dir, n=n,
                         batch_size=batch_size, seed=seed, device=device, out=out, on_start=on_start,
                         on_cell=on_cell, provenance={"command": command_line()}, strict=strict)
    finally:
        progress.stop()
    _print_transfer_tables(frame, Console(width=None if sys.stdout.isatty() else 200))
    typer.echo(f"wrote {out / TRANSFER_FILE} ({len(frame)} rows)")
    if report:
        build = _transfer_report_builder()
        if build is None:
            console.print("no transfer report in this version: skipped", highlight=False)
            return
        with console.status("building report"):
            index = build(out, out / "report", command=command_line())
        typer.echo(f"wrote {index}")


# ------------------------------------------------------------------ data
@data_app.command("make-subset")
def make_subset_cmd(
    cifar_root: Annotated[Path, typer.Argument(help="Folder of torchvision's CIFAR-10 download.")],
    out: Annotated[Path, typer.Argument(help="Output .npz.")],
) -> None:
    """Rebuild cifar10_subset.npz (rows i < 932 of each train batch and of the test batch)."""
    from .data import make_subset

    typer.echo(f"wrote {make_subset(cifar_root, out)}")


@data_app.command("list")
def data_list_cmd() -> None:
    """List dataset names."""
    from .data import get_dataset_cfg, list_datasets

    for name in list_datasets():
        typer.echo(f"{name:24s} {get_dataset_cfg(name).description}")


# ------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user mistakes exit 2 with one stderr line, Ctrl-C exits 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv[1:]:  # a global option, accepted after the subcommand too
        argv = ["--debug", *[a for a in argv if a != "--debug"]]
    try:
        rc = app(args=argv, standalone_mode=False)  # typer turns Ctrl-C into exit code 130
    except UserError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click_exceptions.UsageError as exc:
        print(f"error: {exc.format_message()}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        rc = 130
    if rc == 130:
        print("interrupted: finished work is saved; rerun the same command to resume", file=sys.stderr)
    sys.exit(rc if isinstance(rc, int) else 0)
