"""What a run (sweep, transfer) is asked to do, checked before any work starts: attacks with their
resolved parameters, the eps grid against each attack's norm, the numeric settings, the device, the
checkpoints, and the evaluation images (identified by the hash of their pixels and labels, not by
their dataset's name)."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn

from ..attacks import (
    CORRUPTIONS, EpsGrid, EpsUnit, Norm, expand_attack_names, get_attack_cfg, is_corruption, list_attacks, listed_twice, params_json, parse_eps_grid,
    resolve_params,
)
from ..attacks.quantization import BITS
from ..checkpoints import Checkpoint, CheckpointRef, load_checkpoint, resolve_checkpoints
from ..data import DatasetCfg, ImageSet, get_dataset_cfg, image_set_sha256, load_dataset
from ..devices import resolve_device
from ..errors import UserError, require_int
from ..user_models import UserModel, as_checkpoint, is_spec, load_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackSpec:
    """An attack name with its fully resolved parameters."""

    name: str
    params: Mapping[str, Any]
    quantize: int | None = None  # bits per channel the run rounds the attack's output to before scoring; None: not

    @property
    def params_json(self) -> str:
        """The parameters as rows record them: the attack's, and ``quantize`` where the outputs are rounded
        (so a rounded curve is a cell of its own, never resumed from an unrounded one)."""
        return params_json({**self.params, "quantize": self.quantize} if self.quantize else self.params)


@dataclass(frozen=True)
class EvalData:
    """The examples a model is evaluated on: the first ``n`` test images of ``dataset``."""

    dataset: str
    images: ImageSet
    split_size: int | None = None  # images in the dataset's whole test split (the run evaluates the first n)

    @cached_property
    def sha256(self) -> str:
        """Hash of the pixels and labels: two folders of images under one dataset name differ here."""
        return image_set_sha256(self.images)


def needs_gradient(specs: Sequence[AttackSpec]) -> bool:
    """Whether any of the attacks follows the model's gradient (the clean pass then computes the input
    gradient, and a user's model must have one)."""
    return any(get_attack_cfg(s.name).uses_gradient for s in specs)


