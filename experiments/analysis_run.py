"""`analyze_run(workdir, config)`: SGD-as-variational-inference diagnostics of a finished training run.

Reads a run directory of `experiments.train` (`experiments/training/rundir.py`):

* `checkpoint.keras` (`RunDir.load_evaluated_model`: the weights the run evaluated
  at; after an anchored optimizer's `fit` the saved model holds the anchor, so the
  anchor is analysed; for Elastic-SGD / Parle on several replicas, the center),
* `config.json` (model, data set, `max_train_examples`, batch size, learning rate),
* `snapshots.npz` when present (`experiments.training.snapshots.WeightSnapshots`),

and computes, at the checkpointed weights, on training examples (a seeded random
subset, in inference mode, loss = the runner's
`SparseCategoricalCrossentropy(from_logits=True)`):

* the diffusion matrix `D` of SGD (per-example gradient covariance) from
  `diffusion_examples` examples: its whole nonzero spectrum (Gram route: at most
  N - 1 nonzero eigenvalues) when that fits in memory, else its top 100 on the
  route `diffusion_spectrum`'s "auto" plans (a MemoryError naming the flags when
  none fits), trace, isotropy, and the paper's numerical rank
  `#{lambda > lambda_max P eps}` (float32 eps) with the tolerance, plus the
  relative rank `#{lambda > rtol lambda_max}`;
* the Hessian of the mean loss on `hessian_examples` examples: top-`hessian_k`
  eigenvalues by Lanczos with their residuals, the SLQ spectral density, the
  Hutchinson trace with its standard error and the SLQ near-zero fraction
  `|lambda| <= near_zero_rtol * lambda_max`;
* with snapshots: the last `1 - burn_in_fraction` of the trajectory projected on
  its top-2 principal components, and its stochastic-area rate with batch-means
  standard error (`control_opt.analysis.stochastic_area`, time in optimizer steps).

Writes `analysis.json` (atomically) and `diffusion_spectrum.png`,
`hessian_density.png`, `trajectory.png` (when snapshots exist) into the run
directory. `python -m experiments.analyze --workdir=RUN` is the command line.
Importing this module defines no flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
from absl import logging

from experiments.training.snapshots import SNAPSHOTS_FILE, read_snapshots

__all__ = ["AnalysisConfig", "analyze_run", "load_run", "ANALYSIS_FILE", "FIGURES", "trajectory_area",
           "LoggedOperator"]

ANALYSIS_FILE = "analysis.json"
FIGURES = dict(diffusion="diffusion_spectrum.png", hessian="hessian_density.png", trajectory="trajectory.png")
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """What `experiments.analyze` computes (the run directory is not part of it).

    Attributes:
      diffusion_examples: Training examples N for the diffusion matrix D (exact Gram route; rank D <= N - 1).
      hessian_examples: Training examples for the Hessian, its density and trace; 0 = the whole training set.
      hessian_k: Top Hessian eigenvalues computed by Lanczos.
      lanczos_steps: Lanczos steps for the top eigenvalues; 0 = until converged, at most max(4k, k + 30).
      density_probes: Probes of the stochastic Lanczos quadrature (Hessian density).
      density_steps: Lanczos steps per SLQ probe.
      trace_probes: Rademacher probes of Hutchinson's trace estimate.
      near_zero_rtol: An eigenvalue is near zero when |lambda| <= near_zero_rtol * lambda_max.
      rank_eps: eps of D's numerical rank #{lambda > lambda_max P eps} (default float32's, as in the paper).
      rank_rtol: Relative threshold of D's relative rank #{lambda > rtol lambda_max}.
      burn_in_fraction: Fraction of the snapshots dropped at the start of the trajectory (transient).
      area_batches: Time batches for the stochastic area's standard error (batch means).
      chunk_size: Examples per chunk of the per-example and Hessian-vector products.
      seed: Seeds the example subsets, Lanczos start vectors and probes.
      figures: Write the PNG figures.
      data_dir: Folder of the data set's files; None = the run's own (config.json's data_dir, else
        $CONTROL_OPT_DATA_DIR). The run's dataset_kwargs (e.g. preprocess) always apply.
    """

    diffusion_examples: int = dataclasses.field(default=512, metadata=dict(lower_bound=2))
    hessian_examples: int = dataclasses.field(default=1000, metadata=dict(lower_bound=0))
    hessian_k: int = dataclasses.field(default=10, metadata=dict(lower_bound=1))
    lanczos_steps: int = dataclasses.field(default=0, metadata=dict(lower_bound=0))
    density_probes: int = dataclasses.field(default=4, metadata=dict(lower_bound=1))
    density_steps: int = dataclasses.field(default=80, metadata=dict(lower_bound=2))
    trace_probes: int = dataclasses.field(default=50, metadata=dict(lower_bound=2))
    near_zero_rtol: float = dataclasses.field(default=1e-3, metadata=dict(lower_bound=0.0))
    rank_eps: float = _FLOAT32_EPS
    rank_rtol: float = 1e-3
    burn_in_fraction: float = dataclasses.field(default=0.5, metadata=dict(lower_bound=0.0, upper_bound=0.95))
    area_batches: int = dataclasses.field(default=20, metadata=dict(lower_bound=2))
    chunk_size: int = dataclasses.field(default=500, metadata=dict(lower_bound=1))
    seed: int = dataclasses.field(default=0, metadata=dict(lower_bound=0))
    figures: bool = True
    data_dir: str | None = None


# ---------------------------------------------------------------------------- progress


class LoggedOperator:
    """A `LinearOperator`-like wrapper that logs progress (products done, products per second) every few seconds."""

    def __init__(self, operator, what: str, expected: int | None = None, every_s: float = 5.0):
        self._op, self.dim, self.what, self.expected, self.every_s = operator, operator.dim, what, expected, every_s
        self.count, self._t0, self._last = 0, time.perf_counter(), time.perf_counter()

    def reset(self, what: str, expected: int | None = None):
        self.what, self.expected, self.count = what, expected, 0
        self._t0 = self._last = time.perf_counter()

    def matvec(self, v):
        out = self._op.matvec(v)
        self.count += 1
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            rate = self.count / (now - self._t0)
            total = f"/{self.expected}" if self.expected else ""
            eta = f", ~{(self.expected - self.count) / rate:.0f} s left" if self.expected else ""
            logging.info("%s: %d%s Hessian-vector products, %.1f per s%s", self.what, self.count, total, rate, eta)
            self._last = now
        return out

    def seconds(self):
        return time.perf_counter() - self._t0


# ---------------------------------------------------------------------------- reading the run


def load_run(workdir: str, data_dir: str | None = None):
    """(model, run config dict, training data `(x, y)`, snapshots or None, weights) of a run directory.

    The model holds the weights the run evaluated at (`RunDir.load_evaluated_model`):
    `weights` says which ("weights", "anchor", "center of n replicas": Elastic-SGD / Parle).

    The data are the run's own: its data set with its `dataset_kwargs` (e.g. `preprocess`) from
    `data_dir`, default the run's recorded one (`experiments.training.inputs.load_data`).

    Raises:
      FileNotFoundError: the workdir, its checkpoint.keras or its config.json is missing (the message names it).
    """
    from experiments.training import inputs  # pylint: disable=import-outside-toplevel
    from experiments.training.config import config_from_json  # pylint: disable=import-outside-toplevel
    from experiments.training.rundir import RunDir  # pylint: disable=import-outside-toplevel

    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"run directory {workdir} does not exist "
                                "(give --workdir of a run of experiments.train)")
    model, weights = RunDir(workdir).load_evaluated_model()  # the anchor; Elastic-SGD / Parle: the center
    with open(os.path.join(workdir, "config.json")) as f:
        run_config = json.load(f)
    config = config_from_json(run_config)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    x, y, _, _ = inputs.examples(config, inputs.load_data(config))
    snapshot_path = os.path.join(workdir, SNAPSHOTS_FILE)
    snapshots = read_snapshots(snapshot_path) if os.path.exists(snapshot_path) else None
    return model, run_config, (x, y), snapshots, weights


def _subset(x, y, n, rng):
    if n <= 0 or n >= len(x):
        return np.asarray(x), np.asarray(y)
    index = np.sort(rng.choice(len(x), size=n, replace=False))
    return np.asarray(x)[index], np.asarray(y)[index]


def _loss():
    import keras  # pylint: disable=import-outside-toplevel

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _finite(value):
    """JSON-safe: floats (NaN/inf as None), lists, dicts."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_finite(v) for v in np.asarray(value).tolist()] if isinstance(value, np.ndarray) else \
            [_finite(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ---------------------------------------------------------------------------- the computations


