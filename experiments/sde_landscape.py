"""The "wide valley" experiment in miniature: where do controlled SDE paths end?

    python -m experiments.sde_landscape --workdir=./runs/sde_landscape \
        --num_paths=1000 --t_final=10 --dt=0.04 --beta=20 --gamma=0.25 --gibbs_beta=5

On a 1-D and a 2-D loss `f` with a narrow deep minimum and a wide shallow one,
`num_paths` paths of the training SDE (Deep Relaxation [1] section 2; DESIGN.md
section 1)

    dw = -a(w, s) ds + sqrt(2 / beta) dB,     w(0) uniform in [-extent, extent]^d,

are simulated under

  greedy          a = grad f                                     (SGD)
  local entropy   a = gamma (w - <w'>), <w'> estimated by an SGLD chain of
                  `inner_steps` steps on exp(-gibbs_beta [f(w') + gamma/2 |w - w'|^2])
                  (Entropy-SGD [2]; the viscous HJ control with t = 1/gamma)
  local entropy (exact, 1-D only)   the same control read from the grid
                  solution of the viscous HJ equation (`control_opt.pde.viscous_hj`):
                  what the sampler estimates, without sampling error
  Hopf-Lax        a = p*, p* = grad f(w - t p*) by damped fixed-point iteration
                  (non-viscous HJ, t = `hopf_lax_t`)

and each path's end point is assigned to the valley (basin of attraction of
`f` under gradient flow) it lies in. Reported per landscape and control: the
fraction of paths ending in each valley and the control cost
`C = f(w(T)) + 1/2 ∫ |a|^2 ds` (mean and standard error), printed as a table
and written to `workdir/results.json`; the figure `workdir/sde_landscape.png`
shows the landscapes and their smoothings, sample paths and the end points.

`main()` only parses flags; the work is in `run_experiment(config, workdir)`.

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
  [2] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

from absl import app, flags
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal.atomic import atomic_write
from control_opt.sde.controls import Control, GreedyControl, HopfLaxControl, LocalEntropyControl
from control_opt.pde import hopf_lax, viscous_hj
from control_opt.sde.simulate import simulate_sde

__all__ = ["LandscapeConfig", "Landscape", "LANDSCAPES", "run_experiment", "define_flags", "config_from_flags"]


@dataclasses.dataclass(frozen=True)
class LandscapeConfig:
    """Everything the experiment depends on.

    Attributes:
      num_paths: SDE paths per control and landscape.
      t_final: horizon T.
      dt: Euler-Maruyama step (stable for the narrow well's curvature ~44 below 0.045).
      beta: inverse temperature of the SDE noise sqrt(2/beta) dB.
      gamma: scope of the local-entropy control (viscous HJ time t = 1/gamma).
      gibbs_beta: inverse temperature of the local Gibbs measure.
      inner_steps: SGLD samples averaged per control evaluation (after
        inner_steps // 2 burn-in steps).
      inner_learning_rate: the chain's Langevin learning rate eta' (its step
        h = 2 eta' / gibbs_beta); eta' times the narrow curvature must stay < 2.
      hopf_lax_t: time t of the Hopf-Lax control.
      hopf_lax_damping: damping of its fixed-point iteration (convergence needs
        t |Hess f| < (1 + damping) / (1 - damping)).
      hopf_lax_max_iterations: the most fixed-point updates per control evaluation.
      extent: initial states uniform in [-extent, extent]^d.
      num_plot_paths: sample paths drawn per control.
      seed: the experiment's seed.
      dims: which landscapes to run (1, 2 or both).
    """

    num_paths: int = 1000
    t_final: float = 10.0
    dt: float = 0.04
    beta: float = 20.0
    gamma: float = 0.25
    gibbs_beta: float = 5.0
    inner_steps: int = 60
    inner_learning_rate: float = 0.03
    hopf_lax_t: float = 0.3
    hopf_lax_damping: float = 0.9
    hopf_lax_max_iterations: int = 200
    extent: float = 3.0
    num_plot_paths: int = 12
    seed: int = 0
    dims: tuple = (1, 2)

    def validate(self):
        for name in ("t_final", "dt", "beta", "gamma", "gibbs_beta", "inner_learning_rate", "hopf_lax_t", "extent"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
        for name, minimum in (("num_paths", 2), ("inner_steps", 1), ("hopf_lax_max_iterations", 1),
                              ("num_plot_paths", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= minimum):
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
        if self.dt > self.t_final:
            raise ValueError(f"`dt` ({self.dt}) must not exceed `t_final` ({self.t_final}).")
        if not 0.0 <= self.hopf_lax_damping < 1.0:
            raise ValueError(f"`hopf_lax_damping` must be in [0, 1), got {self.hopf_lax_damping!r}.")
        if not self.dims or any(d not in (1, 2) for d in self.dims):
            raise ValueError(f"`dims` must be a non-empty subset of (1, 2), got {self.dims!r}.")


def _bump(w, center, widths):
    """exp(-sum_i (w_i - c_i)^2 / (2 s_i^2)) over the last axis."""
    z = (w - tf.constant(center, w.dtype)) / tf.constant(widths, w.dtype)
    return tf.exp(-0.5 * tf.reduce_sum(z**2, axis=-1))


@dataclasses.dataclass(frozen=True)
class Landscape:
    """`f(w) = c |w|^2 + 1 - depth_n bump_narrow(w) - depth_w bump_wide(w)`.

    `loss` acts on the last axis (a point of dimension `dim`), so the same
    formula serves the SDE (one point) and the plotting grids (many).
    """

    name: str
    dim: int
    narrow_center: tuple
    narrow_widths: tuple
    narrow_depth: float
    wide_center: tuple
    wide_widths: tuple
    wide_depth: float
    confinement: float = 0.05

    def loss(self, w):
        w = tf.convert_to_tensor(w)
        return (self.confinement * tf.reduce_sum(w**2, axis=-1) + 1.0
                - self.narrow_depth * _bump(w, self.narrow_center, self.narrow_widths)
                - self.wide_depth * _bump(w, self.wide_center, self.wide_widths))

    def valleys(self):
        return {"narrow": self.narrow_center, "wide": self.wide_center}


LANDSCAPES = {
    1: Landscape("1d", 1, (-1.0,), (0.15,), 1.0, (1.4,), (0.8,), 0.8),
    2: Landscape("2d", 2, (-1.2, 1.0), (0.15, 0.15), 1.0, (1.0, -0.8), (0.8, 0.6), 0.8),
}


class GridControl(Control):
    """`a(w) = grad u(w)` interpolated from a 1-D grid solution (the exact local-entropy control)."""

    def __init__(self, loss_fn, grid, gradient):
        super().__init__(loss_fn)
        self._low, self._high = float(grid[0]), float(grid[-1])
        self._gradient = np.asarray(gradient)

    def evaluate(self, w, s, seed):
        del s, seed
        values = tf.constant(self._gradient, w.dtype)
        low, high = tf.constant(self._low, w.dtype), tf.constant(self._high, w.dtype)
        return tfp.math.interp_regular_1d_grid(w, low, high, values)


def _grid(landscape, config, num_points):
    half = 2.0 * config.extent
    x = np.linspace(-half, half, num_points)
    if landscape.dim == 1:
        values = landscape.loss(tf.constant(x[:, None])).numpy()
        return x, x, values
    w0, w1 = np.meshgrid(x, x, indexing="ij")
    values = landscape.loss(tf.constant(np.stack([w0, w1], -1))).numpy()
    return (x, x), x, values


def _smoothed(landscape, config):
    """The two HJ smoothings of f on a grid: viscous (t = 1/gamma, gibbs_beta) and Hopf-Lax."""
    grid, axis, values = _grid(landscape, config, 1201 if landscape.dim == 1 else 241)
    viscous = viscous_hj(values, grid, 1.0 / config.gamma, config.gibbs_beta)
    return {"grid": grid, "axis": axis, "f": values, "viscous": viscous,
            "hopf_lax": hopf_lax(values, grid, config.hopf_lax_t).u}


def _argmin(axis, values, dim):
    index = np.unravel_index(np.argmin(values), values.shape)
    return [float(axis[i]) for i in index][:dim]


@tf.function(autograph=False, reduce_retracing=True)
def _gradient_flow(loss_fn_batched, w, learning_rate, num_steps):
    def body(i, w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            total = tf.reduce_sum(loss_fn_batched(w))
        return i + 1, w - learning_rate * tape.gradient(total, w)

    return tf.while_loop(lambda i, w: i < num_steps, body, (tf.constant(0), w))[1]


def classify(landscape, points):
    """The valley ("narrow", "wide" or "other") whose basin of attraction under gradient flow holds each point."""
    # Step 0.02 is stable for the narrow well (curvature ~44); 2000 steps reach either minimum.
    ends = _gradient_flow(landscape.loss, tf.constant(points, tf.float32), 0.02, 2000).numpy()
    labels = np.full(len(points), "other", dtype=object)
    minima = {}
    for name, center in landscape.valleys().items():
        # The minimum near each bump's centre, found by the same flow.
        minima[name] = _gradient_flow(landscape.loss, tf.constant([center], tf.float32), 0.02, 2000).numpy()[0]
    for name, minimum in minima.items():
        labels[np.linalg.norm(ends - minimum, axis=-1) < 0.1] = name
    return labels, minima


def _controls(landscape, config, smoothed):
    loss = lambda w: landscape.loss(w)
    controls = {
        "greedy": GreedyControl(loss),
        "local entropy (SGLD)": LocalEntropyControl(
            loss, gamma=config.gamma, beta=config.gibbs_beta, step_size=2.0 * config.inner_learning_rate / config.gibbs_beta,
            num_steps=config.inner_steps, num_burnin_steps=config.inner_steps // 2),
        "Hopf-Lax": HopfLaxControl(loss, t=config.hopf_lax_t, damping=config.hopf_lax_damping,
                                   max_iterations=config.hopf_lax_max_iterations, tolerance=1e-5),
    }
    if landscape.dim == 1:
        controls["local entropy (exact)"] = GridControl(loss, smoothed["axis"], smoothed["viscous"].grad)
    return controls


def _hopf_lax_residuals(control, w, s):
    """Per-path fixed-point residual |grad f(w - t p) - p| / (1 + |p|) of the Hopf-Lax control at `w`."""
    p = control.report(w, s).p
    g = control.gradient(w - control.t * p)
    return (np.linalg.norm((g - p).numpy(), axis=-1) / (1.0 + np.linalg.norm(p.numpy(), axis=-1)))


def _run_landscape(landscape, config):
    smoothed = _smoothed(landscape, config)
    rng = np.random.default_rng(config.seed + landscape.dim)
    w0 = tf.constant(rng.uniform(-config.extent, config.extent, (config.num_paths, landscape.dim)), tf.float32)
    start_labels, minima = classify(landscape, w0.numpy())
    summary = {
        "valleys": {name: {"minimum": [float(v) for v in m], "f": float(landscape.loss(tf.constant(m)))}
                    for name, m in minima.items()},
        "start_fractions": {name: float(np.mean(start_labels == name)) for name in ("narrow", "wide", "other")},
        "minimizer_f": _argmin(smoothed["axis"], smoothed["f"], landscape.dim),
        "minimizer_viscous_u": _argmin(smoothed["axis"], smoothed["viscous"].u, landscape.dim),
        "minimizer_hopf_lax_u": _argmin(smoothed["axis"], smoothed["hopf_lax"], landscape.dim),
        "controls": {},
    }
    runs = {}
    record_every = max(1, round(config.t_final / config.dt) // 100)
    for i, (name, control) in enumerate(_controls(landscape, config, smoothed).items()):
        start = time.perf_counter()
        result = simulate_sde(control, w0, t_final=config.t_final, dt=config.dt, beta=config.beta,
                              num_paths=config.num_paths, seed=[config.seed, 100 * landscape.dim + i],
                              per_path_w0=True, record_paths=True, record_every=record_every)
        seconds = time.perf_counter() - start
        final = result.final_state.numpy()
        labels, _ = classify(landscape, final)
        entry = {
            "fraction_narrow": float(np.mean(labels == "narrow")),
            "fraction_wide": float(np.mean(labels == "wide")),
            "fraction_other": float(np.mean(labels == "other")),
            "cost_mean": float(result.cost_mean),
            "cost_stderr": float(result.cost_stderr),
            "final_loss_mean": float(np.mean(result.terminal_cost.numpy())),
            "seconds": seconds,
        }
        if isinstance(control, HopfLaxControl):
            residual = _hopf_lax_residuals(control, result.final_state, config.t_final)
            entry["hopf_lax_fraction_converged_at_end"] = float(np.mean(residual < 1e-3))
        summary["controls"][name] = entry
        runs[name] = (result, labels)
    return summary, smoothed, runs


def _table(results):
    header = ["landscape", "control", "narrow", "wide", "other", "cost C (± s.e.)", "f(w(T))"]
    rows = []
    for landscape, summary in results["landscapes"].items():
        rows.append([landscape, "(start points)", *(f"{summary['start_fractions'][k]:.3f}" for k in ("narrow", "wide", "other")), "", ""])
        for name, entry in summary["controls"].items():
            rows.append([landscape, name, f"{entry['fraction_narrow']:.3f}", f"{entry['fraction_wide']:.3f}",
                         f"{entry['fraction_other']:.3f}", f"{entry['cost_mean']:.3f} ± {entry['cost_stderr']:.3f}",
                         f"{entry['final_loss_mean']:.3f}"])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])




COLORS = {"greedy": "tab:red", "local entropy (SGLD)": "tab:blue", "local entropy (exact)": "tab:cyan",
          "Hopf-Lax": "tab:green"}


def _figure(config, outcomes):
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    rows = len(outcomes)
    fig, axes = plt.subplots(rows, 5, figsize=(24, 4.6 * rows), squeeze=False)
    for row, (landscape, (summary, smoothed, runs)) in zip(axes, outcomes.items()):
        axis, extent = smoothed["axis"], config.extent
        shown = np.abs(axis) <= extent + 1e-9
        if landscape.dim == 1:
            ax = row[0]
            ax.plot(axis[shown], smoothed["f"][shown], "k", lw=2, label="f")
            ax.plot(axis[shown], smoothed["viscous"].u[shown], color=COLORS["local entropy (SGLD)"],
                    label=f"local entropy u (t=1/gamma={1 / config.gamma:g}, beta={config.gibbs_beta:g})")
            ax.plot(axis[shown], smoothed["hopf_lax"][shown], color=COLORS["Hopf-Lax"],
                    label=f"Hopf-Lax u (t={config.hopf_lax_t:g})")
            ax.set_title("1-D landscape and its HJ smoothings")
            ax.set_xlabel("w")
            ax.legend(fontsize=7)
            for ax, name in zip(row[1:4], ["greedy", "local entropy (SGLD)", "Hopf-Lax"]):
                result, _ = runs[name]
                paths = result.paths.numpy()[:, : config.num_plot_paths, 0]
                ax.plot(result.times.numpy(), paths, color=COLORS[name], lw=0.8, alpha=0.8)
                for valley in summary["valleys"].values():
                    ax.axhline(valley["minimum"][0], color="gray", ls=":", lw=1)
                ax.set_title(f"{name}: sample paths")
                ax.set_xlabel("time s")
                ax.set_ylabel("w(s)")
            ax = row[4]
            bins = np.linspace(-extent, extent, 61)
            for name, (result, _) in runs.items():
                ax.hist(result.final_state.numpy()[:, 0], bins=bins, histtype="step", lw=1.5, color=COLORS[name],
                        label=name)
            ax.set_title(f"w(T) of {config.num_paths} paths, T={config.t_final:g}")
            ax.set_xlabel("w(T)")
            ax.legend(fontsize=7)
        else:
            crop = np.ix_(shown, shown)
            x = axis[shown]
            levels = np.linspace(smoothed["f"][crop].min(), np.percentile(smoothed["f"][crop], 95), 20)
            panels = [("f", smoothed["f"]), (f"local entropy u (t={1 / config.gamma:g})", smoothed["viscous"].u),
                      (f"Hopf-Lax u (t={config.hopf_lax_t:g})", smoothed["hopf_lax"])]
            for ax, (title, values) in zip(row[:3], panels):
                values = values[crop]
                ax.contourf(x, x, values.T, levels=np.linspace(values.min(), np.percentile(values, 95), 20),
                            cmap="viridis", extend="both")
                i, j = np.unravel_index(np.argmin(values), values.shape)
                ax.plot(x[i], x[j], "*", color="red", markersize=12, markeredgecolor="white")
                ax.set_title(f"2-D: {title} (star: minimizer)")
                ax.set_aspect("equal")
            ax = row[0]
            for name, (result, _) in runs.items():
                paths = result.paths.numpy()[:, : max(1, config.num_plot_paths // 3)]
                for k in range(paths.shape[1]):
                    ax.plot(paths[:, k, 0], paths[:, k, 1], color=COLORS[name], lw=0.7)
            ax.set_title("2-D: f, with sample paths")
            ax = row[3]
            ax.contour(x, x, smoothed["f"][crop].T, levels=levels, colors="gray", linewidths=0.5)
            for name, (result, _) in runs.items():
                final = result.final_state.numpy()
                ax.scatter(final[:, 0], final[:, 1], s=3, color=COLORS[name], alpha=0.5, label=name)
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            ax.legend(fontsize=7, markerscale=4)
            ax.set_title("2-D: w(T)")
            ax = row[4]
            names = list(summary["controls"])
            narrow = [summary["controls"][n]["fraction_narrow"] for n in names]
            wide = [summary["controls"][n]["fraction_wide"] for n in names]
            ax.bar(range(len(names)), wide, color="tab:olive", label="wide valley")
            ax.bar(range(len(names)), narrow, bottom=wide, color="tab:purple", label="narrow valley")
            ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_title("2-D: fraction of paths per valley")
            ax.legend(fontsize=7)
    fig.suptitle(f"dw = -a(w,s) ds + sqrt(2/beta) dB, beta={config.beta:g}, T={config.t_final:g}, dt={config.dt:g}, "
                 f"{config.num_paths} paths from uniform starts", fontsize=12)
    fig.tight_layout()
    return fig, plt


def run_experiment(config: LandscapeConfig, workdir: str) -> dict:
    """Simulates every control on every landscape; writes results.json and sde_landscape.png into `workdir`.

    Returns:
      The results (what results.json holds), plus "table" (the printed text)
      and "files" (the paths written).

    Raises:
      ValueError: a config field out of range (the message names it).
    """
    config.validate()
    os.makedirs(workdir, exist_ok=True)
    outcomes, results = {}, {"config": dataclasses.asdict(config), "landscapes": {}}
    for dim in config.dims:
        landscape = LANDSCAPES[dim]
        outcomes[landscape] = _run_landscape(landscape, config)
        summary = outcomes[landscape][0]
        summary["definition"] = dataclasses.asdict(landscape)
        results["landscapes"][landscape.name] = summary
    json_path = os.path.join(workdir, "results.json")
    atomic_write(json_path, lambda f: json.dump(results, f, indent=2))
    fig, plt = _figure(config, outcomes)
    png_path = os.path.join(workdir, "sde_landscape.png")
    try:
        atomic_write(png_path, lambda f: fig.savefig(f, format="png", dpi=90), mode="wb")
    finally:
        plt.close(fig)
    return dict(results, table=_table(results), files=[json_path, png_path])


def define_flags(flag_values=flags.FLAGS):
    """Defines this entry point's flags on `flag_values` (only when run as `__main__`, or by a test)."""
    d = LandscapeConfig()
    flags.DEFINE_string("workdir", "./runs/sde_landscape", "Where results.json and the PNG go.",
                        flag_values=flag_values)
    for field in dataclasses.fields(LandscapeConfig):
        default = getattr(d, field.name)
        help_text = f"See LandscapeConfig.{field.name}."
        if field.name == "dims":
            flags.DEFINE_list("dims", [str(v) for v in default], "Landscapes to run: 1, 2 or 1,2.",
                              flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_float(field.name, default, help_text, flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> LandscapeConfig:
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(LandscapeConfig)}
    try:
        values["dims"] = tuple(int(v) for v in values["dims"])
    except ValueError as error:
        raise ValueError(f"`dims` must be a comma list of 1 and/or 2: {error}") from error
    return LandscapeConfig(**values)


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    results = run_experiment(config_from_flags(FLAGS), FLAGS.workdir)
    print(results["table"])
    for path in results["files"]:
        print(f"Wrote {os.path.abspath(path)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
