"""Smoothing a non-convex loss with the Hamilton-Jacobi PDEs: the figures.

    python -m experiments.hj_smoothing --workdir=./runs/hj_smoothing \
        --times=0.05,0.2,0.8 --beta=8 --num_points=1201 --num_points_2d=161

draws ([1] section 3, DESIGN.md section 4)

  hj_smoothing_1d.png  a non-convex 1-D loss `f` (a narrow deep minimum, a wide
                       shallow one, ripples) with its non-viscous (Hopf-Lax) and
                       viscous (Cole-Hopf, `beta`) smoothings `u(., t)` at each t;
  hj_smoothing_2d.png  a 2-D non-convex landscape as contours: `f`, Hopf-Lax
                       and viscous `u(., t_2d)`, with each one's minimizer marked.

Both PDEs flatten the ripples. Hopf-Lax keeps the minimum value and its
location (`u(w*, t) = f(w*)` at a global minimizer) but widens every basin; the
viscous solution also charges each minimum for its narrowness (for a quadratic
well of curvature a, `log(1 + a t)/(2 beta)` per dimension), so as t grows its
minimizer (the dots and stars) jumps from the narrow deep well to the wide one.
The solutions are computed on a grid `margin` times wider than the plotted
window because the viscous convolution is truncated to the grid
(`control_opt.pde.viscous_hj`).

`main()` only parses flags; the work is in `make_figures(config, workdir)`.

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      Relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences 5, 30 (2018).
"""

from __future__ import annotations

import dataclasses
import math
import os

from absl import app, flags
import numpy as np

from control_opt._internal.atomic import atomic_write
from control_opt.pde import hopf_lax, viscous_hj

