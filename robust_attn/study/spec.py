"""What a study is: a study file (TOML) read into a frozen, validated :class:`StudySpec`.

A study answers an architecture question ("does attention change robustness?") across training
seeds: one training recipe, several architectures, several seeds, one evaluation. Everything is
checked here, before any training or attack runs, so a typo costs a one-line error and not an
hour of training. Relative paths in the file are relative to the file's own folder, so a study
runs the same from any working directory.

Example (``studies/attention-vs-baseline.toml``)::

    name = "attention-vs-baseline"
    architectures = ["vgg", "vgg-att3-concat-pc"]
    seeds = [0, 1, 2, 3, 4]
    checkpoints = ["../models"]          # folders searched for matching checkpoints

    [baselines]                          # optional; default: the baseline the registry declares
    "vgg-att3-concat-pc" = "vgg"

    [train]
    dataset = "cifar10-subset"
    data_dir = "~/data/cifar10-subset"
    epochs = 30
    width = 0.125
    batch_size = 32
    lr = 0.05

    [evaluate]                           # dataset default: the embedded set of the training dataset
    attacks = ["fgsm", "pgd"]
    eps = "0:8:1"

    [evaluate.attack_args.pgd]
    steps = 10

``[train] model_args = { depth = 56 }`` sets the architectures' own options (here a ResNet's depth),
each for the architectures that declare it; 0.3's ``depth = 56`` is read as that.

``[train] threat_model = "pgd"`` (or ``trades``, ``fast-fgsm``; default ``standard``) trains every
member adversarially, with ``threat_eps = "8/255"``, ``threat_steps``, ``threat_step_size``,
``trades_beta``, ``holdout`` and ``on_overfit`` as the ``train`` command's options (unset: the
paper's defaults, :mod:`robust_attn.threat_models`). The threat model is part of every member's key,
so a standard checkpoint is never taken for an adversarially trained member, nor one trained against
another threat or budget.
"""
from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..attacks import expand_attack_names, get_attack_cfg, is_corruption, listed_twice, parse_eps_grid, resolve_params
from ..attacks.grids import EpsGrid
from ..data import get_dataset_cfg
from ..errors import UserError, require_int
from ..models import get_model_cfg, list_models
from ..sweep import AttackSpec
from ..run.inputs import DEFAULT_EPS, DEFAULT_SEVERITIES, check_corruptions, check_grid_norms
from ..threat_models import resolve_threat
from ..train import TrainConfig
from ..train_defaults import TRAIN_DEFAULTS, OnOverfit, Schedule, parse_on_overfit

D = TRAIN_DEFAULTS
TOP_KEYS = ("name", "description", "architectures", "seeds", "checkpoints", "baselines", "train", "evaluate")
# ``depth = 56`` (0.3's key) is read as ``model_args = { depth = 56 }``.
MODEL_ARG_ALIASES = ("depth",)
# the training threat model's keys, named as TrainConfig's fields (the train command's --threat options)
THREAT_KEYS = ("threat_model", "threat_eps", "threat_steps", "threat_step_size", "trades_beta", "holdout", "on_overfit")
TRAIN_KEYS = ("dataset", "data_dir", "epochs", "width", "model_args", *MODEL_ARG_ALIASES, "batch_size", "lr", "momentum",
              "weight_decay", "schedule", "augment", *THREAT_KEYS)
EVALUATE_KEYS = ("dataset", "data_dir", "n", "attacks", "eps", "eps_unit", "attack_args", "seed", "batch_size")
TOP_REQUIRED = ("name", "architectures", "seeds", "train", "evaluate")

# The training-configuration fields that decide a checkpoint's weights (with the seed): a checkpoint
# whose recorded ``train_config`` agrees on all of them and on the architecture's model arguments is the
# study's member, whatever its file name.
RECIPE_FIELDS = ("architecture", "dataset", "epochs", "width", "seed", "batch_size", "lr", "momentum",
                 "weight_decay", "schedule", "augment")


@dataclass(frozen=True)
class Recipe:
    """The shared training recipe (everything but the architecture and the seed)."""

    dataset: str
    data_dir: Path | None = None
    epochs: int = D.epochs
    width: float = D.width
    batch_size: int = D.batch_size
    lr: float = D.lr
    momentum: float = D.momentum
    weight_decay: float = D.weight_decay
    schedule: Schedule = D.schedule
    augment: bool = D.augment
    # the architectures' own options; each goes to the architectures that declare it (others: their defaults)
    model_args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    threat_model: str = D.threat_model
    threat_eps: str | None = None
    threat_steps: int | None = None
    threat_step_size: str | None = None
    trades_beta: float | None = None
    holdout: int | None = None
    on_overfit: OnOverfit = D.on_overfit

    def train_config(self, architecture: str, seed: int, device: str = "auto") -> TrainConfig:
        declared = get_model_cfg(architecture).model_args
        return TrainConfig(architecture, self.dataset, None if self.data_dir is None else str(self.data_dir),
                           self.epochs, self.width, seed, self.batch_size, self.lr, self.momentum,
                           self.weight_decay, self.schedule, self.augment, device,
                           model_args={k: v for k, v in self.model_args.items() if k in declared},
                           **{k: getattr(self, k) for k in THREAT_KEYS})


