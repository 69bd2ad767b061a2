"""The "wide valley" experiment in miniature: where do controlled SDE paths end?

    python -m experiments.sde_landscape --workdir=./runs/sde_landscape \
        --num_paths=1000 --t_final=10 --dt=0.04 --beta=20 --gamma=0.25 --gibbs_beta=5

On a 1-D and a 2-D loss `f` with a narrow deep minimum and a wide shallow one,
`num_paths` paths of the training SDE (Deep Relaxation [1] section 2; docs/math.md
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

The landscapes are `experiments.landscapes.VALLEYS`; the chain's step comes from
Entropy-SGD's parameters through the library's map
(`control_opt.formulas.local_entropy.sgld_parameters`). `main()` only parses flags
(derived from `LandscapeConfig` by `experiments.config_flags`); the work is in
`run_experiment(config, workdir)`.

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
from control_opt.formulas import local_entropy
from control_opt.pde import hopf_lax, viscous_hj
from control_opt.sde.controls import Control, GreedyControl, HopfLaxControl, LocalEntropyControl
from control_opt.sde.simulate import simulate_sde
from experiments import config_flags, figures
from experiments.landscapes import VALLEYS, Landscape, classify

LANDSCAPES = VALLEYS  # this experiment's landscapes, by dimension

__all__ = ["LandscapeConfig", "Landscape", "LANDSCAPES", "run_experiment", "define_flags", "config_from_flags",
           "sgld_parameters"]


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
      dims: which landscapes to run: 1, 2 or 1,2.
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
    dims: tuple[int, ...] = dataclasses.field(default=(1, 2), metadata=dict(choices=(1, 2)))

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
    return (x if landscape.dim == 1 else (x, x)), x, landscape.on_grid(x)


def _smoothed(landscape, config):
    """The two HJ smoothings of f on a grid: viscous (t = 1/gamma, gibbs_beta) and Hopf-Lax."""
    grid, axis, values = _grid(landscape, config, 1201 if landscape.dim == 1 else 241)
    viscous = viscous_hj(values, grid, 1.0 / config.gamma, config.gibbs_beta)
    return {"grid": grid, "axis": axis, "f": values, "viscous": viscous,
            "hopf_lax": hopf_lax(values, grid, config.hopf_lax_t).u}


def _argmin(axis, values, dim):
    index = np.unravel_index(np.argmin(values), values.shape)
    return [float(axis[i]) for i in index][:dim]


def sgld_parameters(config: LandscapeConfig, landscape: Landscape):
    """(step h, inverse temperature beta) of the local-entropy chain, via Entropy-SGD's parameters.

    The chain is Entropy-SGD's inner loop with Langevin learning rate
    eta' = `inner_learning_rate` and thermal noise eps = gibbs_beta^(-1/2); the
    map (eta', eps) -> (h, beta) is the library's
    (`control_opt.formulas.local_entropy.sgld_parameters`: beta = 1/eps^2, h = 2 eps^2 eta').
    """
    del landscape  # the map does not depend on the loss
    step_size, beta = local_entropy.sgld_parameters(config.inner_learning_rate, config.gibbs_beta ** -0.5)
    return float(step_size), float(beta)


def _controls(landscape, config, smoothed):
    loss = lambda w: landscape.loss(w)
    step_size, beta = sgld_parameters(config, landscape)
    controls = {
        "greedy": GreedyControl(loss),
        "local entropy (SGLD)": LocalEntropyControl(
            loss, gamma=config.gamma, beta=beta, step_size=step_size,
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
        print(f"landscape {landscape.name}: {name}, {config.num_paths} paths ...", flush=True)
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
    plt = figures.pyplot()
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
            levels = figures.contour_levels(smoothed["f"][crop], 20)
            panels = [("f", smoothed["f"]), (f"local entropy u (t={1 / config.gamma:g})", smoothed["viscous"].u),
                      (f"Hopf-Lax u (t={config.hopf_lax_t:g})", smoothed["hopf_lax"])]
            for ax, (title, values) in zip(row[:3], panels):
                figures.contour_with_minimizer(ax, x, values[crop], title=f"2-D: {title} (star: minimizer)")
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
    return fig


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
    png_path = figures.save_png(_figure(config, outcomes), os.path.join(workdir, "sde_landscape.png"), dpi=90)
    return dict(results, table=_table(results), files=[json_path, png_path])


def define_flags(flag_values=flags.FLAGS) -> list[str]:
    """Defines --workdir and one flag per `LandscapeConfig` field (help from its docstring) on `flag_values`.

    Called only when the module runs as `__main__` (or by a test on its own `FlagValues`).
    """
    flags.DEFINE_string("workdir", "./runs/sde_landscape", "Where results.json and the PNG go.",
                        flag_values=flag_values)
    return ["workdir", *config_flags.define_config_flags(LandscapeConfig, flag_values)]


def config_from_flags(flag_values=flags.FLAGS) -> LandscapeConfig:
    return config_flags.config_from_flags(LandscapeConfig, flag_values)


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
