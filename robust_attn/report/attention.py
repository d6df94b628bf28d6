"""Attention under attack, from the sweep's attention artifacts (``OUT/attention/*.npz``): clean vs
adversarial attention maps for a few images, and the mean attention shift (Jensen-Shannon distance
between the clean and the adversarial attention distribution) per eps, for points the attack broke
and points it did not.

No model is loaded and no attack is run: the sweep saved the maps and adversarial inputs while it
attacked (layout in ``robust_attn.sweep.panels.write_artifact``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from ..errors import UserError
from ..results import write_csv
from . import plots
from .common import NOISE, slug
from .inputs import Artifact, RunInputs

log = logging.getLogger(__name__)

DEFAULT_PANEL_EPS = 8 / 255


@dataclass(frozen=True)
class Section:
    panels: list[dict[str, Any]]
    shift_png: str | None
    note: str | None
    attack_label: str | None


def _pick_attack(inputs: RunInputs, artifacts: list[Artifact], requested: str | None) -> tuple[str, str] | None:
    """The (attack, attack_params) for the panels, among those with artifacts: ``requested`` may be an
    attack name or a label like ``pgd (steps=20)``; by default fgsm, else the first by label."""
    candidates = {(a.attack, a.attack_params): inputs.labels.get((a.attack, a.attack_params), a.attack)
                  for a in artifacts if a.attack not in NOISE.values()}
    ordered = sorted(candidates, key=lambda k: candidates[k])
    if requested:
        chosen = [k for k in ordered if requested in (k[0], candidates[k])]
        if not chosen:
            names = sorted(set(candidates.values())) or ["none"]
            raise UserError(f"panel attack {requested!r} has no attention artifacts in these results "
                            f"(attacks with artifacts: {', '.join(names)})")
        return chosen[0]
    if not ordered:
        return None
    return next((k for k in ordered if k[0] == "fgsm"), ordered[0])


def _pick_eps(eps_values: np.ndarray, requested: float | None) -> int:
    if requested is not None:
        close = np.flatnonzero(np.isclose(eps_values, requested, rtol=0, atol=1e-9))
        if not len(close):
            raise UserError(f"panel eps {requested} is not in the grid {list(map(float, eps_values))}")
        return int(close[0])
    under = np.flatnonzero((eps_values > 0) & (eps_values <= DEFAULT_PANEL_EPS + 1e-9))
    if len(under):
        return int(under[np.argmax(eps_values[under])])
    positive = np.flatnonzero(eps_values > 0)
    return int(positive[np.argmin(eps_values[positive])]) if len(positive) else 0


def _js(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2, in [0, 1]) between per-image attention distributions (K x H x W)."""
    p = clean.reshape(len(clean), -1).astype(np.float64)
    q = adv.reshape(len(adv), -1).astype(np.float64)
    return np.array([jensenshannon(a, b, base=2) for a, b in zip(p, q)])


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def attention_section(inputs: RunInputs, out: Path, panel_images: int, shift_images: int,
                      panel_attack: str | None, panel_eps: float | None, attention: set[str]) -> Section:
    frame = inputs.results
    models = sorted(attention & set(frame["model"]))
    if not models:
        return Section([], None, "no attention model in these results", None)
    if panel_images == 0 and shift_images == 0:
        return Section([], None, "attention panels switched off", None)
    artifacts = [a for a in inputs.artifacts if a.model in models]
    key = _pick_attack(inputs, artifacts, panel_attack)
    if key is None:
        return Section([], None, "no attention artifacts in these results (the sweep saves them for attention models "
                                 "under eps-bounded attacks other than noise)", None)
    label = inputs.labels.get(key, key[0])
    panels, shift_rows, missing = [], [], []
    for model in models:
        art = next((a for a in artifacts if a.model == model and (a.attack, a.attack_params) == key), None)
        if art is None:
            missing.append(model)
            continue
        try:
            z = _load(art.path)
        except Exception as exc:
            log.warning("cannot read %s (%s)", art.path, exc)
            missing.append(model)
            continue
        eps, eps_labels = z["eps"].astype(float), [str(e) for e in z["eps_label"]]
        layers = [str(x) for x in z["layers"]]
        count = len([k for k in z if k.startswith("clean_maps_")])
        labels, clean_pred, adv_pred = z["label"], z["clean_pred"], z["adv_pred"]
        k = min(shift_images, len(labels))
        norm = frame.loc[frame["attack"] == key[0], "norm"].iloc[0] if (frame["attack"] == key[0]).any() else "Linf"
        if k:
            correct = clean_pred[:k] == labels[:k]
            for e in range(len(eps)):
                js = np.mean([_js(z[f"clean_maps_{j}"][:k], z[f"adv_maps_{j}"][e, :k]) for j in range(count)], axis=0)
                broken = correct & (adv_pred[e, :k] != labels[:k])
                for outcome, mask in (("broken", broken), ("not broken", correct & ~broken)):
                    if mask.any():
                        shift_rows.append({"model": model, "attack": key[0], "attack_params": key[1],
                                           "attack_label": label, "norm": norm, "eps": float(eps[e]),
                                           "eps_label": eps_labels[e], "outcome": outcome,
                                           "js_distance": float(js[mask].mean()), "count": int(mask.sum())})
        p = min(panel_images, len(z["x"]))
        if p:
            e = _pick_eps(eps, panel_eps)
            chw_to_hwc = (0, 2, 3, 1)
            png = plots.attention_panel(
                z["x"][:p].astype(np.float32).transpose(chw_to_hwc),
                z["x_adv"][e, :p].astype(np.float32).transpose(chw_to_hwc),
                [z[f"clean_maps_{j}"][:p] for j in range(count)], [z[f"adv_maps_{j}"][e, :p] for j in range(count)],
                layers, f"{model}: {label} at eps {eps_labels[e]}", out, f"attention_{slug(model)}")
            panels.append({"model": model, "png": png, "attack": label, "eps_label": eps_labels[e],
                           "clean_pred": clean_pred[:p].tolist(), "adv_pred": adv_pred[e, :p].tolist(),
                           "labels": labels[:p].tolist()})
    shift_png = None
    if shift_rows:
        shift = pd.DataFrame(shift_rows)
        write_csv(shift, out / "attention_shift.csv")
        shift_png = plots.shift_plot(shift, out, "attention_shift")
    note = (f"no {label} attention artifact for {', '.join(missing)} (the sweep writes OUT/attention/ for attention "
            "models)") if missing else None
    return Section(panels, shift_png, note, label)
