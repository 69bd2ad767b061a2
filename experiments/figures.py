"""Figure helpers shared by every experiment: headless pyplot, atomic PNGs, common panels.

  pyplot()              matplotlib.pyplot on the Agg backend (no display needed)
  save_png(fig, path)   the figure written atomically as PNG, then closed
  training_curves(...)  loss and accuracy against effective epoch (experiments.train)
  line_with_minimizer   a 1-D function on the plotted window, its minimizer dotted
  contour_with_minimizer  a 2-D function as filled contours, its minimizer starred
                        (experiments.hj_smoothing and experiments.sde_landscape)
"""

from __future__ import annotations

import numpy as np

from control_opt._internal.atomic import atomic_write

__all__ = ["pyplot", "save_png", "training_curves", "line_with_minimizer", "contour_with_minimizer",
           "contour_levels"]


def pyplot():
    """matplotlib.pyplot with the Agg backend (imported on first use: plotting is optional work)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    return plt


def save_png(fig, path: str, *, dpi: int = 100) -> str:
    """Writes `fig` to `path` as PNG atomically (readers never see half a file) and closes it."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi), mode="wb")
    finally:
        pyplot().close(fig)
    return path


def training_curves(rows, title: str):
    """Loss (log scale) and accuracy against effective epoch: train (running mean) and test (anchor).

    With several replicas (metrics.csv's `train_loss_rR` columns) each replica's train curve
    is drawn thin and the test curve is the center's.
    """
    plt = pyplot()
    epochs = [r["epoch"] for r in rows]
    replicas = sum(1 for column in (rows[0] if rows else {}) if column.startswith("train_loss_r"))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for r in range(replicas):
            ax.plot(epochs, [row[f"train_{key}_r{r}"] for row in rows], lw=0.8, alpha=0.6,
                    label=f"train, replica {r}")
        ax.plot(epochs, [r[f"train_{key}"] for r in rows],
                label="train (running mean" + (", all replicas)" if replicas else ")"))
        ax.plot(epochs, [r[f"test_{key}"] for r in rows], label="test (center)" if replicas else "test (anchor)")
        ax.set_xlabel("effective epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small" if replicas > 2 else None)
    ax_loss.set_yscale("log")
    fig.suptitle(title)
    # Fixed margins, not tight_layout: that draws the figure once more only to measure it (about half a
    # second a run, and the runner draws this figure after every epoch).
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.13, top=0.9, wspace=0.22)
    return fig


def line_with_minimizer(ax, x, values, shown, *, color, label=None, lw=1.5, mark=True):
    """Plots `values` over `x[shown]` and, with `mark`, a dot at its minimizer inside the window."""
    values = np.asarray(values)
    ax.plot(x[shown], values[shown], color=color, lw=lw, label=label)
    if mark:
        k = np.argmin(np.where(shown, values, np.inf))
        ax.plot(x[k], values[k], "o", color=color, markeredgecolor="black", zorder=3)


def contour_levels(values, count: int):
    """`count` contour levels from the minimum to the 95th percentile (the top 5% would flatten the rest)."""
    values = np.asarray(values)
    return np.linspace(values.min(), np.percentile(values, 95), count)


def contour_with_minimizer(ax, x, values, *, title, levels=None, lines=False):
    """Filled contours of `values[i, j]` at (x[i], x[j]) with a red star at the minimizer.

    Returns the filled-contour artist (for a colorbar).
    """
    values = np.asarray(values)
    levels = contour_levels(values, 20) if levels is None else levels
    filled = ax.contourf(x, x, values.T, levels=levels, cmap="viridis", extend="both")
    if lines:
        ax.contour(x, x, values.T, levels=levels, colors="white", linewidths=0.3)
    i, j = np.unravel_index(np.argmin(values), values.shape)
    ax.plot(x[i], x[j], marker="*", color="red", markersize=13, markeredgecolor="white")
    ax.set_title(title)
    ax.set_aspect("equal")
    return filled