def resolve_attacks(attacks: Sequence[str | AttackSpec], attack_args: Mapping[str, Any] | None = None,
                    quantize: int | None = None) -> list[AttackSpec]:
    """Attack names (+ shared ``KEY=VALUE`` overrides, applied to each attack that has that key); ``quantize``:
    round every attack's output to that many bits before scoring (8 or 16)."""
    if not attacks:
        raise UserError("no attack given")
    if quantize is not None and (isinstance(quantize, bool) or quantize not in BITS):
        raise UserError(f"--quantize must be 8 or 16 (bits per channel), got {quantize!r}")
    attack_args = dict(attack_args or {})
    specs: list[AttackSpec] = []
    requested = list(attacks)
    attacks = [a for group in attacks for a in ([group] if isinstance(group, AttackSpec) else expand_attack_names([group]))]
    for attack in attacks:
        if isinstance(attack, AttackSpec):
            specs.append(AttackSpec(attack.name, resolve_params(attack.name, attack.params), attack.quantize or quantize))
            continue
        cfg = get_attack_cfg(attack)
        specs.append(AttackSpec(attack, resolve_params(attack, {k: v for k, v in attack_args.items() if k in cfg.defaults}),
                                quantize))
    unused = [k for k in attack_args if not any(k in get_attack_cfg(s.name).defaults for s in specs)]
    if unused:
        import difflib

        known = sorted({key for s in specs for key in get_attack_cfg(s.name).defaults})
        close = difflib.get_close_matches(unused[0], known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        takers = [a for a in list_attacks() if unused[0] in get_attack_cfg(a).defaults]
        if takers and not close:
            hint = f"; attacks that take it: {', '.join(takers)}"
        raise UserError(f"--attack-arg {unused[0]!r} is not a parameter of {', '.join(s.name for s in specs)}{hint}")
    twice = listed_twice([a.name if isinstance(a, AttackSpec) else a for a in requested])
    if twice:
        raise UserError(f"attack listed twice: {twice}")
    return specs


def check_grid_norms(grid: EpsGrid, specs: Sequence[AttackSpec]) -> None:
    l2 = [s.name for s in specs if get_attack_cfg(s.name).norm is Norm.L2]
    if l2 and grid.unit is EpsUnit.PER_255:
        raise UserError(f"L2 attacks ({', '.join(l2)}) take raw eps: pass --eps-unit raw (e.g. --eps 0:1:0.25)")
    if any(get_attack_cfg(s.name).norm is Norm.LINF for s in specs) and grid.values[-1] > 1:
        raise UserError(f"Linf eps above 1 exceeds the [0, 1] pixel range (largest: {grid.labels[-1]})")


DEFAULT_EPS = "0:8:1"  # the eps grid of a run that names none: 0 to 8/255
DEFAULT_SEVERITIES = "0:5:1"  # the grid of a run of common corruptions that names none: clean, then severities 1-5
SEVERITIES = range(0, 6)  # Hendrycks & Dietterich's severities 1-5; 0: the clean images (the clean cell)


def severity_grid(grid: EpsGrid) -> EpsGrid:
    """A grid read as corruption severities: ``--eps 1:5:1`` means severities 1 to 5 whatever ``--eps-unit``
    says (a grid in 1/255 is read back in its own numbers); each must be an integer from 0 to 5."""
    severities = []
    for value, label in zip(grid.values, grid.labels):
        number = value * 255 if grid.unit is EpsUnit.PER_255 else value
        severity = round(number)
        if abs(number - severity) > 1e-9 or severity not in SEVERITIES:
            shown = label.split("/")[0] if grid.unit is EpsUnit.PER_255 else label
            raise UserError(f"severity must be an integer from 1 to 5 (0: the clean images), got {shown}")
        severities.append(severity)
    return EpsGrid(tuple(float(s) for s in severities), tuple(str(s) for s in severities), EpsUnit.RAW)


SPLIT_SWEEPS = "run them as two sweeps (two --out folders; one report reads both)"


def check_corruptions(grid: EpsGrid, specs: Sequence[AttackSpec], split: str = SPLIT_SWEEPS) -> EpsGrid:
    """A run of common corruptions reads its grid as severities; corruptions and attacks do not share a run
    (one grid cannot be both an eps and a severity); ``split`` says what to do instead (a sweep and a study
    are split differently)."""
    corruptions = [s.name for s in specs if is_corruption(s.name)]
    if not corruptions:
        return grid
    if len(corruptions) != len(specs):
        attacks = [s.name for s in specs if not is_corruption(s.name)]
        raise UserError(f"corruptions ({', '.join(corruptions[:3])}{', ...' if len(corruptions) > 3 else ''}) take a "
                        f"severity grid and attacks ({', '.join(attacks)}) an eps grid: {split}")
    if any(s.quantize for s in specs):
        raise UserError("--quantize rounds adversarial images; corrupted images are 8-bit already")
    return severity_grid(grid)


@dataclass(frozen=True)
class Request:
    """A run's checked request: the eps grid, the attacks with their parameters, the device."""

    grid: EpsGrid
    specs: list[AttackSpec]
    device: torch.device


def check_request(attacks: Sequence[str | AttackSpec], eps: EpsGrid | str | None, *, eps_unit: str | EpsUnit,
                  attack_args: Mapping[str, Any] | None, data: str | None, batch_size: int, seed: int, n: int | None,
                  device: str, accept: Callable[[str], None] | None = None, quantize: int | None = None) -> Request:
    """Every check a run makes before it loads a model, in the order a user meets them: the grid, the
    attacks (``accept`` refuses an attack this kind of run cannot use; it sees the group ``corruptions``, where
    written, before its members), the grid against their norms, the
    numbers, the device, the dataset's name. ``eps`` None: :data:`DEFAULT_EPS`, or for common corruptions
    :data:`DEFAULT_SEVERITIES` (a grid of corruptions is read as severities, :func:`severity_grid`)."""
    if eps is not None:
        grid = eps if isinstance(eps, EpsGrid) else parse_eps_grid(eps, eps_unit)
    specs = resolve_attacks(attacks, attack_args, quantize)
    if accept is not None:  # the group as written first: a refusal of it must not name its first member
        for name in ([CORRUPTIONS] if CORRUPTIONS in attacks else []) + [s.name for s in specs]:
            accept(name)
    if eps is None:
        natural = any(is_corruption(s.name) for s in specs)
        grid = parse_eps_grid(DEFAULT_SEVERITIES if natural else DEFAULT_EPS, EpsUnit.RAW if natural else eps_unit)
    grid = check_corruptions(grid, specs)
    check_grid_norms(grid, specs)
    require_int("batch_size", batch_size, 1)
    require_int("seed", seed, 0)
    if n is not None:
        require_int("n", n, 1)
    dev = resolve_device(device)
    if data is not None:
        get_dataset_cfg(data)
    return Request(grid, specs, dev)


def fits(ckpt: Checkpoint, cfg: DatasetCfg) -> bool:
    return cfg.in_channels == ckpt.metadata["in_channels"] and cfg.num_classes == ckpt.metadata["num_classes"]


def evaluation_data(ckpt: Checkpoint, dataset: str | None, data_dir: str | None, n: int | None,
                    cache: dict[str, ImageSet]) -> EvalData:
    if dataset:
        name = dataset
    else:
        trained_on = get_dataset_cfg(ckpt.metadata["dataset"])
        name = trained_on.evaluation_set or trained_on.name
    cfg = get_dataset_cfg(name)
    if not fits(ckpt, cfg):
        raise UserError(
            f"{ckpt.name} ({ckpt.metadata['in_channels']} channels, {ckpt.metadata['num_classes']} classes) "
            f"cannot be evaluated on {name} ({cfg.in_channels} channels, {cfg.num_classes} classes)"
        )
    if name not in cache:
        cache[name] = load_dataset(name, data_dir).test
    images = split = cache[name]
    if n is not None:
        images = ImageSet(images.x[:n], images.y[:n])
    return EvalData(name, images, len(split))


ModelSpec = str | os.PathLike | Checkpoint | CheckpointRef | UserModel
Models = Sequence[ModelSpec] | Mapping[str, nn.Module]


def load_models(models: Models | None, models_dir: str | os.PathLike, dataset: str | None = None, *,
                strict: bool = False) -> list[Checkpoint]:
    """The checkpoints to evaluate. With no ``models`` (the whole manifest) and a ``dataset``, those
    that cannot be evaluated on it (other channel or class counts) are left out with a warning; a
    model named explicitly that does not fit stays an error (raised when its data is prepared).
    ``strict``: a manifest entry whose file is missing is an error, not skipped (see resolve_checkpoints).

    User models (see :mod:`robust_attn.user_models`): a ``{name: module}`` mapping, :class:`UserModel`
    items and ``module:function`` spec strings; they need ``dataset`` and come after the checkpoints."""
    if isinstance(models, Mapping):
        models = [UserModel(name, module) for name, module in models.items()]
    models = list(models or [])
    for m in models:
        if isinstance(m, nn.Module):
            raise UserError(f"a {type(m).__name__} module needs a name: pass {{'name': module}} or "
                            f"UserModel('name', module)")
    specs = [m for m in models if isinstance(m, str) and is_spec(m)]
    own = [m for m in models if isinstance(m, UserModel)]
    if (specs or own) and dataset is None:
        first = specs[0] if specs else own[0].name
        raise UserError(f"model {first!r} is not a checkpoint: pass --dataset (Python: data=) to name the data "
                        f"to evaluate it on")
    others = [m for m in models if not isinstance(m, UserModel) and not (isinstance(m, str) and is_spec(m))]
    loaded = _load_checkpoints(others, models_dir, dataset, strict, default=not models)
    users = own + [load_spec(s) for s in specs]
    taken = [c.name for c in loaded] + [u.name for u in users]
    users = [UserModel(u.source, u.module, u.source) if u.source in specs and taken.count(u.name) > 1 else u
             for u in users]  # a spec whose function name is taken is named by the whole spec
    loaded += [as_checkpoint(u, dataset) for u in users]
    names = [c.name for c in loaded]
    if len(set(names)) != len(names):
        raise UserError(f"two models share a name: {sorted({n for n in names if names.count(n) > 1})}")
    return loaded


def _load_checkpoints(models: Sequence[str | os.PathLike | Checkpoint | CheckpointRef], models_dir: str | os.PathLike,
                      dataset: str | None, strict: bool, default: bool) -> list[Checkpoint]:
    """The checkpoints among ``models`` (``default``: none were asked for, the manifest's are used)."""
    loaded: list[Checkpoint] = []
    specs = [m for m in models if not isinstance(m, (Checkpoint, CheckpointRef))]
    refs = resolve_checkpoints([str(s) for s in specs], models_dir, strict=strict) if specs or default else []
    for m in models:
        if isinstance(m, Checkpoint):
            loaded.append(m)
        elif isinstance(m, CheckpointRef):
            refs.append(m)
    loaded += [load_checkpoint(r.path, expected_sha256=r.sha256, name=r.name) for r in refs]
    if default and dataset is not None:
        cfg = get_dataset_cfg(dataset)
        skipped = [c.name for c in loaded if not fits(c, cfg)]
        if skipped:
            log.warning("left out %s: they cannot be evaluated on %s (%d channels, %d classes)",
                        ", ".join(skipped), dataset, cfg.in_channels, cfg.num_classes)
        loaded = [c for c in loaded if fits(c, cfg)]
        if not loaded:
            raise UserError(f"no checkpoint in {models_dir} can be evaluated on {dataset}")
    return loaded
