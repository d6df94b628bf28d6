"""Bring your own model: any ``torch.nn.Module`` that maps [0, 1] images to logits, swept like a checkpoint.

Two ways in (the third, plugins that register architectures, goes through the model registry's
``robust_attn.models`` entry-point group: see :mod:`robust_attn.registry`):

* Python: ``robust_attn.run_sweep({"mynet": module}, ["fgsm"], "0:8:1", data="cifar10-embedded")``, or
  :class:`UserModel` items (``UserModel("mynet", module)``) in the list of models, beside checkpoint
  names.
* A spec string, on the command line (``robust-attn sweep --models pkg.mod:build --dataset ...``) or
  in the Python list: ``package.module:function`` (imported from ``sys.path`` or the current folder)
  or ``path/to/file.py:function`` (that file alone is executed, with its folder on ``sys.path``
  while it loads). Only the module named is imported; the function is called with no arguments and
  must return the module to sweep, which is named after the function (after the whole spec where
  that name is taken by another model).

The module receives float32 ``N x C x H x W`` images in [0, 1] (the evaluation dataset's channels,
no normalisation: put yours inside the module) and must return floating ``N x num_classes`` logits.
Before any attack runs, a copy of it is probed on two evaluation images; a wrong shape or dtype,
non-finite logits or an exception is a one-line :class:`UserError` naming it. The sweep works on a
deep copy (moved to the device, eval mode, channels_last), never on the caller's module.

Rows of a user model carry the sha256 of its ``state_dict`` (:func:`state_dict_sha256`) as
``checkpoint_sha256``, the module's class name as ``architecture``, ``NaN`` width and
``trained_on`` ``unknown``. The hash covers the weights and buffers, not the code: resuming a
results folder after editing ``forward`` alone reuses the stored cells, so use a fresh ``--out``.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import importlib
import importlib.util
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from .checkpoints import Checkpoint
from .data import get_dataset_cfg
from .errors import UserError

PYTHON_SOURCE = "<python object>"
TRAINED_ON = "unknown"
PROBE_IMAGES = 2

_SPEC = re.compile(r"^(?P<module>[^:]+):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True, eq=False)
class UserModel:
    """A module to sweep under ``name``: float ``N x C x H x W`` images in [0, 1] -> ``N x num_classes`` logits.

    ``source`` says where it came from (the ``module:function`` spec; a Python object by default) and
    is recorded in the run log as the model's path.
    """

    name: str
    module: nn.Module
    source: str = PYTHON_SOURCE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise UserError(f"a user model needs a non-empty name, got {self.name!r}")
        if not isinstance(self.module, nn.Module):
            raise UserError(f"model {self.name!r} is a value of type {type(self.module).__name__}, "
                            f"not a torch.nn.Module")


def is_spec(text: str) -> bool:
    """Whether ``text`` reads as ``package.module:function`` or ``path/to/file.py:function``."""
    m = _SPEC.match(text)
    if not m:
        return False
    module = m["module"]
    return module.endswith(".py") or all(part.isidentifier() for part in module.split("."))


def load_spec(spec: str) -> UserModel:
    """Import the module a spec names (nothing else), call its function and check it returned a module."""
    m = _SPEC.match(spec)
    if not m or not is_spec(spec):
        raise UserError(f"model spec {spec!r} is not 'package.module:function' or 'path/to/file.py:function'")
    where, function = m["module"], m["function"]
    module = _import_file(where, spec) if where.endswith(".py") else _import_module(where, spec)
    fn = getattr(module, function, None)
    if fn is None:
        public = [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = difflib.get_close_matches(function, public, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UserError(f"model spec {spec!r}: {where} has no function {function!r}{hint}")
    if not callable(fn):
        raise UserError(f"model spec {spec!r}: {where}.{function} is a {type(fn).__name__}, not a function")
    try:
        net = fn()
    except Exception as exc:
        raise UserError(f"model spec {spec!r}: calling {function}() raised {_why(exc)}") from exc
    if not isinstance(net, nn.Module):
        raise UserError(f"model spec {spec!r}: {function}() returned a value of type {type(net).__name__}, "
                        f"not a torch.nn.Module")
    return UserModel(function, net, spec)


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over the state dict in sorted key order: per entry its key, dtype, shape and raw bytes
    (CPU, contiguous, native byte order; non-tensor extra state by its ``repr``)."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode() + b"\0")
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode() + b"\0")
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(f"extra:{value!r}".encode() + b"\0")
    return h.hexdigest()


def as_checkpoint(model: UserModel, dataset: str) -> Checkpoint:
    """The sweep's view of a user model: a :class:`Checkpoint` whose metadata fits ``dataset``."""
    cfg = get_dataset_cfg(dataset)
    metadata = {
        "architecture": type(model.module).__name__ or "user",
        "width": math.nan,
        "num_classes": cfg.num_classes,
        "in_channels": cfg.in_channels,
        "dataset": TRAINED_ON,
        "mean": None,
        "std": None,
        "user_model": model.source,
    }
    return Checkpoint(model.name, Path(model.source), state_dict_sha256(model.module), metadata, model.module)