def loss_and_accuracy(model, x, y, chunk_size=1000):
    """Mean loss (the runner's cross-entropy on logits) and accuracy on `(x, y)`, inference mode."""
    loss, total, correct = _loss(), 0.0, 0
    for lo in range(0, len(x), chunk_size):
        logits = model(np.asarray(x[lo:lo + chunk_size]), training=False)
        yc = np.asarray(y[lo:lo + chunk_size])
        total += float(loss(yc, logits)) * len(yc)
        correct += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == yc))
    return total / len(x), correct / len(x)


_PARTIAL_K = 100  # D's top eigenvalues computed when its whole nonzero spectrum (the Gram route) does not fit


def _diffusion_k(n, dim, itemsize, config: AnalysisConfig):
    """`(k, route)`: the whole nonzero spectrum (`k = min(N - 1, P)`) when "auto" plans the exact Gram route for
    it, else the top `_PARTIAL_K` on the route "auto" plans for that. Raises MemoryError (naming the flags)
    when no route fits in the memory budget (`control_opt.analysis.memory`)."""
    from control_opt.analysis.diffusion import plan_route  # pylint: disable=import-outside-toplevel

    k = max(1, min(n - 1, dim))
    try:
        plan = plan_route(n, dim, k, itemsize=itemsize, chunk_size=config.chunk_size)
        if plan.method != "gram" and k > _PARTIAL_K:
            k = _PARTIAL_K
            plan = plan_route(n, dim, k, itemsize=itemsize, chunk_size=config.chunk_size)
    except MemoryError as error:
        raise MemoryError(f"experiments.analyze: the diffusion matrix of {n} examples (--diffusion_examples) in "
                          f"chunks of {config.chunk_size} (--chunk_size) does not fit: {error}") from error
    return k, plan.method


