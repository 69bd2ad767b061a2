"""Stochastic-gradient Langevin dynamics on the local Gibbs measure, as a `tfp.mcmc.TransitionKernel`.

Target (Chaudhari et al., ICLR 2017 [1], eq. 3): `p(w'; w) ∝ exp(-beta U(w'))`
with `U(w') = f(w') + gamma/2 |w - w'|^2`. One step with step size `h`
(Welling and Teh [2], eq. 4, with log p = -beta U and a minibatch gradient
`g` of `f`):

    w' <- w' + h/2 grad log p(w') + sqrt(h) xi
        = w' - (h beta / 2) [g + gamma (w' - w)] + sqrt(h) xi,     xi ~ N(0, I)

Parameters, ours and Entropy-SGD's (DESIGN.md section 3). The inner loop of
Entropy-SGD writes the same step as `w' <- w' - eta' [g + gamma (w' - w)]
+ eps sqrt(2 eta') xi`; the two are one step when

    beta = 1 / eps^2,      h = 2 eps^2 eta'      (so eta' = h beta / 2)

so `StochasticGradientLangevin(step_size=h, beta=beta)` is the Keras
optimizer's inner step with `langevin_learning_rate = h beta / 2` and
`noise = beta^(-1/2)`; `from_entropy_sgd` builds the kernel from the latter
pair. The update itself is `control_opt.formulas.local_entropy.langevin_step`, the
function the Keras optimizer calls: one implementation of the SGLD step.

Not calibrated: there is no Metropolis correction, so the chain samples
`p(.; w)` only up to an O(h) bias (and the minibatch noise); `is_calibrated`
is False. For the quadratic `f` the stationary mean is exact and each
covariance eigenvalue `1/(beta lambda)` is inflated by `1 / (1 - eta' lambda / 2)`.

Randomness is stateless: the step's seed is split into a minibatch seed
(passed to `batch_fn`) and a noise seed, and stored in the results, so
`one_step(state, previous_results, seed=results.seed)` replays a step exactly.

References:
  [1] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017. https://arxiv.org/abs/1611.01838
  [2] M. Welling, Y. W. Teh. Bayesian learning via stochastic gradient
      Langevin dynamics. ICML 2011.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal import checks, sampling, structures
from control_opt.formulas.local_entropy import langevin_noise_scale, langevin_step

__all__ = ["StochasticGradientLangevin", "StochasticGradientLangevinResults", "default_step_size"]


def default_step_size(beta, gamma):
    """A conservative default `h = 0.1 / (beta gamma)`, i.e. `eta' gamma = 0.05`.

    The coupling alone has variance `1/(beta gamma)`; this step resolves it in
    about 20 steps and is stable while the curvature of `f` stays below
    `~40 gamma` (`eta' (lambda_max(Hess f) + gamma) < 2`). Choose `step_size`
    explicitly for stiffer losses.
    """
    return 0.1 / (beta * gamma)


class StochasticGradientLangevinResults(NamedTuple):
    """Kernel results (immutable; update with `_replace`).

    Attributes:
      step: number of steps taken.
      seed: the stateless seed of the step that produced the current state
        (zeros after `bootstrap_results`); pass it back to `one_step` to replay.
      loss: minibatch loss `f(w')` at the state the step started from, one
        value per chain.
      gradient: the minibatch gradient `g` used by that step (state-shaped).
      velocity: the Langevin momentum buffer `v'` (state-shaped), or `()`
        without momentum.
    """

    step: Any
    seed: Any
    loss: Any
    gradient: Any
    velocity: Any


class StochasticGradientLangevin(tfp.mcmc.TransitionKernel):
    """SGLD for the local Gibbs measure `p(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])`.

    Example:
      >>> f = lambda w: 0.5 * tf.reduce_sum(w ** 2)
      >>> kernel = StochasticGradientLangevin(f, tf.ones(3), step_size=1e-2, beta=10.0, gamma=1.0)
      >>> samples = tfp.mcmc.sample_chain(500, tf.zeros([8, 3]), kernel=kernel,
      ...                                 trace_fn=None, seed=[1, 2])  # 8 chains

    Leading axes of the state beyond the anchor's shape are independent chains.
    """

    def __init__(
        self,
        loss_fn,
        anchor,
        *,
        step_size,
        beta,
        gamma,
        batch_fn=None,
        momentum=0.0,
        nesterov=False,
        anchor_batch_ndims=0,
        validate_args=True,
        name=None,
    ):
        """Builds the kernel.

        Args:
          loss_fn: `f`, written for one weight structure, returning a scalar;
            called as `loss_fn(w')`, or `loss_fn(w', batch_fn(seed))` when a
            `batch_fn` is given.
          anchor: `w`, a tensor or nested structure (the state has its structure).
          step_size: `h > 0`, the Welling-Teh step on `log p`.
          beta: inverse temperature `> 0`.
          gamma: scope `> 0`.
          batch_fn: optional `batch_fn(seed) -> batch` drawing a minibatch
            from a stateless seed (see `control_opt.minibatch_fn`).
          momentum: Langevin momentum `m'` in [0, 1) as in Entropy-SGD's inner
            loop (the chain is then no longer plain SGLD).
          nesterov: Nesterov form of that momentum.
          anchor_batch_ndims: leading axes of `anchor` that index independent
            anchors (one per SDE path); the state's trailing batch axes.
          validate_args: evaluate `loss_fn` at `anchor` once (a mismatch
            between them raises here, naming both) and check `anchor` and
            the initial state for NaN. Internal callers that already did so
            pass False.
          name: optional name.
        """
        checks.check_positive("step_size", step_size, tensor=True)
        checks.check_positive("beta", beta, tensor=True)
        checks.check_positive("gamma", gamma, tensor=True)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"`momentum` must be a float in [0, 1), got {momentum!r}.")
        checks.check_callable("batch_fn", batch_fn, "batch_fn(seed) -> batch")
        anchor = structures.as_tensors(anchor, "anchor")
        if validate_args:
            anchor = structures.check_finite(anchor, "anchor")
            probe_batch = () if batch_fn is None else (batch_fn(tf.constant([0, 0], tf.int32)),)
            if anchor_batch_ndims:
                structures.batched_loss(loss_fn, anchor, anchor_batch_ndims, *probe_batch)
            else:
                structures.evaluate_loss_at(loss_fn, anchor, "loss_fn", "anchor", *probe_batch)
        self._parameters = dict(
            loss_fn=loss_fn,
            anchor=anchor,
            step_size=step_size,
            beta=beta,
            gamma=gamma,
            batch_fn=batch_fn,
            momentum=momentum,
            nesterov=nesterov,
            anchor_batch_ndims=anchor_batch_ndims,
            validate_args=validate_args,
            name=name,
        )
        self._event = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape[anchor_batch_ndims:], a.dtype), anchor)

    @classmethod
    def from_entropy_sgd(cls, loss_fn, anchor, *, langevin_learning_rate, noise, gamma, **kwargs):
        """The kernel of Entropy-SGD's inner loop: `beta = 1/eps^2`, `h = 2 eps^2 eta'`."""
        checks.check_positive("langevin_learning_rate", langevin_learning_rate, tensor=True)
        checks.check_positive("noise", noise, tensor=True)
        return cls(
            loss_fn,
            anchor,
            step_size=2.0 * noise**2 * langevin_learning_rate,
            beta=1.0 / noise**2,
            gamma=gamma,
            **kwargs,
        )

    @property
    def parameters(self):
        return dict(self._parameters)

    @property
    def loss_fn(self):
        return self._parameters["loss_fn"]

    @property
    def anchor(self):
        return self._parameters["anchor"]

    @property
    def step_size(self):
        return self._parameters["step_size"]

    @property
    def beta(self):
        return self._parameters["beta"]

    @property
    def gamma(self):
        return self._parameters["gamma"]

    @property
    def batch_fn(self):
        return self._parameters["batch_fn"]

    @property
    def langevin_learning_rate(self):
        """`eta' = h beta / 2`, Entropy-SGD's inner learning rate."""
        return self.step_size * self.beta / 2.0

    @property
    def noise(self):
        """`eps = beta^(-1/2)`, Entropy-SGD's thermal noise."""
        return self.beta**-0.5

    @property
    def is_calibrated(self):
        return False

    def _batch_ndims(self, state):
        ndims = structures.batch_ndims_of(state, self._event, "current_state", "anchor")
        if ndims < self._parameters["anchor_batch_ndims"]:
            raise ValueError("`current_state` must carry the batch axes of `anchor`.")
        return ndims

    def one_step(self, current_state, previous_kernel_results, seed=None):
        """One SGLD step; returns `(next_state, kernel_results)`."""
        p = self._parameters
        with tf.name_scope(p["name"] or "stochastic_gradient_langevin"):
            seed = tfp.random.sanitize_seed(seed)
            batch_seed, noise_seed = tf.unstack(sampling.split_seed(seed, 2, "sgld_step"))
            args = () if p["batch_fn"] is None else (p["batch_fn"](batch_seed),)
            batch_ndims = self._batch_ndims(current_state)
            loss, gradient = structures.batched_value_and_gradient(p["loss_fn"], current_state, batch_ndims, *args)
            xi = sampling.standard_normal_like(current_state, noise_seed, "sgld_noise")
            flat_state = tf.nest.flatten(current_state)
            flat_velocity = tf.nest.flatten(previous_kernel_results.velocity) or [None] * len(flat_state)
            new_state, new_velocity = [], []
            for probe, g, anchor, v, x in zip(
                flat_state,
                tf.nest.flatten(gradient),
                tf.nest.flatten(p["anchor"]),
                flat_velocity,
                tf.nest.flatten(xi),
            ):
                learning_rate = tf.cast(self.langevin_learning_rate, probe.dtype)
                scale = langevin_noise_scale(tf.cast(self.noise, probe.dtype), learning_rate)
                probe, v = langevin_step(
                    probe,
                    g,
                    anchor,
                    v,
                    learning_rate=learning_rate,
                    gamma=tf.cast(p["gamma"], probe.dtype),
                    momentum=p["momentum"],
                    nesterov=p["nesterov"],
                    noise=scale * x,
                )
                new_state.append(probe)
                new_velocity.append(v)
            next_state = tf.nest.pack_sequence_as(current_state, new_state)
            velocity = tf.nest.pack_sequence_as(current_state, new_velocity) if p["momentum"] else ()
            results = previous_kernel_results._replace(
                step=previous_kernel_results.step + 1,
                seed=seed,
                loss=loss,
                gradient=gradient,
                velocity=velocity,
            )
            return next_state, results

    def bootstrap_results(self, init_state):
        """Results before the first step; checks `init_state` (structure, NaN)."""
        init_state = structures.as_tensors(init_state, "init_state")
        if self._parameters["validate_args"]:
            init_state = structures.check_finite(init_state, "init_state")
        batch_ndims = self._batch_ndims(init_state)
        first = tf.nest.flatten(init_state)[0]
        zeros = tf.nest.map_structure(tf.zeros_like, init_state)
        return StochasticGradientLangevinResults(
            step=tf.constant(0, tf.int32),
            seed=tf.zeros([2], tf.int32),
            loss=tf.zeros(tf.shape(first)[:batch_ndims], first.dtype),
            gradient=zeros,
            velocity=zeros if self._parameters["momentum"] else (),
        )
