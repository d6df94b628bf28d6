"""``robust-attn data``: dataset utilities."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .application import data_app


@data_app.command("make-subset")
def make_subset_cmd(
    cifar_root: Annotated[Path, typer.Argument(help="Folder of torchvision's CIFAR-10 download.")],
    out: Annotated[Path, typer.Argument(help="Output .npz.")],
) -> None:
    """Rebuild cifar10_subset.npz (rows i < 932 of each train batch and of the test batch)."""
    from ..data import make_subset

    typer.echo(f"wrote {make_subset(cifar_root, out)}")


@data_app.command("list")
def data_list_cmd() -> None:
    """List dataset names."""
    from ..data import get_dataset_cfg, list_datasets

    for name in list_datasets():
        typer.echo(f"{name:24s} {get_dataset_cfg(name).description}")
