"""Controls `a(w, s)` of the training SDE `dw = -a(w, s) ds + sqrt(2/beta) dB`.

Every optimizer of the library is this SDE with a control `a = grad u`, `u` a
smoothed loss (docs/math.md section 1; Chaudhari et al., Deep Relaxation [2]):

    GreedyControl          a = grad f(w)                        u = f (SGD)
    LocalEntropyControl    a = gamma (w - <w'>)                  u = local entropy, the
                           <w'> the mean of p(w'; w) ∝           viscous HJ solution
                           exp(-beta [f(w') + gamma/2 |w-w'|^2])  with t = 1/gamma [1, 2]
    HopfLaxControl         a = p*,  p* = grad f(w - t p*)         u = Moreau envelope, the
                                                                  non-viscous HJ solution [2]

A control is a callable object `control(w, s, *, seed) -> a`: `w` carries one
leading axis of independent SDE paths in every part, `s` is the time (a scalar
tensor), `seed` a stateless seed for controls that sample; `a` has the
structure and shape of `w`. Its `loss_fn` attribute (`f`, written for one
weight structure) is the terminal cost `simulate_sde` uses. A new control
subclasses `Control` and implements `evaluate(w, s, seed)` (any callable with
the same signature also plugs into `simulate_sde`).

References:
  [1] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017. https://arxiv.org/abs/1611.01838
  [2] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
      https://arxiv.org/abs/1704.04932
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal import checks, sampling, structures
from control_opt.formulas.local_entropy import local_entropy_control, running_mean
from control_opt.pde.pointwise import proximal_point
from control_opt.mcmc.sgld_kernel import StochasticGradientLangevin, default_step_size

__all__ = ["Control", "GreedyControl", "LocalEntropyControl", "HopfLaxControl"]

_PATHS_AXIS = 1  # every part of `w` has one leading axis of paths


def _at_time(value, s):
    """A constant, or a schedule `value(s)` evaluated at the SDE time `s`."""
    return value(s) if callable(value) else value


class Control:
    """Base class: `control(w, s, *, seed=None) -> a`, batched over a leading paths axis.

    Subclasses implement `evaluate(w, s, seed)`; calling the control runs it,
    inside one cached `tf.function` when called eagerly (the inner loops and
    `tf.vectorized_map` would otherwise run op by op).
    """

    def __init__(self, loss_fn):
        if not callable(loss_fn):
            raise ValueError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}.")
        self.loss_fn = loss_fn
        self._traced = tf.function(self.evaluate, autograph=False)
        self._traced_gradient = tf.function(self._gradient, autograph=False)

    def _gradient(self, w):
        return structures.batched_value_and_gradient(self.loss_fn, w, _PATHS_AXIS)[1]

    def gradient(self, w):
        """`grad f(w)` for every path (in one cached `tf.function` when called eagerly)."""
        if tf.executing_eagerly():
            return self._traced_gradient(structures.as_tensors(w, "w"))
        return self._gradient(w)

    def evaluate(self, w, s, seed):
        """The control `a(w, s)`; `seed` is a shape-[2] int32 tensor or None."""
        raise NotImplementedError

    def __call__(self, w, s, *, seed=None):
        w = structures.as_tensors(w, "w")
        s = tf.convert_to_tensor(s, tf.nest.flatten(w)[0].dtype)
        if seed is not None:
            seed = tfp.random.sanitize_seed(seed)
        if tf.executing_eagerly():
            return self._traced(w, s, seed)
        return self.evaluate(w, s, seed)


class GreedyControl(Control):
    """`a(w, s) = grad f(w)`: the SDE is Langevin dynamics on `f` (SGD's continuous limit)."""

    def evaluate(self, w, s, seed):
        del s, seed
        return self.gradient(w)


class LocalEntropyControl(Control):
    """`a(w, s) = gamma (w - <w'>)`, the gradient of local entropy, estimated by SGLD.

    For each path an SGLD chain (`StochasticGradientLangevin`, whose update is
    `control_opt.formulas.local_entropy.langevin_step`) starts at the anchor `w` (the
    probe reset of Entropy-SGD), runs `num_burnin_steps + num_steps` steps on
    `p(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])` and `<w'>` is the
    average of its last `num_steps` states, or with `mean_decay = beta1` the
    running mean `mu <- beta1 mu + (1 - beta1) w'` of Entropy-SGD. All paths'
    chains run as one batch.

    Args:
      loss_fn: `f`, written for one weight structure (see `keras_loss_fn`).
      gamma: scope `> 0`, or a schedule `gamma(s)` (e.g. `1 / (T - s)`).
      beta: inverse temperature of the Gibbs measure `> 0`.
      step_size: SGLD step `h` (default `default_step_size(beta, gamma)`).
      num_steps: samples averaged per control evaluation (`L` of Entropy-SGD).
      num_burnin_steps: steps discarded first.
      batch_fn: optional `batch_fn(seed) -> batch` for minibatch gradients.
      mean_decay: None for the plain average, or beta1 in [0, 1) for the
        exponential running mean of Entropy-SGD.
    """

    def __init__(
        self,
        loss_fn,
        *,
        gamma,
        beta,
        step_size=None,
        num_steps=20,
        num_burnin_steps=0,
        batch_fn=None,
        mean_decay=None,
    ):
        super().__init__(loss_fn)
        checks.check_positive("gamma", gamma, tensor=True)
        checks.check_positive("beta", beta, tensor=True)
        if step_size is not None:
            checks.check_positive("step_size", step_size, tensor=True)
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"`num_steps` must be a positive integer, got {num_steps!r}.")
        if not isinstance(num_burnin_steps, int) or num_burnin_steps < 0:
            raise ValueError(f"`num_burnin_steps` must be a non-negative integer, got {num_burnin_steps!r}.")
        if mean_decay is not None and not 0.0 <= float(mean_decay) < 1.0:
            raise ValueError(f"`mean_decay` must be None or a float in [0, 1), got {mean_decay!r}.")
        self.gamma = gamma
        self.beta = beta
        self.step_size = step_size
        self.num_steps = num_steps
        self.num_burnin_steps = num_burnin_steps
        self.batch_fn = checks.check_callable("batch_fn", batch_fn, "batch_fn(seed) -> batch")
        self.mean_decay = mean_decay

    def kernel(self, w, s):
        """The SGLD kernel on `p(.; w)` at time `s`, one chain per path."""
        gamma = _at_time(self.gamma, s)
        step_size = default_step_size(self.beta, gamma) if self.step_size is None else self.step_size
        return StochasticGradientLangevin(
            self.loss_fn,
            w,
            step_size=step_size,
            beta=self.beta,
            gamma=gamma,
            batch_fn=self.batch_fn,
            anchor_batch_ndims=_PATHS_AXIS,
            validate_args=False,
        )

    def gibbs_mean(self, w, s, *, seed):
        """`<w'>` under `p(.; w)` for every path (the chain statistic of the control)."""
        if seed is None:
            raise ValueError("`seed` must be given: the local-entropy control samples.")
        kernel = self.kernel(w, s)
        seed = tfp.random.sanitize_seed(seed)
        total = self.num_burnin_steps + self.num_steps
        results = kernel.bootstrap_results(w)
        mean = tf.nest.map_structure(tf.identity, w)
        decay = self.mean_decay

        def body(i, probe, results, mean):
            probe, results = kernel.one_step(probe, results, seed=sampling.fold_in(seed, i))
            k = tf.cast(i - self.num_burnin_steps + 1, tf.nest.flatten(w)[0].dtype)
            if decay is None:
                weight = 1.0 / tf.maximum(k, 1.0)  # running average of the post-burn-in states
                new_mean = tf.nest.map_structure(lambda m, x: m + weight * (x - m), mean, probe)
            else:
                new_mean = tf.nest.map_structure(lambda m, x: running_mean(m, x, decay), mean, probe)
            keep = i >= self.num_burnin_steps
            mean = tf.nest.map_structure(lambda new, old: tf.where(keep, new, old), new_mean, mean)
            return i + 1, probe, results, mean

        _, _, _, mean = tf.while_loop(
            lambda i, *_: i < total, body, (tf.constant(0), w, results, mean), maximum_iterations=total
        )
        return mean

    def __call__(self, w, s, *, seed=None):
        if seed is None:
            raise ValueError("`seed` must be given: the local-entropy control samples.")
        return super().__call__(w, s, seed=seed)

    def evaluate(self, w, s, seed):
        mean = self.gibbs_mean(w, s, seed=seed)
        gamma = _at_time(self.gamma, s)
        return tf.nest.map_structure(
            lambda anchor, m: local_entropy_control(anchor, m, tf.cast(gamma, anchor.dtype)), w, mean
        )


