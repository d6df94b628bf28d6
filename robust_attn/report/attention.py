"""Attention under attack, from the sweep's attention artifacts (``OUT/attention/*.npz``): clean vs
adversarial attention maps for a few images, and the mean attention shift (Jensen-Shannon distance
between the clean and the adversarial attention distribution) per eps, for points the attack broke
and points it did not.

Two kinds of map, two measures (:func:`measure`). The paper's maps are distributions over positions:
the Jensen-Shannon distance compares them, and 0 means the same distribution. CBAM's spatial gates
are not: each position is in [0, 1] and their total is free, so JS (which normalises both to sum 1)
reads a gate scaled everywhere alike (all ones vs all 0.01) as 0. Gates get the mean absolute gate
change as well, which sees scale: 0 means every gate value is unchanged. The artifact says which
kind a model has (``maps_are_distributions``).

"Is the attention itself robust?" (:func:`robustness_section`): per attention model, the shift per
attended layer and eps under an attack on the maps (``attention-shift``) and under ``pgd``, the
share of images whose most-attended location moves, and the most-moved examples under
``attention-shift`` at its largest eps (same label, different explanation).

No model is loaded and no attack is run: the sweep saved the maps and adversarial inputs while it
attacked (layout in ``robust_attn.sweep.panels.write_artifact``).
"""
from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from ..errors import UserError
from ..results import write_csv
from . import plots
from ..files import slug
from .kit.labels import NOISE, SINGLE_STEP, attention_objective
from .inputs import Artifact, RunInputs

log = logging.getLogger(__name__)

DEFAULT_PANEL_EPS = 8 / 255
SHIFT_ATTACK = "attention-shift"  # the attack on the maps
LABEL_ATTACK = "pgd"  # the label attack it is compared with
MOST_MOVED = 4  # examples in the most-moved panel
ROBUSTNESS_CSV = "attention_robustness.csv"
ROBUSTNESS_COLUMNS = ["model", "attack", "layer", "eps", "eps_label", "mean_js", "moved_fraction", "n",
                      "label_kept_fraction", "attack_params", "attack_label", "norm", "layer_index",
                      "mean_js_label_kept", "mean_js_label_changed", "measure", "mean_gate_change"]
JS = "Jensen-Shannon distance"
GATE_CHANGE = "mean absolute gate change"


@dataclass(frozen=True)
class Section:
    panels: list[dict[str, Any]]
    shift_png: str | None
    note: str | None
    attack_label: str | None


def _pick_attack(inputs: RunInputs, artifacts: list[Artifact], requested: str | None) -> tuple[str, str] | None:
    """The (attack, attack_params) for the panels, among those with artifacts: ``requested`` may be an
    attack name or a label like ``pgd (steps=20)``; by default fgsm, else the first label attack by
    label (an attack on the maps only when there is nothing else: it has its own section). Kinds and
    objectives as the rows and the run logs' catalogs record them."""
    kinds = _kinds(inputs)
    candidates = {(a.attack, a.attack_params): inputs.labels.get((a.attack, a.attack_params), a.attack)
                  for a in artifacts if kinds.get(a.attack) != NOISE}
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
    aimed = _aimed_attacks(inputs)
    return next((k for k in ordered if kinds.get(k[0]) == SINGLE_STEP),
                next((k for k in ordered if k[0] not in aimed), ordered[0]))


def _kinds(inputs: RunInputs) -> dict[str, str]:
    """Each attack's recorded kind: the run logs' catalogs, overridden by the rows."""
    kinds = {name: str(entry.get("kind", "")) for name, entry in inputs.catalog.items()}
    kinds.update(zip(inputs.results["attack"].astype(str), inputs.results["attack_kind"].astype(str)))
    return kinds


def _aimed_attacks(inputs: RunInputs) -> set[str]:
    """The attacks that aim at the attention maps (see :func:`.kit.labels.attention_objective`): in the rows,
    or in the run logs' catalogs."""
    frame = inputs.results
    catalog = {name for name, entry in inputs.catalog.items() if entry.get("objective") == "attention"}
    return set(frame.loc[attention_objective(frame).to_numpy(), "attack"].astype(str)) | catalog


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


