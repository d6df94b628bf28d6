"""What the report's attention panels need, computed while the sweep runs and saved as an artifact
of the results folder, so the report never loads a model or runs an attack.

For every model with attention maps and every eps-bounded attack (random noise aside), the first
``shift_images`` evaluation images are followed through the grid: their attention maps clean and on
the attack's output at each eps, and for the first ``panel_images`` of them the adversarial inputs
themselves. One ``.npz`` per (model, attack) under ``OUT/attention/`` (layout in :func:`write_artifact`).
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..attacks import EpsGrid, get_attack_cfg
from ..distributed import Ranks
from ..files import atomic_write_bytes
from ..results import ATTENTION_DIR
from ..files import slug
from ..run.inputs import AttackSpec

SHIFT_IMAGES = 64
PANEL_IMAGES = 8


@dataclass(frozen=True)
class PanelSpec:
    """How many leading evaluation images are followed (``shift``) and shown (``shown``)."""

    shift: int = SHIFT_IMAGES
    shown: int = PANEL_IMAGES

    def clean_panel(self, attention_model: nn.Module, x: torch.Tensor, clean_pred: torch.Tensor) -> Panel:
        """The followed images clean: ``x`` the evaluation inputs, ``clean_pred`` the model's predictions on them."""
        k = min(self.shift, len(x))
        x = x[:k]
        return Panel(attention_maps(attention_model, x), x[:min(self.shown, k)].detach().cpu().clone(),
                     clean_pred[:k].clone(), torch.zeros(k, dtype=torch.bool))


def wants_panel(model: nn.Module, spec: AttackSpec) -> bool:
    """Panels are made for models with attention maps under eps-bounded attacks."""
    has_maps = bool(getattr(getattr(model, "cfg", None), "has_attention", False)) \
        and callable(getattr(model, "forward_with_attention", None))
    return has_maps and get_attack_cfg(spec.name).eps_bounded


@torch.inference_mode()
def attention_maps(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The attention map of every attended layer for ``x``: one N x H x W float32 tensor each, on CPU."""
    was_training = model.training
    model.eval()
    try:
        out = model.forward_with_attention(x.contiguous())
    finally:
        model.train(was_training)
    return tuple(m[:, 0].float().cpu() for m in out.attention_maps)


@dataclass
class Panel:
    """The followed images at one eps: attention maps (K x H x W per layer), the shown adversarial
    inputs (P x C x H x W) and the predictions (K)."""

    maps: tuple[torch.Tensor, ...]
    x_adv: torch.Tensor
    pred: torch.Tensor
    touched: torch.Tensor  # K: updated at this eps by this process (for merging across ranks)

    def copy(self) -> Panel:
        return Panel(tuple(m.clone() for m in self.maps), self.x_adv.clone(), self.pred.clone(),
                     torch.zeros_like(self.touched))

    def update(self, attention_model: nn.Module, idx: torch.Tensor, x_adv: torch.Tensor) -> None:
        """Take the attack's outputs for the followed images among ``idx`` (indices into the data)."""
        k = len(self.pred)
        sel = (idx < k).nonzero().flatten()
        if not len(sel):
            return
        rows, adv = idx[sel], x_adv[sel.to(x_adv.device)]
        for m, new in zip(self.maps, attention_maps(attention_model, adv)):
            m[rows] = new
        shown = rows < len(self.x_adv)
        self.x_adv[rows[shown]] = adv[shown.to(adv.device)].detach().float().cpu()
        self.touched[rows] = True

    def merged(self, ranks: Ranks) -> Panel:
        """Every rank's updates combined (each followed image was attacked by exactly one rank)."""
        if ranks.world == 1:
            return self
        shown_touched = self.touched[:len(self.x_adv)]
        return Panel(tuple(ranks.merge(m, self.touched) for m in self.maps), ranks.merge(self.x_adv, shown_touched),
                     self.pred, self.touched)

    def to_bytes(self) -> bytes:
        """The panel as a cell's ``.npz``. Maps stay float32, the precision the clean maps are computed
        and the artifact stores them at: a resumed sweep's stored maps at eps 0 then equal the clean
        ones exactly, so their shift reads 0 (float16 made it 9e-5). Inputs are float16, as in the
        artifact."""
        buf = io.BytesIO()
        np.savez_compressed(buf, x_adv=self.x_adv.numpy().astype(np.float16), pred=self.pred.numpy(),
                            **{f"maps_{j}": m.numpy().astype(np.float32) for j, m in enumerate(self.maps)})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Panel:
        with np.load(io.BytesIO(data)) as z:
            count = len([key for key in z.files if key.startswith("maps_")])
            maps = tuple(torch.from_numpy(z[f"maps_{j}"].astype(np.float32)) for j in range(count))
            pred = torch.from_numpy(z["pred"])
            return cls(maps, torch.from_numpy(z["x_adv"].astype(np.float32)), pred, torch.zeros(len(pred), dtype=torch.bool))


def maps_are_distributions(model: nn.Module) -> bool:
    """Whether the model's attended maps are distributions over positions (the paper's softmax
    attention) rather than gates (CBAM: each position in [0, 1], the total free), from its config; a
    model that does not say is taken to have distributions. The artifact records it, so the report
    can compare two maps with a measure that sees what changes in them."""
    return bool(getattr(getattr(model, "cfg", None), "maps_are_distributions", True))


def artifact_path(out: Path, model: str, spec: AttackSpec) -> Path:
    digest = hashlib.sha256(spec.params_json.encode()).hexdigest()[:8]
    return out / ATTENTION_DIR / f"{slug(model)}__{slug(spec.name)}__{digest}.npz"


def write_artifact(path: Path, model: str, spec: AttackSpec, grid: EpsGrid, layers: Sequence[str], labels: torch.Tensor,
                   clean: Panel, panels: Sequence[Panel], distributions: bool) -> Path:
    """One (model, attack): ``model``, ``attack``, ``attack_params`` (0-d strings),
    ``maps_are_distributions`` (0-d bool, ``distributions``), ``layers`` (names), ``eps`` / ``eps_label`` (E), ``index``, ``label``,
    ``clean_pred`` (K), ``adv_pred`` (E x K), ``x`` (P x C x H x W, float16), ``x_adv`` (E x P x C x H x W,
    float16), and per attended layer j ``clean_maps_j`` (K x H x W) and ``adv_maps_j`` (E x K x H x W),
    float32."""
    k = len(clean.pred)
    arrays = {
        "model": np.array(model), "attack": np.array(spec.name), "attack_params": np.array(spec.params_json),
        "maps_are_distributions": np.array(bool(distributions)),
        "layers": np.array(list(layers)), "eps": np.array(grid.values, dtype=np.float64),
        "eps_label": np.array(list(grid.labels)), "index": np.arange(k), "label": labels[:k].numpy(),
        "clean_pred": clean.pred.numpy(), "adv_pred": np.stack([p.pred.numpy() for p in panels]),
        "x": clean.x_adv.numpy().astype(np.float16),
        "x_adv": np.stack([p.x_adv.numpy() for p in panels]).astype(np.float16),
    }
    for j, m in enumerate(clean.maps):
        arrays[f"clean_maps_{j}"] = m.numpy().astype(np.float32)
        arrays[f"adv_maps_{j}"] = np.stack([p.maps[j].numpy() for p in panels]).astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
