"""Seaborn figures for reports, each saved as PNG (for the HTML) and SVG (for papers)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..files import atomic_write_bytes  # noqa: E402
from ..results import STANDARD_TRAINING  # noqa: E402


def save_figure(fig, out_dir: Path, stem: str, vector: bool = True) -> str:
    """Write ``stem``.png and, for a ``vector`` figure, ``stem``.svg atomically; return the PNG's file
    name. Figures made of images (attention panels) are raster whatever the format: their SVG would
    only wrap the same pixels, at twice the rendering time, so they are PNG only."""
    import io

    for ext in ("png", "svg") if vector else ("png",):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=110, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
        atomic_write_bytes(out_dir / f"{stem}.{ext}", buf.getvalue())
    plt.close(fig)
    return f"{stem}.png"


def _eps_axis(rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    if (rows["norm"] == "Linf").all():
        return rows["eps"].to_numpy() * 255, "eps (/255, Linf)"
    return rows["eps"].to_numpy(), f"eps ({rows['norm'].iloc[0]}, raw)"


BASELINE_COLOUR = "black"


def model_colours(names: list[str]) -> dict[str, object]:
    """One distinct colour per model drawn in colour (tab10 up to ten, evenly spaced husl hues beyond), so a
    model keeps its colour on every panel of a figure; baselines are drawn in BASELINE_COLOUR instead."""
    return dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "husl", max(len(names), 1))))


def accuracy_grid(rows: pd.DataFrame, panels: dict[tuple, str], roles: dict[str, str], metric: str, heading: str,
                  out_dir: Path, stem: str) -> str:
    """Accuracy vs eps as a grid of panels (seaborn ``FacetGrid``), one per evaluation set and backbone:
    ``panels`` maps a model as evaluated (model, dataset, n) to its panel's title, ``roles`` a model to
    ``baseline`` (drawn in black, squares) or ``variant`` (in colour, circles; one colour per model on
    every panel), anything else to ``model``. ``metric``: ``accuracy`` (each eps alone) or
    ``worst_case_accuracy`` (robust at every eps' <= eps), each with its Wilson 95% band. Panels share
    the y axis (0-100%), so that only models of one evaluation set and backbone share a panel."""
    keys = list(zip(rows["model"], rows["dataset"], rows["n"]))
    data = rows.assign(panel=[panels.get(k, "other models") for k in keys]).sort_values(["panel", "model", "eps"])
    x, xlabel = _eps_axis(data)
    data = data.assign(eps_axis=x)
    coloured = sorted({m for m in data["model"] if roles.get(m) != "baseline"})
    colours = model_colours(coloured)
    low, high = ("ci_low", "ci_high") if metric == "accuracy" else ("worst_case_ci_low", "worst_case_ci_high")
    order = sorted(data["panel"].unique(), key=lambda t: (t == "other models", t))
    columns = min(len(order), 3)
    grid = sns.FacetGrid(data, col="panel", col_order=order, col_wrap=columns if len(order) > 1 else None,
                         height=3.3, aspect=1.35, sharex=False, sharey=True)
    for title, ax in zip(order, grid.axes.flat):
        panel = data[data["panel"] == title]
        for model, r in panel.groupby("model", sort=False):
            base = roles.get(model) == "baseline"
            colour = BASELINE_COLOUR if base else colours[model]
            ax.plot(r["eps_axis"], 100 * r[metric], "-", marker="s" if base else "o", ms=3.5, lw=2 if base else 1.4,
                    color=colour, label=_curve_label(model, r, base), zorder=3 if base else 2)
            ax.fill_between(r["eps_axis"], 100 * r[low], 100 * r[high], color=colour, alpha=0.12, lw=0)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper right")
    grid.set_axis_labels(xlabel, "accuracy (%)")
    grid.figure.suptitle(heading, fontsize=10)
    grid.figure.tight_layout()
    return save_figure(grid.figure, out_dir, stem)


def _curve_label(model: str, rows: pd.DataFrame, baseline: bool) -> str:
    """A model's legend entry: its name, its training threat model unless standard (the row says how the
    model was trained, so two models of one name pattern are never told apart by name alone), its role."""
    threat = str(rows["training_threat_model"].iloc[0]) if "training_threat_model" in rows else STANDARD_TRAINING
    tags = [t for t in (threat if threat != STANDARD_TRAINING else "", "baseline" if baseline else "") if t]
    return f"{model} ({', '.join(tags)})" if tags else model


def difference_heatmap(decided: pd.DataFrame, out_dir: Path, stem: str) -> str:
    """Variant minus baseline accuracy (points) as a heatmap, one row per comparison (variant, baseline,
    evaluation set, attack) and one column per eps; a star marks a verdict word (significant after the
    page's Holm correction, see :mod:`.verdicts`). Green: the variant is more robust."""
    label = decided["model"] + " vs " + decided["baseline"]
    for column in ("dataset", "n", "attack_label"):  # only what tells rows apart
        if decided[column].nunique() > 1:
            label = label + " · " + (("n=" if column == "n" else "") + decided[column].astype(str))
    data = decided.assign(row=label, points=100 * decided["difference"].astype(float))
    columns = list(data.sort_values("eps").drop_duplicates("eps_label")["eps_label"])
    table = data.pivot_table(index="row", columns="eps_label", values="points", aggfunc="first")[columns]
    marked = data.assign(star=data["verdict"].isin(["more robust", "less robust"]))
    stars = marked.pivot_table(index="row", columns="eps_label", values="star", aggfunc="first")[columns]
    text = table.map(lambda v: "" if pd.isna(v) else f"{v:+.1f}") + stars.map(lambda s: "*" if s is True else "")
    limit = max(float(np.nanmax(np.abs(table.to_numpy()))) if table.size else 1.0, 1.0)
    fig, ax = plt.subplots(figsize=(1.5 + 0.62 * len(columns) + 0.06 * max(len(r) for r in table.index),
                                    1.2 + 0.33 * len(table)))
    sns.heatmap(table, annot=text.to_numpy(), fmt="", cmap="PiYG", center=0, vmin=-limit, vmax=limit,
                annot_kws={"fontsize": 7}, linewidths=0.5, linecolor="white",
                cbar_kws={"label": "variant - baseline (points)"}, ax=ax)
    ax.set_xlabel("eps")
    ax.set_ylabel("")
    ax.set_title("how each variant's per-eps accuracy differs from its baseline's (* verdict word: Holm-significant)",
                 fontsize=9)
    ax.tick_params(labelsize=7.5)
    return save_figure(fig, out_dir, stem)


def finish_percent_axes(ax, xlabel: str, ylabel: str, heading: str, **legend) -> None:
    """What every accuracy-vs-eps plot of the report pages has: labels, a 0-100% y range, a light grid and
    the legend in the upper right (``legend``: more legend options, e.g. the legend's ``title``)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(heading, fontsize=10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", **legend)


def _line_plot(data: pd.DataFrame, y: str, ylabel: str, title: str, **style):
    """A seaborn line plot against eps (in /255 when every row is Linf, raw otherwise)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    x, xlabel = _eps_axis(data)
    sns.lineplot(data=data.assign(eps_axis=x), x="eps_axis", y=y, marker="o", ax=ax, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig, ax


def shift_plot(shift: pd.DataFrame, out_dir: Path, stem: str) -> str:
    """Mean Jensen-Shannon distance between clean and adversarial attention vs eps, broken vs not."""
    label = shift["attack_label"].iloc[0] if "attack_label" in shift else "attack"
    fig, _ = _line_plot(shift, "js_distance", "Jensen-Shannon distance (clean vs adversarial attention)",
                        f"attention shift under {label}", hue="model", style="outcome", errorbar=None)
    return save_figure(fig, out_dir, stem)


def attention_panel(images: np.ndarray, adversarial: np.ndarray, clean_maps: list[np.ndarray],
                    adv_maps: list[np.ndarray], layer_names: list[str], title: str, out_dir: Path, stem: str) -> str:
    """Rows: images. Columns: input, adversarial input, then per attended layer clean and adversarial maps.

    The tiles are laid into one picture drawn on one axes (a grid of axes, one per tile, took a
    second per panel to draw); each map is scaled to its own range with viridis, as ``imshow`` would,
    and enlarged to the image's size by repetition."""
    n = len(images)
    cols = 2 + 2 * len(clean_maps)
    size, gap = images.shape[1], 2
    canvas = np.ones((n * (size + gap) - gap, cols * (size + gap) - gap, 3), dtype=np.float32)
    viridis = plt.get_cmap("viridis")
    labels = ["input", "adversarial"] + [f"{name} {kind}" for name in layer_names for kind in ("clean", "adv")]
    for i in range(n):
        tiles = [_rgb(images[i]), _rgb(adversarial[i])]
        for c, a in zip(clean_maps, adv_maps):
            tiles += [_map_tile(c[i], size, viridis), _map_tile(a[i], size, viridis)]
        for j, tile in enumerate(tiles):
            top, left = i * (size + gap), j * (size + gap)
            canvas[top:top + size, left:left + size] = tile
    width = 1.3 * cols
    fig, ax = plt.subplots(figsize=(width, width * canvas.shape[0] / canvas.shape[1]))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for j, label in enumerate(labels):
        ax.text(j * (size + gap) + size / 2, -2, label, ha="center", va="bottom", fontsize=6)
    ax.set_title(title, fontsize=8, pad=12)
    return save_figure(fig, out_dir, stem, vector=False)


def _rgb(img: np.ndarray) -> np.ndarray:
    """An H x W x C image in [0, 1] as RGB (a one-channel image as grey)."""
    img = np.clip(img, 0, 1)
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def _map_tile(m: np.ndarray, size: int, cmap) -> np.ndarray:
    """A map scaled to its own [min, max] (as imshow scales it), coloured, enlarged to ``size``."""
    lo, hi = float(m.min()), float(m.max())
    scaled = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    rgb = cmap(scaled)[..., :3].astype(np.float32)
    r = max(size // m.shape[0], 1)
    rgb = np.repeat(np.repeat(rgb, r, axis=0), r, axis=1)
    return rgb[:size, :size] if rgb.shape[0] >= size else np.pad(
        rgb, ((0, size - rgb.shape[0]), (0, size - rgb.shape[1]), (0, 0)), mode="edge")


def _layer_order(data: pd.DataFrame) -> list[str]:
    return list(data.sort_values("layer_index")["layer"].drop_duplicates()) if "layer_index" in data else \
        sorted(data["layer"].unique())


def _legend(ax, palette: dict[str, object], hue_title: str, dashes: dict[str, tuple[float, ...]],
            markers: dict[str, str], style_title: str) -> None:
    """A legend drawn from proxies (colour per layer, line style and marker per outcome or attack)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], lw=0, label=hue_title)]
    handles += [Line2D([], [], color=c, label=name) for name, c in palette.items()]
    handles += [Line2D([], [], lw=0, label=style_title)]
    handles += [Line2D([], [], color="0.3", marker=markers[name], ms=4,
                       linestyle="-" if pattern == SOLID else (0, pattern), label=name) for name, pattern in dashes.items()]
    ax.legend(handles=handles, fontsize=7)


SOLID = (1, 0)
MARKERS = ("o", "X", "s", "^")


def attention_robustness_plot(rows: pd.DataFrame, model: str, out_dir: Path, stem: str) -> str:
    """Mean Jensen-Shannon distance between clean and attacked maps vs eps, one panel per attack, one
    line per attended layer (colour): all images (solid) and, for an attack that changed some
    predictions (a label attack such as pgd), those whose prediction was kept (dashed) and changed
    (dotted). ``rows``: :func:`robust_attn.report.attention.robustness_rows`."""
    outcomes = {"all images": "mean_js", "label kept": "mean_js_label_kept", "label changed": "mean_js_label_changed"}
    dashes = {"all images": SOLID, "label kept": (4, 2), "label changed": (1, 2)}
    attacks = list(rows.sort_values("attack", key=lambda s: s != "attention-shift")["attack_label"].drop_duplicates())
    layers = _layer_order(rows)
    palette = dict(zip(layers, sns.color_palette("viridis", len(layers))))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.8 * len(attacks), 3.9), sharey=True, squeeze=False)
    for ax, attack in zip(axes[0], attacks):
        r = rows[rows["attack_label"] == attack]
        split = bool((r["label_kept_fraction"] < 1).any())
        shown = list(outcomes) if split else ["all images"]
        data = pd.concat([r.assign(outcome=name, js=r[outcomes[name]]) for name in shown], ignore_index=True)
        data = data[np.isfinite(data["js"].astype(float))]
        x, xlabel = _eps_axis(data)
        used = {k: dashes[k] for k in shown}
        marks = dict(zip(shown, MARKERS))
        sns.lineplot(data=data.assign(eps_axis=x), x="eps_axis", y="js", hue="layer", hue_order=layers, palette=palette,
                     style="outcome", style_order=shown, dashes=used, markers=marks, errorbar=None, legend=False, ax=ax)
        _legend(ax, palette, "layer", used, marks, "images")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean Jensen-Shannon distance (clean vs attacked maps)", fontsize=8)
        ax.set_title(attack + ("" if split else " (every prediction kept)"), fontsize=10)
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model}: attention shift per attended layer (clean-correct images)", fontsize=10)
    return save_figure(fig, out_dir, stem)


def moved_fraction_plot(rows: pd.DataFrame, model: str, out_dir: Path, stem: str) -> str:
    """Share of images whose most-attended location (argmax of the map) moves vs eps, one line per
    attended layer (colour) and attack (line style)."""
    layers = _layer_order(rows)
    attacks = list(rows.sort_values("attack", key=lambda s: s != "attention-shift")["attack_label"].drop_duplicates())
    styles = [SOLID, (4, 2), (1, 2), (6, 2, 1, 2)]
    dashes = {a: styles[i % len(styles)] for i, a in enumerate(attacks)}
    marks = {a: MARKERS[i % len(MARKERS)] for i, a in enumerate(attacks)}
    palette = dict(zip(layers, sns.color_palette("viridis", len(layers))))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    x, xlabel = _eps_axis(rows)
    sns.lineplot(data=rows.assign(eps_axis=x, moved_points=100 * rows["moved_fraction"]), x="eps_axis", y="moved_points",
                 hue="layer", hue_order=layers, palette=palette, style="attack_label", style_order=attacks, dashes=dashes,
                 markers=marks, errorbar=None, legend=False, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images whose most-attended location moves (%)")
    ax.set_title(f"{model}: does the attention peak move?")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    _legend(ax, palette, "layer", dashes, marks, "attack")
    return save_figure(fig, out_dir, stem)
