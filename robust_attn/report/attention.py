"""Attention under attack: clean vs adversarial attention maps for a few images, and the mean
attention shift (Jensen-Shannon distance between clean and adversarial attention) per eps.

The only part of a report that runs models: it loads the checkpoints named in run.json (sha256
verified), recreates the adversarial examples on a few images exactly as the sweep walks its
grid, and runs forward passes to read the attention maps.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import jensenshannon

from ..errors import UserError
from . import plots

log = logging.getLogger(__name__)


def _pick_attack(frame: pd.DataFrame, requested: str | None) -> str | None:
    from ..attacks import get_attack_cfg

    bounded = [a for a in frame["attack"].unique() if get_attack_cfg(a).eps_bounded and not a.startswith("noise")]
    if requested:
        if requested not in bounded:
            raise UserError(f"panel attack {requested!r} is not an eps-bounded attack in these results ({bounded})")
        return requested
    return "fgsm" if "fgsm" in bounded else (sorted(bounded)[0] if bounded else None)


def _pick_eps(eps_values: list[float], requested: float | None) -> float:
    if requested is not None:
        close = [e for e in eps_values if abs(e - requested) < 1e-9]
        if not close:
            raise UserError(f"panel eps {requested} is not in the grid {eps_values}")
        return close[0]
    under = [e for e in eps_values if 0 < e <= 8 / 255 + 1e-9]
    return max(under) if under else min(e for e in eps_values if e > 0)


def _js(clean: torch.Tensor, adv: torch.Tensor) -> np.ndarray:
    """Jensen-Shannon distance (base 2, in [0, 1]) between per-image attention distributions."""
    p, q = clean.flatten(1).double().numpy(), adv.flatten(1).double().numpy()
    return np.array([jensenshannon(a, b, base=2) for a, b in zip(p, q)])


def attention_section(inputs, out: Path, panel_images: int, shift_images: int, panel_attack: str | None,
                      panel_eps: float | None) -> tuple[list[dict[str, Any]], str | None, str | None]:
    from ..attacks import EpsGrid, EpsUnit
    from ..checkpoints import load_checkpoint
    from ..data import load_dataset
    from ..sweep import AttackSpec, adversarial_examples
    from .build import _slug, is_attention

    frame = inputs.results
    attention_models = sorted(m for m, a in frame.groupby("model")["architecture"].first().items() if is_attention(a))
    if not attention_models:
        return [], None, "no attention model in these results"
    if panel_images == 0 and shift_images == 0:
        return [], None, "attention panels switched off"
    attack = _pick_attack(frame, panel_attack)
    if attack is None:
        return [], None, "no eps-bounded attack in these results"
    known = {c["name"]: {**c, "data_dir": r.get("data_dir"), "seed": r.get("seed", 0)}
             for r in inputs.runs for c in r.get("checkpoints", [])}
    panels, shift_rows, missing = [], [], []
    for model in attention_models:
        rows = frame[(frame["model"] == model) & (frame["attack"] == attack)].sort_values("eps")
        info = known.get(model)
        if rows.empty or info is None or not Path(info["path"]).is_file():
            missing.append(model)
            continue
        ckpt = load_checkpoint(info["path"], expected_sha256=info["sha256"] or None, name=model)
        net = ckpt.model.eval().to(memory_format=torch.contiguous_format)
        count = max(panel_images, shift_images)
        images = load_dataset(rows["dataset"].iloc[0], info.get("data_dir")).test
        x, y = images.float_batch(slice(0, min(count, len(images))))
        unit = EpsUnit.PER_255 if rows["norm"].iloc[0] == "Linf" else EpsUnit.RAW
        grid = EpsGrid(tuple(rows["eps"]), tuple(rows["eps_label"]), unit)
        spec = AttackSpec(attack, json.loads(rows["attack_params"].iloc[0]))
        walk = adversarial_examples(net, x, y, spec, grid, seed=int(rows["seed"].iloc[0]))
        with torch.inference_mode():
            clean = net.forward_with_attention(x)
            correct = clean.logits.argmax(1) == y
            chosen = _pick_eps(list(grid.values), panel_eps)
            for eps, label, (x_adv, pred) in zip(grid.values, grid.labels, walk):
                adv = net.forward_with_attention(x_adv)
                js = np.mean([_js(c, a) for c, a in zip(clean.attention_maps, adv.attention_maps)], axis=0)
                broken = (pred != y) & correct
                for outcome, mask in (("broken", broken), ("not broken", correct & ~broken)):
                    if mask.any():
                        shift_rows.append({"model": model, "norm": rows["norm"].iloc[0], "eps": eps, "eps_label": label,
                                           "outcome": outcome,
                                           "js_distance": float(js[mask.numpy()].mean()), "count": int(mask.sum())})
                if eps == chosen and panel_images:
                    k = min(panel_images, len(x))
                    layers = [f"layer {n}" for n in ckpt.model.cfg.attention_layers]
                    png = plots.attention_panel(
                        x[:k].permute(0, 2, 3, 1).numpy(), x_adv[:k].permute(0, 2, 3, 1).numpy(),
                        [m[:k, 0].numpy() for m in clean.attention_maps], [m[:k, 0].numpy() for m in adv.attention_maps],
                        layers, f"{model}: {attack} at eps {label}", out, f"attention_{_slug(model)}")
                    panels.append({"model": model, "png": png, "attack": attack, "eps_label": label,
                                   "clean_pred": clean.logits.argmax(1)[:k].tolist(), "adv_pred": pred[:k].tolist(),
                                   "labels": y[:k].tolist()})
    shift_png = None
    if shift_rows:
        shift = pd.DataFrame(shift_rows)
        from ..results import write_csv

        write_csv(shift, out / "attention_shift.csv")
        shift_png = plots.shift_plot(shift, out, "attention_shift")
    note = f"checkpoints not found for {', '.join(missing)} (run.json gives their paths)" if missing else None
    return panels, shift_png, note
