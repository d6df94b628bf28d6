"""Figures of the transfer report: a source x target accuracy heatmap per attack and eps, and the
attention-vs-baseline transfer asymmetry against eps.

Model names are user-controlled: they reach matplotlib through :func:`.study_plots.plain` (a '$'
would start mathtext) and never reach a file name. Figures are saved by :func:`.plots.save_figure`
(PNG for the page, SVG for papers).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from .plots import finish_percent_axes, plt, save_figure, sns
from .study_plots import eps_scale, plain


def heatmap(cells: pd.DataFrame, sources: Sequence[str], targets: Sequence[str], attention: set[str], title: str,
            out_dir: Path, stem: str) -> str:
    """Accuracy (%) of each target (columns) on the adversarial examples crafted on each source (rows),
    annotated with one decimal; the white-box cells (source = target) outlined in black and marked 'WB'.

    ``cells``: transfer rows of one attack, parameters and eps (columns source, target, accuracy)."""
    table = (cells.pivot_table(index="source", columns="target", values="accuracy", aggfunc="last")
             .reindex(index=list(sources), columns=list(targets)) * 100)
    tag = {m: f"{plain(m)} ({'att' if m in attention else 'base'})" for m in {*sources, *targets}}
    k_rows, k_cols = len(sources), len(targets)
    fig, ax = plt.subplots(figsize=(max(4.8, 1.05 * k_cols + 2.6), max(3.4, 0.62 * k_rows + 1.8)))
    values = table.to_numpy(dtype=float)
    sns.heatmap(pd.DataFrame(values, index=[tag[s] for s in sources], columns=[tag[t] for t in targets]),
                annot=True, fmt=".1f", vmin=0, vmax=100, cmap="viridis", mask=~np.isfinite(values), linewidths=0.5,
                linecolor="white", cbar_kws={"label": "accuracy (%)"}, annot_kws={"fontsize": 8}, ax=ax)
    for i, s in enumerate(sources):
        for j, t in enumerate(targets):
            if s == t and np.isfinite(values[i, j]):
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="black", lw=2.2))
                ax.text(j + 0.95, i + 0.07, "WB", ha="right", va="top", fontsize=6, color="black", fontweight="bold",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.85})
    ax.set_xlabel("target (evaluated on the source's adversarial examples)")
    ax.set_ylabel("source (adversarial examples crafted on)")
    ax.set_title(plain(title), fontsize=10)
    ax.tick_params(axis="x", labelrotation=35, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    plt.setp(ax.get_xticklabels(), ha="right")
    return save_figure(fig, out_dir, stem)


def asymmetry_plot(rows: pd.DataFrame, title: str, out_dir: Path, stem: str) -> str:
    """Per (attention model, baseline) pair: the attention model's accuracy on examples crafted on the
    baseline (solid) and the baseline's accuracy on examples crafted on the attention model (dashed)
    against eps, with Wilson 95% bands.

    ``rows``: asymmetry rows of one attack (columns attention, baseline, eps, eps_label and
    ``to_attention_*`` / ``to_baseline_*`` accuracy, ci_low, ci_high)."""
    scale, xlabel = eps_scale(rows["eps_label"])
    pairs = sorted(set(zip(rows["attention"], rows["baseline"])))
    palette = dict(zip(pairs, sns.color_palette("tab10", max(len(pairs), 1))))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for pair in pairs:
        r = rows[(rows["attention"] == pair[0]) & (rows["baseline"] == pair[1])].sort_values("eps")
        x = scale * r["eps"].to_numpy(float)
        for side, style, text in (("to_attention", "-", f"{plain(pair[1])} \u2192 {plain(pair[0])}"),
                                  ("to_baseline", "--", f"{plain(pair[0])} \u2192 {plain(pair[1])}")):
            ax.plot(x, 100 * r[f"{side}_accuracy"], style, marker="o" if side == "to_attention" else "s", ms=3.5,
                    color=palette[pair], label=text)
            ax.fill_between(x, 100 * r[f"{side}_ci_low"], 100 * r[f"{side}_ci_high"], color=palette[pair],
                            alpha=0.12, lw=0)
    finish_percent_axes(ax, xlabel, "target accuracy on transferred examples (%)", plain(title),
                        title="source \u2192 target", title_fontsize=7)
    return save_figure(fig, out_dir, stem)