class HopfLaxControl(Control):
    """`a(w, s) = p*` with `p* = grad f(w - t p*)`: the Hopf-Lax (proximal) control.

    `p*` is the gradient of the Moreau envelope `u(w, t) = min_y f(y) +
    |w - y|^2/(2t)` and `w - t p*` the proximal point (docs/math.md section 4);
    it is found by `control_opt.pde.pointwise.proximal_point` (damped
    fixed-point iteration), run on all paths at once. `t = 1/gamma` relates it
    to the local-entropy control, its viscous counterpart. A path whose
    iteration does not converge keeps the last iterate; `report` returns the
    full `ProximalPointResults` (converged and residual per path) to check.

    Args:
      loss_fn: `f`, written for one weight structure.
      t: Hopf-Lax time `> 0` or a schedule `t(s)`.
      damping, max_iterations, tolerance: passed to `proximal_point`.
    """

    def __init__(self, loss_fn, *, t, damping=0.5, max_iterations=100, tolerance=1e-6):
        super().__init__(loss_fn)
        checks.check_positive("t", t, tensor=True)
        self.t = t
        self.damping = damping
        self.max_iterations = max_iterations
        self.tolerance = tolerance

    def report(self, w, s):
        """`ProximalPointResults` of the fixed-point iteration at every path (one cached `tf.function` eagerly)."""
        if tf.executing_eagerly():
            if not hasattr(self, "_traced_report"):
                self._traced_report = tf.function(self._report, autograph=False)
            w = structures.as_tensors(w, "w")
            return self._traced_report(w, tf.convert_to_tensor(s, tf.nest.flatten(w)[0].dtype))
        return self._report(w, s)

    def _report(self, w, s):
        return proximal_point(
            self.gradient,
            w,
            _at_time(self.t, s),
            damping=self.damping,
            max_iterations=self.max_iterations,
            tolerance=self.tolerance,
            batch_dims=_PATHS_AXIS,  # every path is its own fixed point, judged on its own
        )

    def evaluate(self, w, s, seed):
        del seed
        return self.report(w, s).p
