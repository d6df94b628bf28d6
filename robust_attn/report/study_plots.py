"""Figures of the study report: accuracy-vs-eps curves with across-seed bands, the difference to the
baseline with its band, and robustness against clean accuracy, one point per trained model.

Every band here is an interval *across training seeds* (``ci_low``/``ci_high`` of ``study.csv`` and
``effects.csv``), not a binomial interval over test images: the question is what training does to an
architecture, and the seed-to-seed spread is the uncertainty that answers it. Where an interval is
undefined (fewer than two seeds) only the mean line is drawn. Figures are saved by
:func:`.plots.save_figure` (PNG for the page, SVG for papers).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .plots import BASELINE_COLOUR, finish_percent_axes, plt, save_figure, sns

Color = Any  # a matplotlib colour


def architecture_palette(architectures: Iterable[str]) -> dict[str, Color]:
    """One colour per architecture, the same in every figure of a report."""
    names = sorted(dict.fromkeys(architectures))
    return dict(zip(names, sns.color_palette("tab10", max(len(names), 1))))


def eps_scale(labels: Iterable[str]) -> tuple[float, str]:
    """Factor and axis title for eps: in /255 when every label of the grid is '0' or 'k/255' (Linf
    grids are labelled so), raw otherwise. The study CSVs carry no norm column; the labels tell."""
    labels = [str(v) for v in labels]
    if any(v.endswith("/255") for v in labels) and all(v == "0" or v.endswith("/255") for v in labels):
        return 255.0, "eps (/255)"
    return 1.0, "eps (raw), or severity for common corruptions"


def plain(text: str) -> str:
    """A user-controlled name as matplotlib should print it: '$' would start mathtext (and a name
    like 'a$\\frac{$' would fail to parse)."""
    return str(text).replace("$", r"\$")


def _band(ax, x: np.ndarray, low: pd.Series, high: pd.Series, color: Color) -> None:
    """Shade [low, high] (points) where both are finite; nothing where the interval is undefined."""
    lo, hi = low.to_numpy(float), high.to_numpy(float)
    finite = np.isfinite(lo) & np.isfinite(hi)
    if finite.any():
        ax.fill_between(x, np.where(finite, 100 * lo, np.nan), np.where(finite, 100 * hi, np.nan),
                        where=finite, color=color, alpha=0.18, lw=0)


# The panel of architectures compared with no baseline (the study report assigns it).
OTHER_PANEL = "other architectures"


def curves_plot(arms: pd.DataFrame, seeds: pd.DataFrame, palette: Mapping[str, Color], baselines: set[str],
                title: str, out_dir: Path, stem: str, panels: Mapping[str, str] | None = None) -> str:
    """Per architecture: the across-seed mean (baselines dashed with squares, in black; attention
    architectures solid with circles, in their colour), its 95% across-seed band, and each seed's own
    curve as a thin line, so a reader sees whether the band is one outlier seed or a real spread.

    ``panels`` (architecture -> panel title) draws one panel per backbone, so that an architecture is
    only ever drawn beside its own baseline; without it every architecture shares one panel.
    ``arms``: study.csv eps rows of one attack and metric; ``seeds``: per_seed.csv eps rows of the same."""
    scale, xlabel = eps_scale([*arms["eps_label"], *seeds["eps_label"]])
    where = {str(a): (panels or {}).get(str(a), "") for a in arms["architecture"].unique()}
    order = sorted(set(where.values()), key=lambda t: (t == OTHER_PANEL, t))
    columns = min(len(order), 3)
    rows = -(-len(order) // columns)
    single = len(order) == 1
    fig, axes = plt.subplots(rows, columns, figsize=(6.4, 4.2) if single else (4.6 * columns, 3.7 * rows),
                             sharey=True, squeeze=False)
    for ax, panel in zip(axes.flat, order):
        for arch in sorted(a for a, p in where.items() if p == panel):
            base = arch in baselines
            color = BASELINE_COLOUR if base else palette[arch]
            for _, one in seeds[seeds["architecture"] == arch].groupby("seed"):
                one = one.sort_values("eps")
                ax.plot(scale * one["eps"].to_numpy(float), 100 * one["value"], "-", lw=0.6, alpha=0.45, color=color)
            r = arms[arms["architecture"] == arch].sort_values("eps")
            x = scale * r["eps"].to_numpy(float)
            n = int(r["n_seeds"].min()) if len(r) else 0
            ax.plot(x, 100 * r["mean"], "--" if base else "-", marker="s" if base else "o", ms=3.5, lw=1.8,
                    color=color, zorder=3 if base else 2,
                    label=f"{plain(arch)} ({'baseline' if base else 'attention'}, {n} seed{'s' if n != 1 else ''})")
            _band(ax, x, r["ci_low"], r["ci_high"], color)
        ax.plot([], [], "-", lw=0.6, color="gray", label="one training seed")
        finish_percent_axes(ax, xlabel, "accuracy (%)", plain(title if single else panel))
    for ax in list(axes.flat)[len(order):]:
        ax.set_visible(False)
    if not single:
        fig.suptitle(plain(title), fontsize=10)
        fig.tight_layout()
    return save_figure(fig, out_dir, stem)


def difference_plot(effects: pd.DataFrame, palette: Mapping[str, Color], title: str, out_dir: Path, stem: str) -> str:
    """Per comparison, the difference of across-seed means (points) against eps with its 95% Welch
    band; the zero line is "no effect", so a band that leaves it is what the verdict reads.

    ``effects``: effects.csv eps rows of one attack and metric."""
    scale, xlabel = eps_scale(effects["eps_label"])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (arch, baseline), r in effects.groupby(["architecture", "baseline"], sort=True):
        r = r.sort_values("eps")
        x = scale * r["eps"].to_numpy(float)
        color = palette.get(arch, "black")
        banded = bool((np.isfinite(r["ci_low"]) & np.isfinite(r["ci_high"])).any())
        ax.plot(x, 100 * r["difference"], "-", marker="o", ms=3.5, color=color,
                label=f"{plain(arch)} - {plain(baseline)}" + ("" if banded else " (no band: fewer than 2 seeds)"))
        _band(ax, x, r["ci_low"], r["ci_high"], color)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("difference to baseline (points)")
    ax.set_title(plain(title), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir, stem)


def clean_vs_robust_plot(points: pd.DataFrame, palette: Mapping[str, Color], title: str, out_dir: Path,
                         stem: str) -> str:
    """One point per trained model: clean accuracy against AUC under one attack, coloured by
    architecture. Shows whether a robustness gain is bought with clean accuracy (a trade-off along
    one line) or comes on top of it (the cloud shifted up).

    ``points``: per_seed.csv auc rows of metric accuracy under one attack."""
    data = points.assign(clean=100 * points["clean_accuracy"], robust=100 * points["value"],
                         arch=points["architecture"].map(plain))
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    sns.scatterplot(data=data, x="clean", y="robust", hue="arch", s=40, ax=ax,
                    palette={plain(a): c for a, c in palette.items()})
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("AUC: mean accuracy over the eps grid (%)")
    ax.set_title(plain(title), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=None)
    return save_figure(fig, out_dir, stem)
