"""Checkpoints that carry their metadata, load without executing pickled code, and are listed
with their sha256 in a human-readable manifest (``models/manifest.json``).

A checkpoint is one ``torch.save`` file holding ``{"format", "metadata", "state_dict"}`` with
only tensors and plain values inside, read back with ``torch.load(weights_only=True)``: the
restricted unpickler refuses any object that would run code.

The metadata records the architecture's model arguments (``"model_args": {"depth": 56}``) and, as
0.3 recorded ``depth``, each one under its own name too, so readers of either version find them. A
checkpoint without ``model_args`` (0.3) is rebuilt from those top-level keys, or from the
architecture's defaults when they are absent.
"""
from __future__ import annotations

import glob as globlib
import io
import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import nn

from .errors import UserError, unknown_name
from .files import atomic_write_bytes, atomic_write_text, sha256_file
from .models import create_model, get_model_cfg
from .threat_models import threat_summary

log = logging.getLogger(__name__)

FORMAT = "robust-attn-checkpoint/1"
MANIFEST = "manifest.json"
REQUIRED_METADATA = ("architecture", "width", "num_classes", "in_channels", "dataset", "mean", "std")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, on CPU) and where it came from."""

    name: str
    path: Path
    sha256: str
    metadata: dict[str, Any]
    model: nn.Module


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``metadata`` (plain JSON-able values) atomically."""
    meta = {
        "architecture": model.cfg.name,
        "width": model.width,
        "num_classes": model.num_classes,
        "in_channels": model.in_channels,
        "mean": list(model.normalization[0]),
        "std": list(model.normalization[1]),
        "model_args": dict(model.model_args),
        **model.model_args,  # as 0.3 wrote "depth": only architectures with model arguments get these keys
        **metadata,
    }
    json.dumps(meta)  # fail now, not at load time, if something is not a plain value
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "metadata": meta, "state_dict": state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw ``{"format", "metadata", "state_dict"}`` dict, loaded with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory, expected a checkpoint file")
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if blocked:  # a pickle asking for a callable: refuse, naming what it wanted to run
            raise UserError(f"refusing to load {path}: it would import code ({blocked[0]})") from None
        raise UserError(f"{path} is not a readable checkpoint (corrupt pickle data)") from None
    except Exception as exc:  # truncated zip, not a torch file, a text file (torch's legacy reader: KeyError), ...
        why = "not a PyTorch file" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise UserError(f"{path} is not a readable checkpoint ({why})".splitlines()[0]) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or not isinstance(blob.get("metadata"), dict):
        raise UserError(f"{path} is not a robust-attn checkpoint (format {FORMAT!r} expected)")
    missing = [k for k in REQUIRED_METADATA if k not in blob["metadata"]]
    if missing:
        raise UserError(f"{path}: checkpoint metadata lacks {missing}")
    return blob


def recorded_model_args(metadata: dict[str, Any]) -> dict[str, Any]:
    """The model arguments a checkpoint was built with: its ``model_args``, or for a 0.3 checkpoint the
    architecture's declared arguments found among its top-level keys (absent: the defaults)."""
    if isinstance(metadata.get("model_args"), dict):
        return dict(metadata["model_args"])
    declared = get_model_cfg(metadata["architecture"]).model_args
    return {key: metadata[key] for key in declared if key in metadata}


def model_from_checkpoint(blob: dict[str, Any], path: Path) -> nn.Module:
    """Rebuild the architecture from the metadata alone and load the weights into it."""
    meta = blob["metadata"]
    model_args = recorded_model_args(meta)
    model = create_model(
        meta["architecture"],
        width=meta["width"],
        num_classes=meta["num_classes"],
        in_channels=meta["in_channels"],
        mean=meta["mean"],
        std=meta["std"],
        **model_args,
    )
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        args = "".join(f" and {key} {value}" for key, value in model_args.items())
        raise UserError(
            f"{path}: weights do not fit {meta['architecture']} at width {meta['width']}{args} "
            f"({str(exc).splitlines()[0]})"
        ) from None
    return model.eval()


def load_checkpoint(path: str | os.PathLike, expected_sha256: str | None = None, name: str | None = None) -> Checkpoint:
    """Load a checkpoint; with ``expected_sha256`` (from the manifest) refuse a file that differs."""
    path = Path(path)
    if path.is_file():
        digest = sha256_file(path)
        if expected_sha256 is not None and digest != expected_sha256:
            raise UserError(f"{path}: sha256 {digest[:12]}... does not match the manifest's {expected_sha256[:12]}...")
    else:
        digest = ""
    blob = read_checkpoint_file(path)
    model = model_from_checkpoint(blob, path)
    return Checkpoint(name or path.stem, path, digest, dict(blob["metadata"]), model)


# ---------------------------------------------------------------- manifest

@dataclass(frozen=True)
class ManifestEntry:
    name: str
    file: str
    sha256: str
    architecture: str
    width: float
    dataset: str
    clean_accuracy: float
    seed: int | None = None
    command: str | None = None
    replica_of: str | None = None  # a seed replica of this entry: left out of the default model set
    training_threat: str | None = None  # adversarial training, as threat_summary() writes it (None: standard)


