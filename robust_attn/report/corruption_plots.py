"""Figures of the common-corruptions section: accuracy vs severity per corruption group, and the strip of one
image under each corruption at each severity (so a reader sees what severity 3 means)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from .corruption import GROUPS, Strip
from .plots import BASELINE_COLOUR, model_colours, plt, save_figure


def severity_figure(curves: pd.DataFrame, roles: dict[str, str], out_dir: Path, stem: str) -> str:
    """Accuracy (%) vs severity, one panel per group (averaged over its corruptions; severity 0 is clean),
    one line per model as evaluated: baselines in black (squares), every other model in colour (circles)."""
    data = curves.assign(accuracy=100 * curves["accuracy"],
                         curve=[f"{m} ({d}, n={n})" if curves[["dataset", "n"]].drop_duplicates().shape[0] > 1 else m
                                for m, d, n in zip(curves["model"], curves["dataset"], curves["n"])])
    groups = [g for g in GROUPS if g in set(data["group"])] + sorted(set(data["group"]) - set(GROUPS))
    coloured = sorted({c for c, m in zip(data["curve"], data["model"]) if roles.get(m) != "baseline"})
    palette = model_colours(coloured)
    palette.update({c: BASELINE_COLOUR for c, m in zip(data["curve"], data["model"]) if roles.get(m) == "baseline"})
    markers = {c: "s" if palette[c] == BASELINE_COLOUR else "o" for c in palette}
    grid = sns.relplot(data=data, x="severity", y="accuracy", hue="curve", style="curve", markers=markers, dashes=False,
                       palette=palette, col="group", col_order=groups, col_wrap=min(len(groups), 4), kind="line",
                       height=2.8, aspect=1.0, facet_kws={"sharey": True})
    grid.set(ylim=(0, 100), xticks=sorted(data["severity"].unique()))
    grid.set_axis_labels("severity (0: clean)", "accuracy (%)")
    grid.set_titles("{col_name}")
    grid.figure.suptitle("accuracy under common corruptions, mean over each group's corruptions", y=1.03)
    return save_figure(grid.figure, out_dir, stem)


def strip_figure(strip: Strip, out_dir: Path, stem: str) -> str:
    """One row per corruption, one column per severity (0: the clean image), the image as the model saw it."""
    rows, columns = len(strip.rows), len(strip.severities)
    fig, axes = plt.subplots(rows, columns, figsize=(1.0 * columns + 1.4, 1.0 * rows), squeeze=False)
    for i, (name, group, images) in enumerate(strip.rows):
        for j, severity in enumerate(strip.severities):
            ax = axes[i][j]
            image = np.transpose(images[j], (1, 2, 0))
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"severity {severity}" if severity else "clean", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{name}\n({group})", fontsize=7, rotation=0, ha="right", va="center")
    return save_figure(fig, out_dir, stem, vector=False)


__all__ = ["severity_figure", "strip_figure"]