@dataclass(frozen=True)
class Evaluation:
    """How every member is evaluated: one sweep over every checkpoint of the study."""

    attacks: tuple[AttackSpec, ...]
    grid: EpsGrid
    dataset: str | None = None
    data_dir: Path | None = None
    n: int | None = None
    seed: int = 0
    batch_size: int = 256


@dataclass(frozen=True)
class StudySpec:
    """A validated study: who is trained how, who is compared with whom, how they are attacked."""

    name: str
    file: Path
    architectures: tuple[str, ...]
    seeds: tuple[int, ...]
    recipe: Recipe
    evaluation: Evaluation
    baselines: Mapping[str, str] = field(default_factory=dict)
    checkpoints: tuple[Path, ...] = ()
    description: str = ""

    def members(self) -> list[tuple[str, int]]:
        """Every (architecture, seed) the study needs a checkpoint of."""
        return [(a, s) for a in self.architectures for s in self.seeds]

    def record(self) -> dict[str, Any]:
        """The resolved study as plain JSON values (for provenance)."""
        ev = self.evaluation
        return {
            "name": self.name, "description": self.description, "architectures": list(self.architectures),
            "seeds": list(self.seeds), "baselines": dict(self.baselines),
            "checkpoints": [str(p) for p in self.checkpoints],
            "train": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.recipe).items()},
            "evaluate": {"attacks": [{"name": a.name, "params": dict(a.params)} for a in ev.attacks],
                         "eps": list(ev.grid.values), "eps_labels": list(ev.grid.labels), "unit": ev.grid.unit.value,
                         "dataset": ev.dataset, "data_dir": None if ev.data_dir is None else str(ev.data_dir),
                         "n": ev.n, "seed": ev.seed, "batch_size": ev.batch_size},
        }


def recipe_key(train_config: Mapping[str, Any]) -> tuple:
    """The part of a training configuration that decides the weights (with the seed): the recipe fields
    and the architecture's model arguments, read from a ``model_args`` mapping (a :class:`TrainConfig`'s
    fields) or from top-level keys (a recorded ``train_config``, either version). A model argument left
    unset counts as its default, whether it was given or not."""
    record = dict(train_config)
    arch = record.get("architecture")
    declared = get_model_cfg(arch).model_args if arch in list_models() else {}
    given = {**{k: record[k] for k in declared if k in record}, **dict(record.get("model_args") or {})}
    args = tuple((k, default if given.get(k) is None else given[k]) for k, default in declared.items())
    return tuple(record.get(k) for k in RECIPE_FIELDS) + args + threat_key(record)


def threat_key(record: Mapping[str, Any]) -> tuple:
    """The training threat model's part of a recipe key, every default resolved, so an unset option and
    the paper's value written out compare equal, and a record without threat keys (standard training,
    any version) reads as ``standard``."""
    try:
        threat = resolve_threat(record.get("threat_model") or "standard", record.get("threat_eps"),
                                record.get("threat_steps"), record.get("threat_step_size"), record.get("trades_beta"))
    except UserError:  # a record no training could have written: matches nothing the study asks for
        return ("invalid", *(str(record.get(k)) for k in THREAT_KEYS))
    holdout = record.get("holdout")
    if not threat.adversarial:
        return (threat.name, holdout)
    return (threat.name, threat.eps, threat.steps, threat.step_size, threat.beta, holdout,
            str(record.get("on_overfit") or D.on_overfit.value))


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str, required: tuple[str, ...] = ()) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise UserError(f"{where}: unknown key {key!r}{hint}")
    for key in required:
        if key not in table:
            raise UserError(f"{where}: {key!r} is required")