def diffusion_analysis(model, x, y, config: AnalysisConfig, run_config: dict | None = None) -> dict:
    """D's spectrum and rank from `len(x)` examples: the whole nonzero spectrum on the exact Gram route when
    it fits in memory, else the top `_PARTIAL_K` (the rank is then a lower bound); "auto" route, default stopping."""
    from control_opt import analysis  # pylint: disable=import-outside-toplevel

    n = len(x)
    dim = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    itemsize = max(np.dtype(v.dtype).itemsize for v in model.trainable_variables)
    k, route = _diffusion_k(n, dim, itemsize, config)
    logging.info("diffusion matrix: per-example gradients of %d examples, %d weights: top %d eigenvalues, %s route",
                 n, dim, k, route)
    t0 = time.perf_counter()
    spec = analysis.diffusion_spectrum(model, _loss(), x, y, k=k, method="auto", eps=config.rank_eps,
                                       rtol=config.rank_rtol, chunk_size=config.chunk_size, seed=config.seed,
                                       verbose=True)
    seconds = time.perf_counter() - t0
    logging.info("diffusion matrix: %.1f s (%.0f examples per s); rank %d / %d (fraction %.3g, tolerance %.3g)",
                 seconds, n / seconds, spec.rank, dim, spec.rank_fraction, spec.rank_tolerance)
    out = dict(
        num_examples=n, dim=dim, eigenvalues=spec.eigenvalues, trace=spec.trace,
        trace_of_square=spec.trace_of_square, eigenvalue_mean=spec.eigenvalue_mean,
        eigenvalue_std=spec.eigenvalue_std, isotropy=spec.isotropy, anisotropy=spec.anisotropy,
        rank=spec.rank, rank_fraction=spec.rank_fraction, rank_tolerance=spec.rank_tolerance, eps=spec.eps,
        rank_fraction_of_max=spec.rank / max(min(n - 1, dim), 1),
        relative_rank=spec.relative_rank, rtol=spec.rtol, gradient_norm=float(np.linalg.norm(spec.gradient)),
        seconds=seconds, method=spec.method, rank_is_lower_bound=spec.rank_is_lower_bound,
        residuals=spec.residuals,
        rank_note="rank = #{lambda > rank_tolerance}, rank_tolerance = lambda_max * P * eps; rank <= N - 1, "
                  "so rank_fraction = rank / P <= (N - 1) / P; rank_fraction_of_max = rank / min(N - 1, P)",
    )
    if run_config and run_config.get("optimizer") == "sgd" and run_config.get("learning_rate"):
        from experiments.training.schedules import parse_lr_schedule  # pylint: disable=import-outside-toplevel

        epochs = float(run_config.get("epochs") or 0)
        drops = [v for e, v in parse_lr_schedule(run_config.get("lr_schedule") or "") if e < epochs]
        lr = float(drops[-1]) if drops else float(run_config["learning_rate"])
        out["final_learning_rate"] = lr
        out["temperature"] = analysis.sgd_temperature(lr, int(run_config["batch_size"]))
    return out


