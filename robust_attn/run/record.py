"""A run's start record (the first line it writes to ``runs.jsonl``) and the versions that belong to
every cell's settings: the parts every kind of run shares, so the run log reads the same whichever
run wrote it. The report reads these records (``robust_attn.results.read_runs``) and imports none of
this."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from .. import __version__
from ..attacks import EpsGrid, get_attack_cfg
from ..checkpoints import Checkpoint
from .identity import attack_catalog
from .inputs import AttackSpec, EvalData


def versions() -> dict[str, str]:
    """The versions that can change a number: part of every cell's settings (its store key)."""
    import torchattacks

    try:
        import foolbox
        foolbox_version = foolbox.__version__
    except ImportError:  # pragma: no cover - foolbox is a dependency
        foolbox_version = "absent"
    return {"robust_attn": __version__, "torch": torch.__version__, "torchattacks": torchattacks.__version__,
            "foolbox": foolbox_version}


def start_record(*, provenance: Mapping[str, Any] | None, settings: Mapping[str, Any], grid: EpsGrid,
                 n: int | None, data_dir, processes: int, specs: Sequence[AttackSpec],
                 models: Iterable[tuple[Checkpoint, EvalData]], **particular: Any) -> dict[str, Any]:
    """The start record: the caller's provenance (command line), the run's settings (``settings``: the
    ones particular to this kind of run, then the shared ones), the attacks run with their defaults,
    every registered attack (``attack_catalog``), the checkpoints with the images each was evaluated
    on, and what is ``particular`` to this kind of run (``kind``, ``planned``, ...)."""
    return {
        **dict(provenance or {}),
        **{k: v for k, v in particular.items() if k == "kind"},
        "settings": {**dict(settings), "n": n, "processes": processes, "threads": torch.get_num_threads(),
                     "data_dir": None if data_dir is None else str(data_dir), "eps": list(grid.values),
                     "eps_labels": list(grid.labels), "versions": versions()},
        "attacks": [{"name": a.name, "params": dict(a.params), "defaults": dict(get_attack_cfg(a.name).defaults)}
                    for a in specs],
        "attack_catalog": attack_catalog(),
        "checkpoints": [
            {"name": c.name, "path": str(c.path), "sha256": c.sha256, "architecture": c.metadata["architecture"],
             "width": c.metadata["width"], "trained_on": c.metadata["dataset"], "evaluated_on": e.dataset,
             "data_sha256": e.sha256, "image_shape": list(e.images.x.shape[1:]), "n": len(e.images),
             "split_size": e.split_size}
            for c, e in models
        ],
        **{k: v for k, v in particular.items() if k != "kind"},
    }