def _table(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: [{key}] must be a table, got {value!r}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _number(value: Any, what: str, minimum: float = 0.0, strict: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        raise UserError(f"{what} must be a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _path(value: Any, base: Path, what: str) -> Path:
    path = Path(_string(value, what)).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))  # studies/../models -> models


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UserError(f"{what} must be a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{what} lists a name twice: {value}")
    return tuple(value)


def _seeds(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise UserError(f"seeds must be a non-empty list of integers, got {value!r}")
    seeds = tuple(require_int("seeds", s, 0) for s in value)
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds lists a seed twice: {list(seeds)}")
    return seeds


def _recipe(raw: dict[str, Any], base: Path) -> Recipe:
    _check_keys(raw, TRAIN_KEYS, "[train]", ("dataset",))
    dataset = _string(raw["dataset"], "[train] dataset")
    if not get_dataset_cfg(dataset).has_train:
        raise UserError(f"[train] dataset {dataset!r} has no training split")
    try:
        schedule = Schedule(raw.get("schedule", D.schedule.value))
    except ValueError:
        raise UserError(f"[train] schedule must be one of {[s.value for s in Schedule]}, "
                        f"got {raw['schedule']!r}") from None
    augment = raw.get("augment", D.augment)
    if not isinstance(augment, bool):
        raise UserError(f"[train] augment must be true or false, got {augment!r}")
    return Recipe(
        dataset=dataset,
        data_dir=_path(raw["data_dir"], base, "[train] data_dir") if "data_dir" in raw else None,
        epochs=require_int("[train] epochs", raw.get("epochs", D.epochs), 1),
        width=_number(raw.get("width", D.width), "[train] width"),
        batch_size=require_int("[train] batch_size", raw.get("batch_size", D.batch_size), 1),
        lr=_number(raw.get("lr", D.lr), "[train] lr"),
        momentum=_number(raw.get("momentum", D.momentum), "[train] momentum", strict=False),
        weight_decay=_number(raw.get("weight_decay", D.weight_decay), "[train] weight_decay", strict=False),
        schedule=schedule,
        augment=augment,
        model_args=_model_args(raw),
        threat_model=_string(raw.get("threat_model", D.threat_model), "[train] threat_model"),
        threat_eps=_budget(raw.get("threat_eps"), "[train] threat_eps"),
        threat_steps=None if raw.get("threat_steps") is None else require_int("[train] threat_steps", raw["threat_steps"], 1),
        threat_step_size=_budget(raw.get("threat_step_size"), "[train] threat_step_size"),
        trades_beta=None if raw.get("trades_beta") is None else _number(raw["trades_beta"], "[train] trades_beta",
                                                                        strict=False),
        holdout=None if raw.get("holdout") is None else require_int("[train] holdout", raw["holdout"], 0),
        on_overfit=parse_on_overfit(raw.get("on_overfit", D.on_overfit), "[train] on_overfit"),
    )


def _budget(value: Any, what: str) -> str | None:
    """An eps or step size as the train command takes it: text ('8/255') or a TOML number (0.1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UserError(f"{what} must be a number or text such as \"8/255\", got {value!r}")
    return value if isinstance(value, str) else repr(float(value))


def _model_args(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``[train] model_args`` with the 0.3 keys (``depth``) folded in; typed per architecture later."""
    table = raw.get("model_args", {})
    if not isinstance(table, dict):
        raise UserError(f"[train] model_args must be a table, e.g. model_args = {{ depth = 56 }}, got {table!r}")
    args = dict(table)
    for key in MODEL_ARG_ALIASES:
        if key in raw:
            if key in args and args[key] != raw[key]:
                raise UserError(f"[train] {key} = {raw[key]!r} and model_args {key} = {args[key]!r} disagree")
            args[key] = raw[key]
    return args


def _attacks(raw: dict[str, Any]) -> tuple[AttackSpec, ...]:
    requested = _names(raw["attacks"], "[evaluate] attacks")
    names = tuple(expand_attack_names(requested))  # "corruptions": all 15
    twice = listed_twice(requested)
    if twice:  # before anything trains
        raise UserError(f"[evaluate] attacks lists a name twice: {twice}")
    args = _table(raw, "attack_args", "[evaluate]")
    for name in args:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the study's attacks: {', '.join(names)}"
            raise UserError(f"[evaluate.attack_args] names {name!r}, which is not one of the study's attacks{hint}")
        if not isinstance(args[name], dict):
            raise UserError(f"[evaluate.attack_args.{name}] must be a table of parameters, got {args[name]!r}")
    specs = []
    for name in names:
        get_attack_cfg(name)
        try:
            params = resolve_params(name, args.get(name, {}))
        except UserError as exc:
            raise UserError(f"[evaluate.attack_args.{name}]: {exc}") from None
        specs.append(AttackSpec(name, params))
    return tuple(specs)


def _evaluation(raw: dict[str, Any], base: Path) -> Evaluation:
    _check_keys(raw, EVALUATE_KEYS, "[evaluate]", ("attacks",))
    attacks = _attacks(raw)
    default = DEFAULT_SEVERITIES if any(is_corruption(a.name) for a in attacks) else DEFAULT_EPS
    grid = parse_eps_grid(_string(raw.get("eps", default), "[evaluate] eps"), str(raw.get("eps_unit", "255")))
    try:
        grid = check_corruptions(grid, attacks, "write them as two studies (two study files)")  # severities
    except UserError as exc:
        raise UserError(f"[evaluate]: {exc}") from None
    check_grid_norms(grid, attacks)
    dataset = raw.get("dataset")
    if dataset is not None:
        get_dataset_cfg(_string(dataset, "[evaluate] dataset"))
    n = raw.get("n")
    return Evaluation(
        attacks=attacks, grid=grid, dataset=dataset,
        data_dir=_path(raw["data_dir"], base, "[evaluate] data_dir") if "data_dir" in raw else None,
        n=None if n is None else require_int("[evaluate] n", n, 1),
        seed=require_int("[evaluate] seed", raw.get("seed", 0), 0),
        batch_size=require_int("[evaluate] batch_size", raw.get("batch_size", 256), 1),
    )


def default_baselines(architectures: tuple[str, ...], named: Mapping[str, Any]) -> dict[str, str]:
    """Each attention architecture's baseline: the one ``named`` in the file, else the baseline its registry
    entry declares (``ModelCfg.baseline``), which must then be in the study. Architectures that declare none
    (backbones) have none: the pairing is the registry's declaration, never a rule on names."""
    for arch, base in named.items():
        if arch not in architectures:
            raise UserError(f"[baselines] names {arch!r}, which is not in architectures {list(architectures)}")
        if not isinstance(base, str) or base not in architectures:
            raise UserError(f"[baselines] {arch!r} = {base!r}: the baseline must be one of architectures "
                            f"{list(architectures)}")
        if base == arch:
            raise UserError(f"[baselines] {arch!r} cannot be its own baseline")
    out: dict[str, str] = {}
    for arch in architectures:
        cfg = get_model_cfg(arch)
        if arch in named:
            out[arch] = named[arch]
        elif cfg.baseline is not None:  # attention, SE and CBAM variants
            if cfg.baseline not in architectures:
                raise UserError(f"no baseline for {arch!r}: add its baseline {cfg.baseline!r} to architectures "
                                f"or name one in [baselines]")
            out[arch] = cfg.baseline
    return out


def parse_study(raw: Mapping[str, Any], file: Path) -> StudySpec:
    """Validate a study read from TOML (``file`` anchors its relative paths)."""
    _check_keys(raw, TOP_KEYS, str(file), TOP_REQUIRED)
    base = file.parent
    architectures = _names(raw["architectures"], "architectures")
    for arch in architectures:
        get_model_cfg(arch)
    recipe = _recipe(_table(raw, "train", str(file)), base)
    declared = sorted({k for a in architectures for k in get_model_cfg(a).model_args})
    for key, value in recipe.model_args.items():
        if key not in declared:
            close = difflib.get_close_matches(key, declared, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"[train] {key} {value!r}: none of {list(architectures)} takes a {key}{hint}")
    for arch in architectures:
        try:
            recipe.train_config(arch, 0).validate()
        except UserError as exc:
            raise UserError(f"[train]: {exc}") from None
    evaluation = _evaluation(_table(raw, "evaluate", str(file)), base)
    if evaluation.dataset is not None:
        trained, on = get_dataset_cfg(recipe.dataset), get_dataset_cfg(evaluation.dataset)
        if (trained.in_channels, trained.num_classes) != (on.in_channels, on.num_classes):
            raise UserError(f"[evaluate] dataset {on.name!r} ({on.in_channels} channels, {on.num_classes} classes) "
                            f"cannot evaluate models trained on {trained.name!r} ({trained.in_channels} channels, "
                            f"{trained.num_classes} classes)")
    folders = raw.get("checkpoints", [])
    if not isinstance(folders, list):
        raise UserError(f"checkpoints must be a list of folders, got {folders!r}")
    return StudySpec(
        name=_string(raw["name"], "name"),
        file=file,
        architectures=architectures,
        seeds=_seeds(raw["seeds"]),
        recipe=recipe,
        evaluation=evaluation,
        baselines=default_baselines(architectures, _table(raw, "baselines", str(file))),
        checkpoints=tuple(_path(f, base, "checkpoints entry") for f in folders),
        description=str(raw.get("description", "")),
    )


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file; every problem is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"study file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML ({exc})") from None
    return parse_study(raw, path)