def hessian_analysis(model, x, y, config: AnalysisConfig) -> dict:
    """Top eigenvalues (Lanczos), SLQ density and Hutchinson trace of the Hessian on `(x, y)`."""
    from control_opt import analysis  # pylint: disable=import-outside-toplevel
    from control_opt.analysis.lanczos import default_space  # pylint: disable=import-outside-toplevel

    op = analysis.hessian_operator(model, _loss(), x, y, chunk_size=config.chunk_size)
    dim = op.dim
    k = min(config.hessian_k, dim)
    steps = config.lanczos_steps or min(dim, default_space(k))
    logged = LoggedOperator(op, "Hessian top eigenvalues (Lanczos)", expected=steps)
    logging.info("Hessian: %d examples, %d weights; Lanczos %s %d steps, SLQ %d x %d, Hutchinson %d probes",
                 len(x), dim, "" if config.lanczos_steps else "at most", steps, config.density_probes,
                 config.density_steps, config.trace_probes)
    # default: Lanczos stops once the top k have converged (hessian_eigenvalues' stopping rule)
    eig = analysis.hessian_eigenvalues(logged, k=k, num_steps=min(steps, dim) if config.lanczos_steps else None,
                                       seed=config.seed)
    t_eig = logged.seconds()
    logging.info("Hessian top eigenvalue %.6g (residual %.2g): %.1f s, %.2f s per product", eig.top[0],
                 eig.top_residuals[0], t_eig, t_eig / max(logged.count, 1))
    logged.reset("Hessian density (SLQ)", config.density_probes * min(config.density_steps, dim))
    dens = analysis.spectral_density(logged, num_probes=config.density_probes,
                                     num_steps=min(config.density_steps, dim), seed=config.seed + 1)
    t_dens = logged.seconds()
    logged.reset("Hessian trace (Hutchinson)", config.trace_probes)
    trace = analysis.hessian_trace(logged, num_probes=config.trace_probes, seed=config.seed + 2)
    t_trace = logged.seconds()
    top = float(eig.top[0])
    tolerance = config.near_zero_rtol * abs(top)
    bottom = float(np.min(dens.nodes[dens.weights > 0])) if np.any(dens.weights > 0) else float("nan")
    logging.info("Hessian: trace %.4g +- %.2g, near-zero fraction %.3f; density %.1f s, trace %.1f s",
                 trace.trace, trace.stderr, dens.fraction_within(tolerance), t_dens, t_trace)
    return dict(
        num_examples=len(x), dim=dim, top_eigenvalue=top, top_eigenvalues=eig.top, top_residuals=eig.top_residuals,
        lanczos_steps=eig.num_steps, trace=trace.trace, trace_stderr=trace.stderr, trace_probes=trace.num_probes,
        near_zero_fraction=dens.fraction_within(tolerance), near_zero_tolerance=tolerance,
        near_zero_rtol=config.near_zero_rtol, lowest_density_node=bottom,
        negative_fraction=float(np.mean(np.sum(dens.weights * (dens.nodes < -tolerance), axis=1))),
        density=dict(grid=dens.grid, density=dens.density, sigma=dens.sigma, num_probes=dens.num_probes,
                     num_steps=dens.num_steps),
        seconds=dict(eigenvalues=t_eig, density=t_dens, trace=t_trace),
    )


