"""The report's figures (matplotlib, no I/O): one fixed style per model across every figure.

Every model keeps one colour everywhere (distinct within its dataset family; seqbench.models.REGISTRY
order), and its architecture family (the module that builds it: baselines, dense, conv, recurrent,
transformer, statistical, bow) sets the line style and marker. Legends sit outside the axes (constrained
layout, `outside right upper`); `render` returns the PNG with the pixel boxes of every axes and legend,
so a test can check that no legend covers a plot.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from seqbench.models import REGISTRY  # noqa: E402

DPI = 80
PALETTE = [to_hex(plt.get_cmap("tab20")(i)) for i in (*range(0, 20, 2), *range(1, 20, 2))]  # dark shades first
LINESTYLES = {"baselines": ":", "statistical": (0, (1, 1)), "dense": "--", "conv": "-.", "recurrent": "-",
              "transformer": (0, (5, 1, 1, 1)), "bow": (0, (3, 1, 1, 1, 1, 1))}
MARKERS = {"baselines": "s", "statistical": "D", "dense": "^", "conv": "v", "recurrent": "o", "transformer": "*",
           "bow": "P"}


def architecture(model: str) -> str:
    entry = REGISTRY.get(model)
    if entry is None:
        return "other"
    return next(iter(entry.builders.values())).split(":")[0].rsplit(".", 1)[-1]


def _colours() -> dict[str, str]:
    """model -> colour, distinct among the models of each dataset family (forecast, text, chars)."""
    out: dict[str, str] = {}
    for family in ("forecast", "text", "chars"):
        members = [name for name, entry in REGISTRY.items() if family in entry.builders]
        taken = {out[m] for m in members if m in out}
        free = [c for c in PALETTE if c not in taken]
        for name in members:
            if name not in out and free:
                out[name] = free.pop(0)
    return out


COLOURS = _colours()


@dataclass(frozen=True)
class Style:
    color: str
    linestyle: object
    marker: str


def style(model: str) -> Style:
    family = architecture(model)
    colour = COLOURS.get(model) or PALETTE[sum(map(ord, model)) % len(PALETTE)]
    return Style(colour, LINESTYLES.get(family, "-"), MARKERS.get(family, "o"))


def line(ax, x, y, model: str, label: str | None = None, **kw):
    s = style(model)
    return ax.plot(x, y, color=s.color, linestyle=s.linestyle, label=label or model, **kw)


@dataclass
class Rendered:
    png: bytes
    axes: list[tuple[float, float, float, float]]  # pixel boxes (x0, y0, x1, y1), origin top left
    legends: list[tuple[float, float, float, float]]
    colors: dict[str, str]  # label -> colour of each legend entry
    size: tuple[int, int]


def _box(extent, height: float) -> tuple[float, float, float, float]:
    return (round(extent.x0, 1), round(height - extent.y1, 1), round(extent.x1, 1), round(height - extent.y0, 1))


def render(fig) -> Rendered:
    fig.canvas.draw()
    height = fig.bbox.height
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    colors = {}
    for legend in legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
            colors[text.get_text()] = to_hex(colour if isinstance(colour, str) or np.ndim(colour) == 1 else colour[0])
    rendered = Rendered(b"", [_box(ax.get_window_extent(), height) for ax in fig.axes if ax.get_visible()],
                        [_box(lg.get_window_extent(), height) for lg in legends], colors,
                        (int(fig.bbox.width), int(height)))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    rendered.png = buffer.getvalue()
    return rendered


def figure(width: float, height: float, ncols: int = 1):
    return plt.subplots(1, ncols, figsize=(width, height), dpi=DPI, layout="constrained", squeeze=False)


def legend_outside(fig, title: str | None = None):
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    legend = fig.legend(handles, labels, loc="outside right upper", fontsize=7, title=title, title_fontsize=7,
                        handlelength=3)
    for handle in legend.get_lines():
        handle.set_linewidth(2.5)  # thin or dotted lines would show their colour in a few blended pixels only
    return legend


# --- figures ---------------------------------------------------------------------------------------------
def learning_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """model -> (epochs, validation loss averaged over seeds); log scale, so no epoch flattens the rest."""
    fig, axes = figure(8, 3.4)
    ax = axes[0][0]
    for model, (epochs, loss) in curves.items():
        line(ax, epochs, loss, model, marker=".", markersize=4)
    if all(np.all(np.asarray(loss) > 0) for _, loss in curves.values()):
        ax.set_yscale("log")
    ax.set(title=title, xlabel="epoch", ylabel="validation loss (log scale)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(fig)
    return fig


def per_horizon(curves: dict[str, list[float]], title: str, metric: str = "MAE"):
    fig, axes = figure(8, 3.4)
    ax = axes[0][0]
    for model, curve in curves.items():
        line(ax, np.arange(1, len(curve) + 1), curve, model)
    ax.set(title=title, xlabel="step ahead", ylabel=metric)
    legend_outside(fig)
    return fig


def forecast_panels(truth: list[np.ndarray], steps_or_times, preds: dict[str, list[np.ndarray]],
                    titles: list[str], title: str):
    """One panel per chosen window: the truth and each model's forecast of the first target."""
    fig, axes = figure(4 * len(truth) + 1.8, 3.2, ncols=len(truth))
    for ax, i in zip(axes[0], range(len(truth))):
        ax.plot(steps_or_times[i], truth[i], color="black", lw=1.6, label="truth")
        for model, series in preds.items():
            line(ax, steps_or_times[i], series[i], model, lw=1.1)
        ax.set_title(titles[i], fontsize=9)
    fig.suptitle(title, fontsize=10)
    legend_outside(fig, title="best of each family")
    return fig


