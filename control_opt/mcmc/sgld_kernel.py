"""Stochastic-gradient Langevin dynamics on the local Gibbs measure, as a `tfp.mcmc.TransitionKernel`.

Target (Chaudhari et al., ICLR 2017 [1], eq. 3): `p(w'; w) ∝ exp(-beta U(w'))`
with `U(w') = f(w') + gamma/2 |w - w'|^2`. One step with step size `h`
(Welling and Teh [2], eq. 4, with log p = -beta U and a minibatch gradient
`g` of `f`):

    w' <- w' + h/2 grad log p(w') + sqrt(h) xi
        = w' - (h beta / 2) [g + gamma (w' - w)] + sqrt(h) xi,     xi ~ N(0, I)

Parameters, ours and Entropy-SGD's (docs/math.md section 3). The inner loop of
Entropy-SGD writes the same step as `w' <- w' - eta' [g + gamma (w' - w)]
+ eps sqrt(2 eta') xi`; the two are one step when

    beta = 1 / eps^2,      h = 2 eps^2 eta'      (so eta' = h beta / 2)

so `StochasticGradientLangevin(step_size=h, beta=beta)` is the Keras
optimizer's inner step with `langevin_learning_rate = h beta / 2` and
`noise = beta^(-1/2)`; `from_entropy_sgd` builds the kernel from the latter
pair. The update itself is `control_opt.formulas.local_entropy.langevin_step`;
the Keras optimizers apply the same step in place with TensorFlow's fused
training kernels (`local_entropy.langevin_step_in_place`, equal up to float
rounding, tests/optimizers/test_fused_kernels.py): one formula of the SGLD step.

Not calibrated: there is no Metropolis correction, so the chain samples
`p(.; w)` only up to an O(h) bias (and the minibatch noise); `is_calibrated`
is False. For the quadratic `f` the stationary mean is exact and each
covariance eigenvalue `1/(beta lambda)` is inflated by `1 / (1 - eta' lambda / 2)`.

A tfp kernel like `tfp.mcmc.UncalibratedLangevin`: its results carry, for the
new state, `target_log_prob` (`log p` up to its constant), `grads_target_log_prob`
(cached: one gradient evaluation per step), the `log_acceptance_correction`
`log q(x | x') - log q(x' | x)` of the Gaussian proposal
`q(x' | x) = N(x + h/2 grad log p(x), h I)`, and the `step_size` that the step
used (read from the results, so step-size adaptation can set it). Hence, with
full-batch gradients and `momentum = 0`:

  * `tfp.mcmc.MetropolisHastings(kernel)` is MALA on the local Gibbs measure
    (exact stationary law, no O(h) bias);
  * `tfp.mcmc.SimpleStepSizeAdaptation` / `DualAveragingStepSizeAdaptation`
    around that MetropolisHastings tune `h` to a target acceptance rate;
  * `tfp.mcmc.TransformedTransitionKernel(kernel, bijector)` samples in
    unconstrained coordinates: it replaces `target_log_prob_fn` (the kernel
    then steps on that density with the same Langevin update, momentum applied to
    the whole gradient).

What minibatch gradients (`batch_fn`) cannot do: a Metropolis-Hastings
correction needs the exact log density at both states and the exact proposal
density; a minibatch estimate of `f` makes the acceptance ratio random (and
biased in exp), which breaks detailed balance, so no MH wrapper can correct
SGLD's bias with minibatches. With `batch_fn` (and likewise with `momentum > 0`,
whose proposal is not a function of the current state alone) the kernel sets
`log_acceptance_correction` to NaN: a MetropolisHastings wrapper then rejects
every proposal (acceptance rate 0) instead of silently sampling a wrong law,
and step-size adaptation has nothing valid to adapt to. `TransformedTransitionKernel`
needs one fixed `target_log_prob_fn` and refuses a kernel with `batch_fn`.
Minibatch SGLD stays an uncalibrated chain: pick `h` small (see
`curvature_step_size`) and check its bias by halving it.

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

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal import checks, sampling, structures
from control_opt.formulas.local_entropy import langevin_noise_scale, langevin_step, sgld_parameters
from control_opt.mcmc.step_size import curvature_step_size, default_step_size, largest_curvature

__all__ = [
    "StochasticGradientLangevin",
    "StochasticGradientLangevinResults",
    "curvature_step_size",
    "default_step_size",
    "largest_curvature",
]

class StochasticGradientLangevinResults(NamedTuple):
    """Kernel results (immutable; update with `_replace`).

    Attributes:
      step: number of steps taken, one count per chain (batch-shaped, so that
        `MetropolisHastings` can select it per chain: there it counts the
        accepted steps of each chain).
      seed: the stateless seed of the step that produced the current state
        (zeros after `bootstrap_results`); pass it back to `one_step` to replay.
      loss: minibatch loss `f(w')` at the state the step started from, one
        value per chain.
      gradient: the minibatch gradient `g` used by that step (state-shaped).
      velocity: the Langevin momentum buffer `v'` (state-shaped), or `()`
        without momentum.
      target_log_prob: `log p` (up to its constant) at the new state, one value
        per chain (tfp's convention: the results describe the new state).
      grads_target_log_prob: its gradient (state-shaped), reused by the next step.
      log_acceptance_correction: `log q(x | x') - log q(x' | x)` of the
        Langevin proposal (NaN with `batch_fn` or momentum: no valid MH correction).
      step_size: the step `h` (a scalar tensor); step-size adaptation sets it.
    """

    step: Any
    seed: Any
    loss: Any
    gradient: Any
    velocity: Any
    target_log_prob: Any = ()
    grads_target_log_prob: Any = ()
    log_acceptance_correction: Any = ()
    step_size: Any = ()


class _LocalGibbsTarget:
    """Marks the kernel's own `target_log_prob_fn` (rebuilt from the parameters by `copy`)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *state_parts):
        return self.fn(*state_parts)


class StochasticGradientLangevin(tfp.mcmc.TransitionKernel):
    """SGLD for the local Gibbs measure `p(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])`.

    Example:
      >>> f = lambda w: 0.5 * tf.reduce_sum(w ** 2)
      >>> kernel = StochasticGradientLangevin(f, tf.ones(3), step_size=1e-2, beta=10.0, gamma=1.0)
      >>> samples = tfp.mcmc.sample_chain(500, tf.zeros([8, 3]), kernel=kernel,
      ...                                 trace_fn=None, seed=[1, 2])  # 8 chains
      >>> mala = tfp.mcmc.MetropolisHastings(kernel)   # MALA on p (full-batch gradients)

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
        target_log_prob_fn=None,
        name=None,
    ):
        """Builds the kernel.

        Args:
          loss_fn: `f`, written for one weight structure, returning a scalar;
            called as `loss_fn(w')`, or `loss_fn(w', batch_fn(seed))` when a
            `batch_fn` is given.
          anchor: `w`, a tensor or nested structure (the state has its structure).
          step_size: `h > 0`, the Welling-Teh step on `log p` (the initial value
            of `results.step_size`, which the step reads).
          beta: inverse temperature `> 0`.
          gamma: scope `> 0`.
          batch_fn: optional `batch_fn(seed) -> batch` drawing a minibatch
            from a stateless seed (see `control_opt.minibatch_fn`). The
            gradient at a new state is taken on the batch drawn by the step
            that produced it (independent of that state, so unbiased);
            `bootstrap_results` draws its batch from the seed `[0, 0]`.
          momentum: Langevin momentum `m'` in [0, 1) as in Entropy-SGD's inner
            loop (the chain is then no longer plain SGLD).
          nesterov: Nesterov form of that momentum.
          anchor_batch_ndims: leading axes of `anchor` that index independent
            anchors (one per SDE path); the state's trailing batch axes.
          validate_args: evaluate `loss_fn` (and its gradient) at `anchor` once (a
            mismatch between them, a non-float or non-finite loss raise here,
            naming both) and check `anchor` and the initial state for NaN.
            Internal callers that already did so pass False.
          target_log_prob_fn: None (the default): the local Gibbs measure of
            `loss_fn`. A callable `target_log_prob_fn(*state_parts)` replaces
            it (what `tfp.mcmc.TransformedTransitionKernel` passes through
            `copy`); the step is then `x + h/2 grad log p + sqrt(h) xi` on it.
          name: optional name.
        """
        checks.check_positive("step_size", step_size, tensor=True)
        checks.check_positive("beta", beta, tensor=True)
        checks.check_positive("gamma", gamma, tensor=True)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"`momentum` must be a float in [0, 1), got {momentum!r}.")
        checks.check_callable("batch_fn", batch_fn, "batch_fn(seed) -> batch")
        if isinstance(target_log_prob_fn, _LocalGibbsTarget):
            target_log_prob_fn = None  # our own (from `parameters`): rebuilt from the (possibly new) parameters
        if target_log_prob_fn is not None:
            if not callable(target_log_prob_fn):
                raise ValueError(f"`target_log_prob_fn` must be callable, got {type(target_log_prob_fn).__name__}.")
            if batch_fn is not None:
                raise ValueError(
                    "`target_log_prob_fn` (e.g. from tfp.mcmc.TransformedTransitionKernel) needs one fixed target; "
                    "with `batch_fn` the target changes with every minibatch. Use full-batch gradients."
                )
        anchor = structures.as_tensors(anchor, "anchor")
        if validate_args:
            anchor = structures.check_finite(anchor, "anchor")
            probe_batch = () if batch_fn is None else (batch_fn(tf.constant([0, 0], tf.int32)),)
            if anchor_batch_ndims:
                structures.batched_loss(loss_fn, anchor, anchor_batch_ndims, *probe_batch)
            elif target_log_prob_fn is None:
                structures.evaluate_loss_at(loss_fn, anchor, "loss_fn", "anchor", *probe_batch, check_gradient=True)
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
            target_log_prob_fn=target_log_prob_fn,
            name=name,
        )
        self._custom_target = target_log_prob_fn is not None
        self._event = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape[anchor_batch_ndims:], a.dtype), anchor)

    @classmethod
    def from_entropy_sgd(cls, loss_fn, anchor, *, langevin_learning_rate, noise, gamma, **kwargs):
        """The kernel of Entropy-SGD's inner loop: `beta = 1/eps^2`, `h = 2 eps^2 eta'`."""
        checks.check_positive("langevin_learning_rate", langevin_learning_rate, tensor=True)
        checks.check_positive("noise", noise, tensor=True)
        step_size, beta = sgld_parameters(langevin_learning_rate, noise)
        return cls(loss_fn, anchor, step_size=step_size, beta=beta, gamma=gamma, **kwargs)

    @property
    def parameters(self):
        params = dict(self._parameters)
        if params["target_log_prob_fn"] is None and params["batch_fn"] is None:
            params["target_log_prob_fn"] = _LocalGibbsTarget(self._local_gibbs_log_prob)
        return params

    @property
    def target_log_prob_fn(self):
        """`log p(state)` up to its constant (None with `batch_fn`: the target is a minibatch estimate)."""
        return self.parameters["target_log_prob_fn"]

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

    def _local_gibbs_log_prob(self, *state_parts):
        state = state_parts[0] if len(state_parts) == 1 else list(state_parts)
        log_prob, _, _, _ = self._evaluate(state, ())
        return log_prob

    def _evaluate(self, state, args):
        """`(log p, grad log p, f, grad f)` at a batch of states; the latter two per the step's convention.

        With a custom `target_log_prob_fn`, `f` is `-log p / beta` (coupling included)
        and the step is taken with `gamma = 0`.
        """
        p = self._parameters
        if self._custom_target:
            parts = tf.nest.flatten(state)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(parts)
                log_prob = p["target_log_prob_fn"](*parts) if isinstance(state, (list, tuple)) else p["target_log_prob_fn"](parts[0])
            grads = tape.gradient(log_prob, parts, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            grads = tf.nest.pack_sequence_as(state, grads)
            beta = tf.cast(p["beta"], log_prob.dtype)
            return log_prob, grads, -log_prob / beta, tf.nest.map_structure(lambda g: -g / beta, grads)
        batch_ndims = self._batch_ndims(state)
        loss, gradient = structures.batched_value_and_gradient(p["loss_fn"], state, batch_ndims, *args)
        dtype = loss.dtype
        beta, gamma = tf.cast(p["beta"], dtype), tf.cast(p["gamma"], dtype)
        shift = tf.nest.map_structure(lambda x, a: x - a, state, p["anchor"])
        log_prob = -beta * (loss + 0.5 * gamma * structures.squared_norm(shift, batch_ndims))
        grads = tf.nest.map_structure(lambda g, d: -beta * (g + gamma * d), gradient, shift)
        return log_prob, grads, loss, gradient

    def _args(self, seed):
        batch_fn = self._parameters["batch_fn"]
        return () if batch_fn is None else (batch_fn(seed),)

    def one_step(self, current_state, previous_kernel_results, seed=None):
        """One SGLD step; returns `(next_state, kernel_results)`."""
        p = self._parameters
        with tf.name_scope(p["name"] or "stochastic_gradient_langevin"):
            seed = tfp.random.sanitize_seed(seed)
            batch_seed, noise_seed = tf.unstack(sampling.split_seed(seed, 2, "sgld_step"))
            prev = previous_kernel_results
            # f and grad f at the current state, from the cached log p (one evaluation per step).
            loss, gradient = self._loss_from_log_prob(current_state, prev.target_log_prob, prev.grads_target_log_prob)
            xi = sampling.standard_normal_like(current_state, noise_seed, "sgld_noise")
            flat_state = tf.nest.flatten(current_state)
            flat_velocity = tf.nest.flatten(prev.velocity) or [None] * len(flat_state)
            h = tf.convert_to_tensor(tf.nest.flatten(prev.step_size)[0])
            new_state, new_velocity, flat_xi = [], [], tf.nest.flatten(xi)
            for probe, g, anchor, v, x in zip(
                flat_state, tf.nest.flatten(gradient), tf.nest.flatten(p["anchor"]), flat_velocity, flat_xi
            ):
                step = tf.cast(h, probe.dtype)
                learning_rate = step * tf.cast(p["beta"], probe.dtype) / 2.0
                scale = langevin_noise_scale(tf.cast(p["beta"], probe.dtype) ** -0.5, learning_rate)
                probe, v = langevin_step(
                    probe,
                    g,
                    probe if self._custom_target else anchor,
                    v,
                    learning_rate=learning_rate,
                    gamma=tf.cast(0.0 if self._custom_target else p["gamma"], probe.dtype),
                    momentum=p["momentum"],
                    nesterov=p["nesterov"],
                    noise=scale * x,
                )
                new_state.append(probe)
                new_velocity.append(v)
            next_state = tf.nest.pack_sequence_as(current_state, new_state)
            velocity = tf.nest.pack_sequence_as(current_state, new_velocity) if p["momentum"] else ()
            log_prob, grads, _, _ = self._evaluate(next_state, self._args(batch_seed))
            correction = self._log_acceptance_correction(
                current_state, next_state, flat_xi, grads, h, log_prob
            )
            results = prev._replace(
                step=prev.step + 1,
                seed=seed,
                loss=loss,
                gradient=gradient,
                velocity=velocity,
                target_log_prob=log_prob,
                grads_target_log_prob=grads,
                log_acceptance_correction=correction,
                step_size=prev.step_size,
            )
            return next_state, results

    def _loss_from_log_prob(self, state, log_prob, grads):
        """`f` and `grad f` from `log p = -beta [f + gamma/2 |x - w|^2]` (custom target: `f = -log p / beta`)."""
        p = self._parameters
        dtype = log_prob.dtype
        beta, gamma = tf.cast(p["beta"], dtype), tf.cast(p["gamma"], dtype)
        if self._custom_target:
            return -log_prob / beta, tf.nest.map_structure(lambda g: -g / beta, grads)
        batch_ndims = self._batch_ndims(state)
        shift = tf.nest.map_structure(lambda x, a: x - a, state, p["anchor"])
        loss = -log_prob / beta - 0.5 * gamma * structures.squared_norm(shift, batch_ndims)
        return loss, tf.nest.map_structure(lambda g, d: -g / beta - gamma * d, grads, shift)

    def _log_acceptance_correction(self, current_state, next_state, flat_xi, grads_next, h, log_prob):
        """`log q(x | x') - log q(x' | x)`, q(. | x) = N(x + h/2 grad log p(x), h I), summed per chain."""
        p = self._parameters
        if p["batch_fn"] is not None or p["momentum"]:
            return tf.fill(tf.shape(log_prob), tf.constant(np.nan, log_prob.dtype))
        event_axes = lambda part: list(range(log_prob.shape.rank, part.shape.rank))
        forward = tf.add_n([0.5 * tf.reduce_sum(tf.square(x), axis=event_axes(x)) for x in flat_xi])
        backward = []
        for x, y, g in zip(tf.nest.flatten(current_state), tf.nest.flatten(next_state), tf.nest.flatten(grads_next)):
            step = tf.cast(h, x.dtype)
            r = x - y - 0.5 * step * g
            backward.append(tf.reduce_sum(tf.square(r), axis=event_axes(x)) / (2.0 * step))
        return forward - tf.add_n(backward)

    def bootstrap_results(self, init_state):
        """Results before the first step (with `log p` and its gradient at `init_state`); checks it (structure, NaN)."""
        p = self._parameters
        init_state = structures.as_tensors(init_state, "init_state")
        if p["validate_args"]:
            init_state = structures.check_finite(init_state, "init_state")
        if not self._custom_target:
            self._batch_ndims(init_state)
        log_prob, grads, loss, gradient = self._evaluate(init_state, self._args(tf.constant([0, 0], tf.int32)))
        dtype = tf.nest.flatten(init_state)[0].dtype
        results = StochasticGradientLangevinResults(
            step=tf.zeros(tf.shape(log_prob), tf.int32),
            seed=tf.zeros([2], tf.int32),
            loss=loss,
            gradient=gradient,
            velocity=tf.nest.map_structure(tf.zeros_like, init_state) if p["momentum"] else (),
            target_log_prob=log_prob,
            grads_target_log_prob=grads,
            log_acceptance_correction=tf.zeros_like(log_prob),
            step_size=tf.cast(p["step_size"], dtype),
        )
        return results