def trajectory_area(trajectory, dt: float = 1.0, *, burn_in_fraction=0.5, num_batches=20) -> dict:
    """Top-2 PC projection of the trajectory's last part and its stochastic-area rate with standard error.

    Two estimates. In-sample (`area_*`): the PCs of the states used, as in the
    paper's figures. It is biased away from 0 for any non-stationary path: a
    random walk projected on its own top-2 PCs traces a systematic arc (its
    Karhunen-Loeve modes cos(pi s), cos(2 pi s) enclose an area of 5/3 in their
    units), so compare it with a control. Held-out (`heldout_*`): PCs fitted on
    the first half of the states used, the area measured on the second half in
    those fixed directions, where a reversible process has zero mean area.

    Args:
      trajectory: `[T, d]` states, evenly spaced by `dt`.
      dt: the time between states (the unit of the rate).
      burn_in_fraction: fraction of the states dropped first.
      num_batches: batches of the batch-means standard error.

    Returns:
      dict: `projection` `[T', 2]`, `explained_ratio`, `area_rate` (A_12 / t), `area_stderr`, `area_z`
      (rate / stderr), `normalized_rate` (rate / sqrt(var_1 var_2), per unit time: scale-free), and counts.
    """
    from control_opt import analysis  # pylint: disable=import-outside-toplevel

    path = np.asarray(trajectory, dtype=np.float64)
    start = int(burn_in_fraction * len(path))
    used = path[start:]
    batches = int(min(num_batches, max(2, (len(used) - 1) // 2)))
    if len(used) < 5:
        raise ValueError(f"the trajectory has {len(used)} states after burn-in; at least 5 are needed")
    pcs = analysis.principal_components(used, k=2)
    area = analysis.stochastic_area(pcs.projections, dt, num_batches=batches)
    rate, stderr = float(area.rate[0, 1]), float(area.stderr[0, 1])
    scale = float(np.sqrt(pcs.explained_variance[0] * pcs.explained_variance[1]))
    half = len(used) // 2
    held = dict.fromkeys(("heldout_area_rate", "heldout_area_stderr", "heldout_area_z", "heldout_normalized_rate"),
                         float("nan"))
    if half >= 3 and len(used) - half >= 5:
        fit = analysis.principal_components(used[:half], k=2)
        test = analysis.project(used[half:], fit.components, fit.mean)
        hb = int(min(num_batches, max(2, (len(test) - 1) // 2)))
        area_h = analysis.stochastic_area(test, dt, num_batches=hb)
        hr, hs = float(area_h.rate[0, 1]), float(area_h.stderr[0, 1])
        hv = np.var(test, axis=0, ddof=1)
        held = dict(heldout_area_rate=hr, heldout_area_stderr=hs, heldout_area_z=hr / hs if hs > 0 else float("nan"),
                    heldout_normalized_rate=hr / float(np.sqrt(hv[0] * hv[1])) if np.all(hv > 0) else float("nan"))
    return dict(**held,num_states=len(path), burn_in=start, num_used=len(used), dt=dt, num_batches=batches,
                explained_ratio=pcs.explained_ratio, explained_variance=pcs.explained_variance,
                area_rate=rate, area_stderr=stderr, area_z=rate / stderr if stderr > 0 else float("nan"),
                normalized_rate=rate / scale if scale > 0 else float("nan"),
                normalized_stderr=stderr / scale if scale > 0 else float("nan"),
                projection=pcs.projections)


# ---------------------------------------------------------------------------- figures


def _figures(workdir, result, projection):
    from experiments import figures  # pylint: disable=import-outside-toplevel

    plt = figures.pyplot()
    written = {}
    d = result["diffusion"]
    lam = np.asarray(d["eigenvalues"], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    positive = lam > 0
    ax.semilogy(np.arange(1, lam.size + 1)[positive], lam[positive], ".", ms=3)
    ax.axhline(d["rank_tolerance"], color="r", ls="--", lw=1, label=f"tolerance (rank {d['rank']} / {d['dim']})")
    ax.set(xlabel="index", ylabel="eigenvalue of D",
           title=f"diffusion matrix, N = {d['num_examples']}: rank fraction {d['rank_fraction']:.3g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written["diffusion"] = figures.save_png(fig, os.path.join(workdir, FIGURES["diffusion"]))

    h = result["hessian"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    grid, dens = np.asarray(h["density"]["grid"]), np.asarray(h["density"]["density"])
    ax.semilogy(grid, np.maximum(dens, 1e-12))
    for value in h["top_eigenvalues"]:
        ax.axvline(value, color="r", lw=0.5, alpha=0.5)
    ax.set_ylim(bottom=max(1e-8, dens[dens > 0].min() if np.any(dens > 0) else 1e-8))
    ax.set(xlabel="eigenvalue", ylabel="density (SLQ)",
           title=f"Hessian: top {h['top_eigenvalue']:.3g}, trace {h['trace']:.3g}, "
                 f"near-zero {h['near_zero_fraction']:.2f}")
    fig.tight_layout()
    written["hessian"] = figures.save_png(fig, os.path.join(workdir, FIGURES["hessian"]))

    if projection is not None:
        t = result["trajectory"]
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot(projection[:, 0], projection[:, 1], lw=0.4, color="0.6")
        points = ax.scatter(projection[:, 0], projection[:, 1], c=np.arange(len(projection)), s=3, cmap="viridis")
        fig.colorbar(points, ax=ax, label="snapshot")
        ax.set(xlabel=f"PC 1 ({100 * t['explained_ratio'][0]:.0f}%)",
               ylabel=f"PC 2 ({100 * t['explained_ratio'][1]:.0f}%)",
               title=f"area rate {t['area_rate']:.3g} +- {t['area_stderr']:.2g} per step (z = {t['area_z']:.2f})")
        ax.title.set_fontsize(9)
        fig.tight_layout()
        written["trajectory"] = figures.save_png(fig, os.path.join(workdir, FIGURES["trajectory"]))
    return written


# ---------------------------------------------------------------------------- the whole analysis


def analyze_run(workdir: str, config: AnalysisConfig | None = None) -> dict:
    """Analyses the run in `workdir`; writes analysis.json and the figures there; returns the result dict.

    Raises:
      FileNotFoundError: missing workdir, checkpoint.keras or config.json (named).
    """
    from control_opt._internal.atomic import atomic_write  # pylint: disable=import-outside-toplevel
    from experiments.training.rundir import RunDir  # pylint: disable=import-outside-toplevel

    config = AnalysisConfig() if config is None else config
    t_start = time.perf_counter()
    model, run_config, (x, y), snapshots, weights = load_run(workdir, config.data_dir)
    rng = np.random.default_rng(config.seed)
    dim = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    logging.info("analysing %s: %s on %s (%s), %d weights, %d training examples", workdir, run_config.get("model"),
                 run_config.get("dataset"), run_config.get("optimizer"), dim, len(x))
    result: dict[str, Any] = dict(
        workdir=os.path.abspath(workdir),
        run=dict(optimizer=run_config.get("optimizer"), model=run_config.get("model"),
                 dataset=run_config.get("dataset"), seed=run_config.get("seed"),
                 steps=int(model.optimizer.iterations.numpy()) if getattr(model, "optimizer", None) else
                 RunDir(workdir).checkpoint_step(), weights=weights, num_weights=dim, num_train_examples=len(x)),
        config=dataclasses.asdict(config),
    )
    result["run"]["train_loss"], result["run"]["train_accuracy"] = loss_and_accuracy(model, x, y, config.chunk_size)
    logging.info("at the analysed weights: train loss %.4g, train accuracy %.4f", result["run"]["train_loss"],
                 result["run"]["train_accuracy"])
    xd, yd = _subset(x, y, config.diffusion_examples, rng)
    result["diffusion"] = diffusion_analysis(model, xd, yd, config, run_config)
    xh, yh = _subset(x, y, config.hessian_examples, rng)
    result["hessian"] = hessian_analysis(model, xh, yh, config)
    projection = None
    if snapshots is not None and len(snapshots) >= 5:
        start = int(config.burn_in_fraction * len(snapshots))
        gaps = np.diff(snapshots.steps[start:])
        dt = float(np.median(gaps)) if gaps.size else float(snapshots.every)  # the actual spacing, in steps
        if gaps.size and np.any(gaps != gaps[0]):
            logging.warning("snapshots are not evenly spaced (gaps %d..%d steps); the area uses dt = %g",
                            gaps.min(), gaps.max(), dt)
        traj = trajectory_area(snapshots.weights, dt, burn_in_fraction=config.burn_in_fraction,
                               num_batches=config.area_batches)
        projection = traj.pop("projection")
        traj.update(every_steps=snapshots.every, evenly_spaced=bool(gaps.size == 0 or np.all(gaps == gaps[0])),
                    projected=snapshots.projected,
                    first_step=int(snapshots.steps[traj["burn_in"]]), last_step=int(snapshots.steps[-1]),
                    time_unit="optimizer step")
        result["trajectory"] = traj
        logging.info("trajectory: %d snapshots (%d used), area rate %.3g +- %.2g per step (z = %.2f)",
                     traj["num_states"], traj["num_used"], traj["area_rate"], traj["area_stderr"], traj["area_z"])
    else:
        result["trajectory"] = None
        logging.info("trajectory: no snapshots in %s (train with --snapshot_every=K to record them)", workdir)
    result["figures"] = _figures(workdir, result, projection) if config.figures else {}
    result["figures"] = {k: os.path.basename(v) for k, v in result["figures"].items()}
    result["seconds"] = time.perf_counter() - t_start
    result = _finite(result)
    atomic_write(os.path.join(workdir, ANALYSIS_FILE),
                 lambda f: f.write(json.dumps(result, indent=1, sort_keys=True) + "\n"))
    logging.info("wrote %s (%.1f s)", os.path.join(workdir, ANALYSIS_FILE), result["seconds"])
    return result
