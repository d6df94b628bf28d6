"""``robust-attn models``: the registry, with parameter counts, or one entry in full."""
from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError
from .application import app
from .options import DEFAULT_WIDTH, Depth, ModelArgs, ModelsDir, Width, model_arg_text


@app.command("models")
def models_cmd(
    width: Width = DEFAULT_WIDTH,
    pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'vgg-att3-*'.")] = "*",
    num_classes: Annotated[int, typer.Option("--num-classes")] = 10,
    model_arg: ModelArgs = None,
    depth: Depth = None,
    details: Annotated[Optional[str], typer.Option("--details", help="Show one entry in full: config, paper reference, parameters and multiply-adds at --width and --model-arg values.")] = None,
    checkpoints: Annotated[bool, typer.Option("--checkpoints", help="List the checkpoints of --models-dir's manifest instead: architecture, data, training threat model, clean accuracy.")] = False,
    models_dir: ModelsDir = Path("models"),
) -> None:
    """List registered architectures with their parameter counts at WIDTH (or one in full with --details).

    A --model-arg applies to the entries that take it; the others list their defaults.
    """
    from rich.console import Console
    from rich.table import Column, Table

    from ..models import create_model, get_model_cfg, list_models, parse_model_args

    if checkpoints:
        Console(width=None if sys.stdout.isatty() else 220).print(_checkpoint_table(models_dir, pattern))
        return
    text = model_arg_text(model_arg, depth)
    if details is not None:
        _model_details(details, width, text, num_classes)
        return
    names = list_models(pattern)
    if not names:
        raise UserError(f"no model matches {pattern!r}")
    arg_names = _model_arg_names()
    for key in text:
        if key not in arg_names:
            close = difflib.get_close_matches(key, arg_names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"no model takes {key}{hint} (model arguments: {', '.join(arg_names) or 'none'})")
    arg_names = sorted({key for name in names for key in get_model_cfg(name).model_args})  # the listed ones' only
    table = Table("attended", "combine", "compatibility", "gate", *arg_names, f"params @ width {width:g}")
    table.columns.insert(0, Column("model", no_wrap=True))
    for name in names:
        cfg = get_model_cfg(name)
        own = parse_model_args(cfg, {k: v for k, v in text.items() if k in cfg.model_args})
        model = create_model(name, width=width, num_classes=num_classes, **own)
        n_params = sum(p.numel() for p in model.parameters())
        table.add_row(
            name,
            _attended(cfg),
            cfg.combine.value if cfg.combine else "-",
            cfg.compatibility.value if cfg.compatibility else "-",
            cfg.gate or "-",
            *(str(model.model_args[key]) if key in model.model_args else "-" for key in arg_names),
            f"{n_params:,}",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _checkpoint_table(models_dir: Path, pattern: str):
    """The manifest's checkpoints whose name matches ``pattern``: what each is and how it was trained
    (the training threat model is part of a model's identity: two checkpoints of one architecture
    trained against different adversaries are different models)."""
    import fnmatch

    from rich.table import Column, Table

    from ..checkpoints import MANIFEST, read_manifest

    entries = read_manifest(models_dir)
    if not entries:
        raise UserError(f"{models_dir / MANIFEST} lists no checkpoints")
    names = [n for n in sorted(entries) if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise UserError(f"no checkpoint in {models_dir / MANIFEST} matches {pattern!r}")
    table = Table(Column("checkpoint", no_wrap=True), "architecture", "width", "dataset", "training", "clean acc",
                  "seed", "replica of")
    for name in names:
        e = entries[name]
        table.add_row(name, e.architecture, f"{e.width:g}", e.dataset, e.training_threat or "standard",
                      f"{100 * e.clean_accuracy:.1f}%", "-" if e.seed is None else str(e.seed), e.replica_of or "-")
    return table


def _model_arg_names() -> list[str]:
    """Every model argument some registered architecture declares (the list's and details' rows)."""
    from ..models import get_model_cfg, list_models

    return sorted({key for name in list_models() for key in get_model_cfg(name).model_args})


def _attended(cfg) -> str:
    """"7,10,13" for VGG layers, "stages 2,3" for ResNet stages, "-" without spatial maps."""
    if not cfg.attention_layers:
        return "-"
    if cfg.map_names:
        return ", ".join(cfg.map_names)
    layers = ",".join(map(str, cfg.attention_layers))
    return layers if cfg.layer_unit == "layer" else f"{cfg.layer_unit}s {layers}"


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


def _model_details(name: str, width: float, text: dict[str, str], num_classes: int) -> None:
    from ..models import create_model, get_model_cfg, parse_model_args

    cfg = get_model_cfg(name)  # unknown: one line with close matches
    model = create_model(name, width=width, num_classes=num_classes, **parse_model_args(cfg, text))
    n_params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, model.in_channels)
    gate = cfg.gate
    if cfg.maps_note and cfg.has_attention:
        maps = cfg.maps_note
    elif cfg.compatibility is not None:
        maps = "the paper's softmax attention, one N x 1 x H x W map per attended layer, summing to 1 over positions"
    elif cfg.has_attention:
        maps = f"{gate} spatial gates in [0, 1], one N x 1 x H x W map per attended layer (not distributions)"
    else:
        maps = "none (no spatial attention maps)"
    rows = [
        ("model", name),
        ("family", cfg.family),
        ("paper", cfg.paper),
        ("attended " + cfg.layer_unit + "s", ",".join(map(str, cfg.attention_layers)) or "-") if not cfg.map_names
        else ("maps", ", ".join(cfg.map_names)),
        ("compatibility", cfg.compatibility.value if cfg.compatibility else "-"),
        ("combination", cfg.combine.value if cfg.combine else "-"),
        ("gate", f"{gate} after {cfg.layer_unit}s {','.join(map(str, cfg.gated_layers))}" if gate else "-"),
        ("attention maps", maps),
        ("width", f"{width:g}"),
        *((key, str(model.model_args[key]) if key in model.model_args else f"- (takes no {key})")
          for key in _model_arg_names()),
        ("classes", str(num_classes)),
        ("parameters", f"{n_params:,}"),
        ("multiply-adds", f"{macs:,} per 32x32 image ({macs / 1e6:.2f} M)"),
    ]
    label = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{label}}  {value}")
