"""Smoothing a non-convex loss with the Hamilton-Jacobi PDEs: the figures.

    python -m experiments.hj_smoothing --workdir=./runs/hj_smoothing \
        --times=0.05,0.2,0.8 --beta=8 --num_points=1201 --num_points_2d=161

draws ([1] section 3, docs/math.md section 4)

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

The landscapes are `experiments.landscapes.RIPPLED`. `main()` only parses flags
(derived from `SmoothingConfig` by `experiments.config_flags`); the work is in
`make_figures(config, workdir)`.

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

from control_opt.pde import hopf_lax, viscous_hj
from experiments import config_flags, figures
from experiments.landscapes import RIPPLED

__all__ = ["SmoothingConfig", "define_flags", "config_from_flags", "make_figures"]


def _finite_positive(value):
    return value is not None and math.isfinite(value) and value > 0


def _positive(name):
    """Field metadata: the flag must be a finite number > 0 (checked when the command line is parsed)."""
    return dict(check=(_finite_positive, f"--{name} must be a finite number > 0"))


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Everything the figures depend on.

    Attributes:
      times: Times t > 0 of the 1-D smoothings (comma list).
      time_2d: Time t > 0 of the 2-D contours.
      beta: Inverse temperature beta > 0 of the viscous PDE (viscosity 1/(2 beta)).
      num_points: 1-D grid size (>= 3) over the computation window.
      num_points_2d: Points per axis of the 2-D grid (>= 3).
      extent: The plotted window is [-extent, extent] (per axis in 2-D); > 0.
      margin: The computation window is `margin` times the plotted one (>= 1).
    """

    times: tuple[float, ...] = dataclasses.field(default=(0.05, 0.2, 0.8), metadata=dict(check=(
        lambda ts: len(ts) > 0 and all(_finite_positive(t) for t in ts),
        "--times must be a comma list of finite numbers > 0, e.g. 0.05,0.2,0.8")))
    time_2d: float = dataclasses.field(default=0.3, metadata=_positive("time_2d"))
    beta: float = dataclasses.field(default=8.0, metadata=_positive("beta"))
    num_points: int = dataclasses.field(default=1201, metadata=dict(lower_bound=3))
    num_points_2d: int = dataclasses.field(default=161, metadata=dict(lower_bound=3))
    extent: float = dataclasses.field(default=3.0, metadata=_positive("extent"))
    margin: float = dataclasses.field(default=1.5, metadata=dict(lower_bound=1.0))

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


def _window(config, num_points):
    """The computation grid (`margin` times the plotted window) and the mask of the plotted part."""
    half = config.extent * config.margin
    x = np.linspace(-half, half, num_points)
    return x, np.abs(x) <= config.extent + 1e-12


def _figure_1d(config, plt):
    x, shown = _window(config, config.num_points)
    f = RIPPLED[1].on_grid(x)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(config.times)))
    for ax, title in zip(axes, ("non-viscous: Hopf-Lax", f"viscous: Cole-Hopf, beta = {config.beta:g}")):
        figures.line_with_minimizer(ax, x, f, shown, color="black", label="f = u(., 0)", mark=False)
        ax.set_title(title)
        ax.set_xlabel("w")
        ax.grid(alpha=0.3)
    for t, color in zip(config.times, colors):
        figures.line_with_minimizer(axes[0], x, hopf_lax(f, x, t).u, shown, color=color, label=f"t = {t:g}")
        figures.line_with_minimizer(axes[1], x, viscous_hj(f, x, t, config.beta).u, shown, color=color,
                                    label=f"t = {t:g}")
    axes[0].set_ylabel("u(w, t)   (dots: minimizers)")
    for ax in axes:
        ax.legend(loc="upper center", fontsize=8)
    fig.suptitle("Smoothing a non-convex loss with Hamilton-Jacobi PDEs "
                 "(u_t = -1/2 |u_w|^2 + 1/(2 beta) u_ww)", fontsize=11)
    fig.tight_layout()
    return fig


def _figure_2d(config, plt):
    x, shown = _window(config, config.num_points_2d)
    f = RIPPLED[2].on_grid(x)
    t = config.time_2d
    panels = [("f = u(., 0)", f),
              (f"Hopf-Lax, t = {t:g}", hopf_lax(f, (x, x), t).u),
              (f"viscous, t = {t:g}, beta = {config.beta:g}", viscous_hj(f, (x, x), t, config.beta).u)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), sharex=True, sharey=True, layout="constrained")
    crop = np.ix_(shown, shown)
    levels = figures.contour_levels(f[crop], 25)
    for ax, (title, u) in zip(axes, panels):
        contour = figures.contour_with_minimizer(ax, x[shown], u[crop], title=title, levels=levels, lines=True)
        ax.set_xlabel("w_0")
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
    plt = figures.pyplot()
    os.makedirs(workdir, exist_ok=True)
    paths = []
    for name, draw in (("hj_smoothing_1d.png", _figure_1d), ("hj_smoothing_2d.png", _figure_2d)):
        print(f"computing {name} ...", flush=True)
        paths.append(figures.save_png(draw(config, plt), os.path.join(workdir, name), dpi=120))
    return paths


def define_flags(flag_values=flags.FLAGS) -> list[str]:
    """Defines --workdir and one flag per `SmoothingConfig` field on `flag_values` (global FLAGS by default).

    Called only when the module runs as `__main__` (or by a test on its own
    `FlagValues`), so importing it next to `experiments.train` in one process
    does not define `--workdir` twice.
    """
    flags.DEFINE_string("workdir", "./runs/hj_smoothing", "Where the PNGs go.", flag_values=flag_values)
    return ["workdir", *config_flags.define_config_flags(SmoothingConfig, flag_values)]


def config_from_flags(flag_values=flags.FLAGS) -> SmoothingConfig:
    return config_flags.config_from_flags(SmoothingConfig, flag_values)


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