def gate_change(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Mean absolute change of the gate values (in [0, 1] for gates in [0, 1]) between per-image maps
    (K x H x W): unlike JS it sees a change of the gate's overall level."""
    p = clean.reshape(len(clean), -1).astype(np.float64)
    q = adv.reshape(len(adv), -1).astype(np.float64)
    return np.abs(q - p).mean(axis=1)


def distributions(z: dict[str, np.ndarray]) -> bool:
    """Whether an artifact's maps are distributions over positions (its ``maps_are_distributions``;
    artifacts written before the sweep recorded it: whether every clean map sums to 1)."""
    if "maps_are_distributions" in z:
        return bool(z["maps_are_distributions"])
    count = len([k for k in z if k.startswith("clean_maps_")])
    sums = [z[f"clean_maps_{j}"].reshape(len(z[f"clean_maps_{j}"]), -1).sum(1) for j in range(count)]
    return all(np.allclose(t, 1, atol=1e-3) for t in sums)


def measure(z: dict[str, np.ndarray]) -> str:
    """The shift measure that sees every change of this artifact's maps: JS for distributions, the
    mean absolute gate change for gates."""
    return JS if distributions(z) else GATE_CHANGE


def shift(z: dict[str, np.ndarray], clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Per image, the artifact's own :func:`measure` between clean and attacked maps (K x H x W)."""
    return _js(clean, adv) if distributions(z) else gate_change(clean, adv)


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
            gates = not distributions(z)
            for e in range(len(eps)):
                pairs = [(z[f"clean_maps_{j}"][:k], z[f"adv_maps_{j}"][e, :k]) for j in range(count)]
                js = np.mean([_js(c, a) for c, a in pairs], axis=0)
                change = np.mean([gate_change(c, a) for c, a in pairs], axis=0) if gates else None
                broken = correct & (adv_pred[e, :k] != labels[:k])
                for outcome, mask in (("broken", broken), ("not broken", correct & ~broken)):
                    if mask.any():
                        shift_rows.append({"model": model, "attack": key[0], "attack_params": key[1],
                                           "attack_label": label, "norm": norm, "eps": float(eps[e]),
                                           "eps_label": eps_labels[e], "outcome": outcome,
                                           "js_distance": float(js[mask].mean()), "count": int(mask.sum()),
                                           "measure": measure(z),
                                           "gate_change": float(change[mask].mean()) if gates else float("nan")})
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


# ------------------------------------------------------------------ is the attention itself robust?

@dataclass(frozen=True)
class RobustnessSection:
    models: list[dict[str, Any]]  # per attention model with artifacts: plots, panel, table, note
    csv: str | None  # ROBUSTNESS_CSV when written
    note: str | None
    missing: tuple[str, ...] = ()  # the attention models without an artifact of either attack, said in one line
    command: str | None = None  # the sweep that would add them


def argmax_moved(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Per image (K): does its most-attended location (the argmax of its map, K x H x W) move?"""
    c = np.asarray(clean).reshape(len(clean), -1)
    a = np.asarray(adv).reshape(len(adv), -1)
    return c.argmax(1) != a.argmax(1)


def robustness_rows(z: dict[str, np.ndarray], model: str, attack: str, attack_params: str, label: str, norm: str,
                    limit: int) -> list[dict[str, Any]]:
    """Per attended layer and eps, on the clean-correct ones among the first ``limit`` followed images:
    the mean JS distance between clean and attacked maps, the share whose most-attended location
    moves, how many, the share whose prediction is unchanged, the mean JS of those that kept their
    prediction and of those that did not (NaN where there are none), which :func:`measure` the maps
    get, and for gates the mean absolute gate change (NaN for distributions)."""
    k = min(limit, len(z["label"]))
    clean_pred, labels = z["clean_pred"][:k], z["label"][:k]
    correct = clean_pred == labels
    n = int(correct.sum())
    if not n:
        return []
    eps, eps_labels = z["eps"].astype(float), [str(e) for e in z["eps_label"]]
    gates, name = not distributions(z), measure(z)
    rows = []
    for j, layer in enumerate(str(x) for x in z["layers"]):
        clean = z[f"clean_maps_{j}"][:k][correct]
        for e in range(len(eps)):
            adv = z[f"adv_maps_{j}"][e, :k][correct]
            js, moved = _js(clean, adv), argmax_moved(clean, adv)
            kept = z["adv_pred"][e, :k][correct] == clean_pred[correct]
            rows.append({"model": model, "attack": attack, "layer": layer, "eps": float(eps[e]),
                         "eps_label": eps_labels[e], "mean_js": float(js.mean()), "moved_fraction": float(moved.mean()),
                         "n": n, "label_kept_fraction": float(kept.mean()), "attack_params": attack_params,
                         "attack_label": label, "norm": norm, "layer_index": j,
                         "mean_js_label_kept": float(js[kept].mean()) if kept.any() else float("nan"),
                         "mean_js_label_changed": float(js[~kept].mean()) if (~kept).any() else float("nan"),
                         "measure": name,
                         "mean_gate_change": float(gate_change(clean, adv).mean()) if gates else float("nan")})
    return rows


def _most_moved(z: dict[str, np.ndarray], limit: int, count: int) -> tuple[int, list[int], np.ndarray]:
    """At the artifact's largest eps: its index, and among the images whose inputs it stores (and
    the first ``limit`` followed), up to ``count`` clean-correct ones that kept their label, most
    moved first (the maps' :func:`measure`, mean over layers), with their shifts."""
    e = int(np.argmax(z["eps"]))
    p = min(len(z["x"]), limit, len(z["label"]))
    layers = len(z["layers"])
    js = np.mean([shift(z, z[f"clean_maps_{j}"][:p], z[f"adv_maps_{j}"][e, :p]) for j in range(layers)], axis=0) \
        if p else np.zeros(0)
    ok = (z["clean_pred"][:p] == z["label"][:p]) & (z["adv_pred"][e, :p] == z["clean_pred"][:p]) & (js > 0)
    order = [int(i) for i in np.argsort(-js, kind="stable") if ok[i]][:count]
    return e, order, js


def _sweep_command(inputs: RunInputs, models: list[str]) -> str:
    paths = {c.get("name"): c.get("path") for r in inputs.runs for c in r.checkpoints if isinstance(c, dict)}
    named = ",".join(str(paths.get(m) or m) for m in models)
    return f"robust-attn sweep --models {named} --attack {SHIFT_ATTACK},{LABEL_ATTACK} --eps 0:8:1"


def robustness_section(inputs: RunInputs, out: Path, panel_images: int, shift_images: int,
                       attention: set[str]) -> RobustnessSection:
    """Per attention model with artifacts for an attack on the maps and/or ``pgd``: the shift per
    layer vs eps (label kept vs changed), the share whose most-attended location moves, the most-moved
    examples under the attack on the maps at its largest eps, and ``attention_robustness.csv``."""
    frame = inputs.results
    models = sorted(attention & set(frame["model"]))
    if not models:
        return RobustnessSection([], None, "no attention model in these results")
    if shift_images == 0:
        return RobustnessSection([], None, "attention panels switched off")
    aimed = _aimed_attacks(inputs)
    norms = frame.drop_duplicates("attack").set_index("attack")["norm"].astype(str).to_dict()
    sections, all_rows, missing = [], [], []
    for model in models:
        arts = [a for a in inputs.artifacts if a.model == model and (a.attack in aimed or a.attack == LABEL_ATTACK)]
        arts.sort(key=lambda a: (a.attack not in aimed, inputs.labels.get((a.attack, a.attack_params), a.attack)))
        command = _sweep_command(inputs, [model])
        if not arts:
            missing.append(model)
            continue
        rows, panel, notes = [], None, []
        for art in arts:
            try:
                z = _load(art.path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a damaged artifact costs its rows
                log.warning("cannot read %s (%s)", art.path, exc)
                notes.append(f"cannot read {art.path.name}")
                continue
            label = inputs.labels.get((art.attack, art.attack_params), art.attack)
            new = robustness_rows(z, model, art.attack, art.attack_params, label, norms.get(art.attack, "Linf"),
                                  shift_images)
            if not new:
                notes.append(f"{label}: no clean-correct image among the followed ones")
            rows += new
            if panel is None and art.attack in aimed and panel_images:
                e, order, moved = _most_moved(z, shift_images, min(panel_images, MOST_MOVED))
                if order:
                    chw_to_hwc = (0, 2, 3, 1)
                    count = len(z["layers"])
                    png = plots.attention_panel(
                        z["x"][order].astype(np.float32).transpose(chw_to_hwc),
                        z["x_adv"][e, order].astype(np.float32).transpose(chw_to_hwc),
                        [z[f"clean_maps_{j}"][order] for j in range(count)],
                        [z[f"adv_maps_{j}"][e, order] for j in range(count)],
                        [str(x) for x in z["layers"]], f"{model}: most-moved maps under {label} at eps {z['eps_label'][e]}",
                        out, f"attention_robustness_{slug(model)}_panel")
                    panel = {"png": png, "attack": label, "eps_label": str(z["eps_label"][e]), "measure": measure(z),
                             "examples": [{"index": int(z["index"][i]), "label": int(z["label"][i]),
                                           "clean_pred": int(z["clean_pred"][i]), "adv_pred": int(z["adv_pred"][e, i]),
                                           "shift": float(moved[i])} for i in order]}
        attacks_present = {r["attack"] for r in rows}
        has_shift, has_pgd = bool(attacks_present & aimed), LABEL_ATTACK in attacks_present
        add = None
        if has_shift != has_pgd:
            shown, add = (SHIFT_ATTACK, LABEL_ATTACK) if has_shift else (LABEL_ATTACK, SHIFT_ATTACK)
            notes.append(f"only {shown} has attention artifacts for {model}: shown alone")
        entry: dict[str, Any] = {"model": model, "note": "; ".join(notes) or None, "add": add, "command": command,
                                 "panel": panel}
        if rows:
            data = pd.DataFrame(rows)
            entry["measure"] = data["measure"].iloc[0]
            entry["gates"] = entry["measure"] == GATE_CHANGE
            all_rows += rows
            stem = f"attention_robustness_{slug(model)}"
            entry["js_png"] = plots.attention_robustness_plot(data, model, out, f"{stem}_js")
            entry["moved_png"] = plots.moved_fraction_plot(data, model, out, f"{stem}_moved")
            top = data[data["eps"] == data.groupby("attack_label")["eps"].transform("max")]
            entry["table"] = top.sort_values(["attack", "attack_label", "layer_index"]).to_dict("records")
        sections.append(entry)
    csv = None
    if all_rows:
        write_csv(pd.DataFrame(all_rows)[ROBUSTNESS_COLUMNS], out / ROBUSTNESS_CSV)
        csv = ROBUSTNESS_CSV
    return RobustnessSection(sections, csv, None, tuple(missing), _sweep_command(inputs, missing) if missing else None)