def is_user_checkpoint(ckpt: Checkpoint) -> bool:
    return "user_model" in ckpt.metadata


def probe(ckpt: Checkpoint, x: torch.Tensor, dataset: str, device: torch.device, channels_last: bool,
          gradient: bool = False) -> None:
    """Run a copy of the model (prepared as the sweep prepares it) on the first images of ``x``
    (uint8 pixels) and check its logits: floating, ``N x num_classes``, finite; with ``gradient`` (the
    sweep runs a gradient attack) also that the logits have a gradient with respect to the input, so
    a model that detaches its input or runs under no_grad is one line here, not a traceback mid-sweep."""
    name, num_classes = ckpt.name, ckpt.metadata["num_classes"]
    xb = x[:PROBE_IMAGES].to(device).float().div_(255.0)
    k = len(xb)
    images = f"{k} {dataset} image{'s' if k != 1 else ''}"
    try:
        net = copy.deepcopy(ckpt.model).to(device).eval()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            xb = xb.contiguous(memory_format=torch.channels_last)
        xb.requires_grad_(gradient)
        with torch.set_grad_enabled(gradient):
            out = net(xb)
    except Exception as exc:
        raise UserError(f"model {name!r} raised {_why(exc)} on {images}") from exc
    if not isinstance(out, torch.Tensor):
        raise UserError(f"model {name!r} returned a value of type {type(out).__name__} on {images}; "
                        f"expected a tensor of logits")
    if tuple(out.shape) != (k, num_classes):
        raise UserError(f"model {name!r} returned shape {tuple(out.shape)} on {images}; expected {(k, num_classes)}")
    if not out.is_floating_point():
        raise UserError(f"model {name!r} returned {out.dtype} logits on {images}; expected a floating dtype")
    if not bool(torch.isfinite(out).all()):
        raise UserError(f"model {name!r} returned non-finite logits on {images}")
    if gradient:
        try:
            torch.autograd.grad(out.float().logsumexp(1).sum(), xb)
        except RuntimeError as exc:
            raise UserError(f"model {name!r} gives no gradient with respect to its input on {images} "
                            f"({_why(exc)}); gradient attacks cannot run on it: use noise or square") from exc
        # a zero or non-finite gradient is left to the sweep: its sanity checks diagnose masking


# ---------------------------------------------------------------- importing the user's code

def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def _on_path(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while the block runs (if it was not there already)."""
    if folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def _import_module(name: str, spec: str) -> ModuleType:
    try:
        with _on_path(os.getcwd()):
            return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UserError(f"model spec {spec!r}: no module named {exc.name!r} "
                            f"(it must be importable from the current folder or sys.path)") from None
        raise UserError(f"model spec {spec!r}: importing {name} raised {_why(exc)}") from exc
    except Exception as exc:
        raise UserError(f"model spec {spec!r}: importing {name} raised {_why(exc)}") from exc


def _import_file(where: str, spec: str) -> ModuleType:
    path = Path(where)
    if not path.is_file():
        raise UserError(f"model spec {spec!r}: file {where} does not exist")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"_robust_attn_user_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    if module_name in sys.modules:  # two functions of one file: it runs once
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"model spec {spec!r}: {where} cannot be loaded as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        with _on_path(str(resolved.parent)):
            module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"model spec {spec!r}: running {where} raised {_why(exc)}") from exc
    return module