def read_manifest(models_dir: str | os.PathLike) -> dict[str, ManifestEntry]:
    path = Path(models_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        entries = [ManifestEntry(**e) for e in raw["checkpoints"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a valid manifest ({type(exc).__name__}: {exc})") from None
    return {e.name: e for e in entries}


# Written only when set, so manifests without replicas keep their exact bytes.
_OMIT_WHEN_NONE = ("replica_of", "training_threat")


def write_manifest(models_dir: str | os.PathLike, entries: dict[str, ManifestEntry]) -> Path:
    rows = [{k: v for k, v in vars(entries[name]).items() if not (k in _OMIT_WHEN_NONE and v is None)}
            for name in sorted(entries)]
    return atomic_write_text(Path(models_dir) / MANIFEST, json.dumps({"checkpoints": rows}, indent=2) + "\n")


def register_in_manifest(checkpoint_path: str | os.PathLike, command: str | None = None, *,
                         replica_of: str | None = None) -> ManifestEntry:
    """Add (or replace) the checkpoint in the manifest of the folder it lives in. ``replica_of``: the
    name of the entry this one is a seed replica of (kept out of the default model set)."""
    path = Path(checkpoint_path)
    meta = read_checkpoint_file(path)["metadata"]
    entry = ManifestEntry(
        name=path.stem,
        file=path.name,
        sha256=sha256_file(path),
        architecture=meta["architecture"],
        width=meta["width"],
        dataset=meta["dataset"],
        clean_accuracy=meta.get("clean_accuracy", float("nan")),
        seed=meta.get("seed"),
        command=command,
        replica_of=replica_of,
        training_threat=None if not meta.get("training_threat") else threat_summary(meta["training_threat"]),
    )
    # Read-modify-write under a lock: trainings run side by side (one per core) register at their
    # end, and without it the later writer would drop the earlier one's entry.
    with FileLock(path.parent / (MANIFEST + ".lock")):
        entries = read_manifest(path.parent)
        entries[entry.name] = entry
        write_manifest(path.parent, entries)
    return entry


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint to load: where it is, its display name and, from a manifest, its sha256."""

    name: str
    path: Path
    sha256: str | None


def resolve_checkpoints(specs: list[str] | None, models_dir: str | os.PathLike, *,
                        strict: bool = False) -> list[CheckpointRef]:
    """Turn manifest names, paths and globs into checkpoint references.

    Default (no ``specs``): every manifest entry except seed replicas (``replica_of`` set; they stay
    addressable by name or path). An entry whose file is missing is skipped with a warning, or with
    ``strict`` is an error; a checkpoint named explicitly that is missing is always an error."""
    models_dir = Path(models_dir)
    manifest = read_manifest(models_dir)

    def from_manifest(entry: ManifestEntry) -> CheckpointRef:
        return CheckpointRef(entry.name, models_dir / entry.file, entry.sha256)

    if not specs:
        if not manifest:
            raise UserError(f"no checkpoints: {models_dir / MANIFEST} is missing or empty; pass --models")
        replicas = [n for n in manifest if manifest[n].replica_of]
        if replicas:
            log.info("left out %d seed replica(s) from the default model set (%s); name them with --models to evaluate them",
                     len(replicas), ", ".join(sorted(replicas)))
        refs = []
        for name in sorted(set(manifest) - set(replicas)):
            ref = from_manifest(manifest[name])
            if not ref.path.exists():
                if strict:
                    raise UserError(f"manifest entry {name!r} in {models_dir / MANIFEST}: checkpoint file {ref.path} "
                                    f"does not exist (without --strict it is skipped)")
                log.warning("skipping manifest entry %r: its checkpoint file %s does not exist", name, ref.path)
                continue
            refs.append(ref)
        if not refs:
            raise UserError(f"no checkpoints: no default entry of {models_dir / MANIFEST} has its file; pass --models")
        return refs
    by_file = {(models_dir / e.file).resolve(): e for e in manifest.values()}
    refs: list[CheckpointRef] = []
    for spec in specs:
        if spec in manifest:
            refs.append(from_manifest(manifest[spec]))
            continue
        paths = sorted(globlib.glob(spec)) if globlib.has_magic(spec) else ([spec] if Path(spec).exists() else [])
        if not paths:
            if globlib.has_magic(spec) or "/" in spec or spec.endswith(".pt"):
                raise UserError(f"no checkpoint matches {spec!r}")
            if not manifest:
                raise UserError(f"unknown checkpoint {spec!r}: there is no {models_dir / MANIFEST} (run from the "
                                f"repository root or pass --models-dir)")
            raise unknown_name("checkpoint", spec, manifest)
        for p in map(Path, paths):
            entry = by_file.get(p.resolve())
            refs.append(from_manifest(entry) if entry else CheckpointRef(p.stem, p, None))
    unique: dict[Path, CheckpointRef] = {}
    for ref in refs:  # a checkpoint named twice (by name and by glob, say) is evaluated once
        unique.setdefault(ref.path.resolve(), ref)
    return list(unique.values())