__all__ = ["SmoothingConfig", "define_flags", "config_from_flags", "loss_1d", "loss_2d", "make_figures"]


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Everything the figures depend on.

    Attributes:
      times: the times t of the 1-D smoothings (each > 0).
      time_2d: the time t of the 2-D contours (> 0).
      beta: inverse temperature of the viscous PDE (viscosity 1/(2 beta), > 0).
      num_points: 1-D grid size (>= 3) over the computation window.
      num_points_2d: points per axis of the 2-D grid (>= 3).
      extent: the plotted window is [-extent, extent] (per axis in 2-D).
      margin: the computation window is `margin` times the plotted one (>= 1).
    """

    times: tuple = (0.05, 0.2, 0.8)
    time_2d: float = 0.3
    beta: float = 8.0
    num_points: int = 1201
    num_points_2d: int = 161
    extent: float = 3.0
    margin: float = 1.5

    def validate(self):
        if len(self.times) == 0:
            raise ValueError("`times` must hold at least one time.")
        for name, value in [*(("times", t) for t in self.times), ("time_2d", self.time_2d),
                            ("beta", self.beta), ("extent", self.extent)]:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"`{name}` must be finite numbers > 0, got {value!r}.")
        for name in ("num_points", "num_points_2d"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 3):
                raise ValueError(f"`{name}` must be an integer >= 3, got {value!r}.")
        if not (math.isfinite(self.margin) and self.margin >= 1.0):
            raise ValueError(f"`margin` must be a finite number >= 1, got {self.margin!r}.")


def loss_1d(w):
    """A non-convex 1-D loss: a narrow deep well at -1, a wide shallow one at 1.4, ripples."""
    w = np.asarray(w, dtype=np.float64)
    return (0.06 * w**2 + 1.0
            - 1.0 * np.exp(-((w + 1.0) ** 2) / (2 * 0.12**2))
            - 0.9 * np.exp(-((w - 1.4) ** 2) / (2 * 0.7**2))
            + 0.08 * np.sin(9.0 * w))


def loss_2d(w0, w1):
    """A non-convex 2-D landscape of the same kind: narrow deep well, wide valley, ripples."""
    return (0.05 * (w0**2 + w1**2) + 1.0
            - 1.05 * np.exp(-((w0 + 1.2) ** 2 + (w1 - 1.0) ** 2) / (2 * 0.15**2))
            - 0.9 * np.exp(-((w0 - 1.0) ** 2 / (2 * 0.8**2) + (w1 + 0.8) ** 2 / (2 * 0.5**2)))
            + 0.08 * np.sin(7.0 * w0) * np.sin(7.0 * w1))




def _window(config, num_points):
    half = config.extent * config.margin
    x = np.linspace(-half, half, num_points)
    return x, np.abs(x) <= config.extent + 1e-12


def _figure_1d(config, plt):
    x, shown = _window(config, config.num_points)
    f = loss_1d(x)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(config.times)))
    for ax, title in zip(axes, ("non-viscous: Hopf-Lax", f"viscous: Cole-Hopf, beta = {config.beta:g}")):
        ax.plot(x[shown], f[shown], color="black", lw=1.5, label="f = u(., 0)")
        ax.set_title(title)
        ax.set_xlabel("w")
        ax.grid(alpha=0.3)
    for t, color in zip(config.times, colors):
        u = hopf_lax(f, x, t).u
        axes[0].plot(x[shown], u[shown], color=color, lw=1.5, label=f"t = {t:g}")
        v = viscous_hj(f, x, t, config.beta).u
        axes[1].plot(x[shown], v[shown], color=color, lw=1.5, label=f"t = {t:g}")
        for ax, values in ((axes[0], u), (axes[1], v)):
            k = np.argmin(np.where(shown, values, np.inf))
            ax.plot(x[k], values[k], "o", color=color, markeredgecolor="black", zorder=3)
    axes[0].set_ylabel("u(w, t)   (dots: minimizers)")
    for ax in axes:
        ax.legend(loc="upper center", fontsize=8)
    fig.suptitle("Smoothing a non-convex loss with Hamilton-Jacobi PDEs "
                 "(u_t = -1/2 |u_w|^2 + 1/(2 beta) u_ww)", fontsize=11)
    fig.tight_layout()
    return fig


def _figure_2d(config, plt):
    x, shown = _window(config, config.num_points_2d)
    w0, w1 = np.meshgrid(x, x, indexing="ij")
    f = loss_2d(w0, w1)
    t = config.time_2d
    panels = [("f = u(., 0)", f),
              (f"Hopf-Lax, t = {t:g}", hopf_lax(f, (x, x), t).u),
              (f"viscous, t = {t:g}, beta = {config.beta:g}", viscous_hj(f, (x, x), t, config.beta).u)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), sharex=True, sharey=True, layout="constrained")
    crop = np.ix_(shown, shown)
    levels = np.linspace(f[crop].min(), np.percentile(f[crop], 95), 25)
    for ax, (title, u) in zip(axes, panels):
        u = u[crop]
        contour = ax.contourf(x[shown], x[shown], u.T, levels=levels, cmap="viridis", extend="both")
        ax.contour(x[shown], x[shown], u.T, levels=levels, colors="white", linewidths=0.3)
        i, j = np.unravel_index(np.argmin(u), u.shape)
        ax.plot(x[shown][i], x[shown][j], marker="*", color="red", markersize=14,
                markeredgecolor="white")
        ax.set_title(title)
        ax.set_xlabel("w_0")
        ax.set_aspect("equal")
    axes[0].set_ylabel("w_1")
    fig.colorbar(contour, ax=axes, shrink=0.9, label="u(w, t)")
    fig.suptitle("2-D landscape and its smoothings (star: minimizer)", fontsize=11)
    return fig


def make_figures(config: SmoothingConfig, workdir: str) -> list[str]:
    """Computes the smoothings and writes the PNGs into `workdir`.

    Returns:
      The paths written: `[.../hj_smoothing_1d.png, .../hj_smoothing_2d.png]`.

    Raises:
      ValueError: a config field out of range (the message names it).
    """
    config.validate()
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    os.makedirs(workdir, exist_ok=True)
    paths = []
    for name, draw in (("hj_smoothing_1d.png", _figure_1d), ("hj_smoothing_2d.png", _figure_2d)):
        fig = draw(config, plt)
        try:
            path = os.path.join(workdir, name)
            atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), mode="wb")
            paths.append(path)
        finally:
            plt.close(fig)
    return paths


def _parse_times(values):
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None


def define_flags(flag_values=flags.FLAGS):
    """Defines this entry point's flags on `flag_values` (the global FLAGS by default).

    Flags are defined only when the module runs as `__main__` (or by a test on
    its own `FlagValues`), so importing it next to `experiments.train` in one
    process does not define `--workdir` twice.
    """
    d = SmoothingConfig()
    flags.DEFINE_string("workdir", "./runs/hj_smoothing", "Where the PNGs go.", flag_values=flag_values)
    flags.DEFINE_list("times", [f"{t:g}" for t in d.times], "Comma list of times t > 0 (1-D figure).",
                      flag_values=flag_values)
    flags.DEFINE_float("time_2d", d.time_2d, "Time t > 0 of the 2-D contours.", flag_values=flag_values)
    flags.DEFINE_float("beta", d.beta, "Inverse temperature beta > 0 of the viscous PDE.", flag_values=flag_values)
    flags.DEFINE_integer("num_points", d.num_points, "1-D grid size.", lower_bound=3, flag_values=flag_values)
    flags.DEFINE_integer("num_points_2d", d.num_points_2d, "2-D grid points per axis.", lower_bound=3,
                         flag_values=flag_values)
    flags.DEFINE_float("extent", d.extent, "Plot [-extent, extent] (> 0).", flag_values=flag_values)
    flags.DEFINE_float("margin", d.margin, "Computation window / plotted window (>= 1).", lower_bound=1.0,
                       flag_values=flag_values)

    def positive_times(values):
        times = _parse_times(values)
        return times is not None and len(times) > 0 and all(math.isfinite(t) and t > 0 for t in times)

    flags.register_validator("times", positive_times,
                             message="--times must be a comma list of finite numbers > 0, e.g. 0.05,0.2,0.8",
                             flag_values=flag_values)
    for name in ("time_2d", "beta", "extent"):
        flags.register_validator(name, lambda v: v is not None and math.isfinite(v) and v > 0,
                                 message=f"--{name} must be a finite number > 0", flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> SmoothingConfig:
    return SmoothingConfig(times=_parse_times(flag_values.times), time_2d=flag_values.time_2d,
                           beta=flag_values.beta, num_points=flag_values.num_points,
                           num_points_2d=flag_values.num_points_2d, extent=flag_values.extent,
                           margin=flag_values.margin)


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    paths = make_figures(config_from_flags(FLAGS), FLAGS.workdir)
    for path in paths:
        print(f"Wrote {os.path.abspath(path)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