def cost_scatter(points: dict[str, tuple[float, float, float]], front: dict[str, set[str]], metric: str, title: str):
    """points: model -> (parameters, training seconds, score); front: cost -> models on the Pareto front.
    Models are told apart by colour and marker in the legend, never by text next to a point."""
    fig, axes = figure(10, 3.6, ncols=2)
    for ax, (i, cost) in zip(axes[0], enumerate(("parameters", "training seconds"))):
        members = [(points[m][i], points[m][2]) for m in points if m in front[cost]]
        if members:
            xs, ys = zip(*sorted(members))
            ax.plot(xs, ys, color="0.6", lw=1, zorder=1, label="Pareto front")
        for model, values in points.items():
            s = style(model)
            ax.scatter(values[i], values[2], color=s.color, marker=s.marker, s=46, zorder=2, label=model,
                       edgecolors="black" if model in front[cost] else "none", linewidths=0.8)
        if cost == "parameters":  # parameter-free baselines: symlog keeps 0 on the axis
            ax.set_xscale("symlog", linthresh=1)
        ax.set(xlabel=cost, ylabel=metric)
    fig.suptitle(title, fontsize=10)
    legend_outside(fig)
    return fig


def confusion(matrix: np.ndarray, title: str):
    fig, axes = figure(3.8, 3.2)
    ax = axes[0][0]
    ax.imshow(matrix, cmap="Blues")
    for (a, p), count in np.ndenumerate(matrix):
        ax.text(p, a, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["neg", "pos"], yticklabels=["neg", "pos"],
           xlabel="predicted", ylabel="actual", title=title)
    return fig


def cd_diagram(entries: list[str], avg_ranks: list[float], cliques: list[list[int]], cd: float, title: str):
    """Demsar's critical-difference diagram: the rank axis (1 = best, left), each entry's label on a row
    of its own, and a bar under every group whose average ranks differ by less than the CD."""
    k = len(entries)
    half = (k + 1) // 2
    rows = max(half, k - half)
    fig = plt.figure(figsize=(9, 1.3 + 0.28 * rows + 0.18 * len(cliques)), dpi=DPI)
    ax = fig.add_axes((0.3, 0.04, 0.4, 0.84))  # the labels use the margins on both sides
    low, high = 1, max(k, 2)
    ax.set_xlim(low - 0.5, high + 0.5)
    top = 0.0
    ax.hlines(top, low, high, color="black", lw=1)
    for r in range(low, high + 1):
        ax.vlines(r, top, top + 0.12, color="black", lw=1)
        ax.text(r, top + 0.18, str(r), ha="center", va="bottom", fontsize=8)
    ax.hlines(top + 0.55, low, low + cd, color="black", lw=2)
    ax.text(low + cd / 2, top + 0.62, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for i, (name, rank) in enumerate(zip(entries, avg_ranks)):
        left = i < half
        y = -(0.35 + 0.28 * (i if left else k - 1 - i)) - 0.18 * len(cliques)
        x_text = low - 0.4 if left else high + 0.4
        base = name.split(" (")[0]
        ax.plot([rank, rank, x_text], [top, y, y], color=style(base).color, lw=1.6, clip_on=False)
        ax.text(x_text, y, f"{name} ({rank:.2f})", ha="right" if left else "left", va="center", fontsize=9,
                clip_on=False)
    for j, group in enumerate(cliques):
        y = -0.12 - 0.18 * j
        ax.hlines(y, avg_ranks[group[0]] - 0.05, avg_ranks[group[-1]] + 0.05, color="black", lw=3)
    ax.set_ylim(-(0.45 + 0.28 * rows) - 0.18 * len(cliques), 0.9)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return fig

