"""Parle: Entropy-SGD on every replica, coupled to a center (docs/math.md section 5).

Chaudhari, Baldassi, Zecchina, Soatto, Talwalkar, Oberman, "Parle:
parallelizing stochastic gradient descent", SysML 2018
(https://arxiv.org/abs/1707.00424); details in docs/distributed.md.

Inside a `tf.distribute` strategy each replica a holds its own anchor `x_a`
(build the model under `control_opt.replica_local(strategy)`) and runs the
Entropy-SGD inner loop on its own shard of every global batch, with no
communication inside it (conventions of `EntropySGD`, docs/math.md section 3):

    start of outer step k:  x'_a <- x_a,  mu_a <- x_a,  v'_a <- 0
    inner step (L of them):  v'_a <- m' v'_a + g ;  d = g + m' v'_a (Nesterov) | v'_a
                             x'_a <- x'_a - eta' (d + gamma_k (x'_a - x_a)) + eps sqrt(2 eta') xi_a
                             mu_a <- beta1 mu_a + (1 - beta1) x'_a
    outer step:              xbar = mean_b mu_b                      (one all-reduce)
                             a_a  = (x_a - mu_a) + rho_k (x_a - xbar)
                             x_a <- x_a - eta momentum(a_a + wd x_a)

with the capped scoping of the authors' code
`gamma_k = min(gamma0 (1 + gdot)^k, gamma_max)`, `rho_k = min(rho0 (1 + gdot)^k, rho_max)`.
`reference="weights"` takes `xbar = mean_b x_b` instead (the paper's
equations; the authors' code adds the sync of the means "for large L").

Reductions (tested):

* one replica, rho = 0: Entropy-SGD (same noise stream, replica 0's).
* L = 1, gamma = 0, `reference="weights"`: Elastic-SGD (tau = 1). The one
  inner step from `x' = mu = x`, `v' = 0`, moves `x' = x - eta'_e g` with
  `eta'_e = eta' (1 + m')` for the Nesterov form, `eta'` otherwise (heavy ball:
  `v' = g`); so `mu = x - (1 - beta1) eta'_e g` and, with
  `c = (1 - beta1) eta'_e`,

      a_a = c g_a + rho (x_a - xbar) = c (g_a + (rho / c) (x_a - xbar)),

  the Elastic-SGD direction times c: Parle(eta, rho) is
  `ElasticSGD(learning_rate = eta c, rho = rho / c)` (outer momentum
  equal, no scoping: `scoping=0`, L2 0). With the default `reference="means"`,
  `xbar = mean_b x_b - c mean_b g_b` and the control gains `rho mean_b g_b`, a
  data-parallel gradient term.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from control_opt import distribute
from control_opt._internal import checks
from control_opt.formulas import local_entropy
from control_opt.formulas import momentum as momentum_lib
from control_opt.optimizers import anchored
from control_opt.optimizers.center import check_rho
from control_opt.optimizers.entropy_sgd import _LocalEntropyChain
from control_opt.optimizers.replica_local import ReplicaLocal
from control_opt.optimizers.swap import _tensor_of

__all__ = ["Parle"]

_REFERENCES = ("means", "weights")


@keras.saving.register_keras_serializable(package="control_opt")
class Parle(anchored.MomentumOuterStep, ReplicaLocal, _LocalEntropyChain):
    """Parle: an Entropy-SGD chain per replica, one all-reduce per outer step.

    Usage: as `ElasticSGD` (build and compile under
    `control_opt.replica_local(strategy)`, `model.fit` with the strategy's
    input distribution, `control_opt.AnchorSwap()` first in `callbacks=`).
    One Keras step is one inner (Langevin) step on every replica; every L-th
    also does the outer step and the one all-reduce.

    Defaults are the constants of the authors' code (ucla-vision/parle,
    `parle_mpi.py`) and paper unless said otherwise; the default *rule* is
    the library's Entropy-SGD chain (module docstring), which departs from the
    code in five places (below); `authors_code=True` runs the code's step.

    Args:
      learning_rate: eta, outer step size (0.1: the code's one `lr` for both
        loops, divided by 10 every epoch there); float or Keras schedule.
      momentum, nesterov: outer momentum (0.9, True: Nesterov `d = g + m v`).
      langevin_steps: L (25).
      langevin_learning_rate: eta' (0.1, the same `lr`).
      langevin_momentum, langevin_nesterov: m' (0.9, Nesterov).
      gamma: gamma0 (0.01), a number.
      rho: rho0; None (default) is the code's `0.01 L n` (n replicas).
      scoping: gdot, the growth of gamma and rho per outer step (1e-3). The
        code writes `0.5 / nb` (nb the minibatches per epoch) but applies it
        per parameter tensor per inner step (see `authors_code`).
      gamma_max, rho_max: the caps (1.0, 10.0).
      noise: eps of the Langevin steps (0.0: the authors' Parle code adds no noise).
      mean_decay: beta1 (0.75, the code's `alpha`).
      reference: "means" (default, the code: `xbar = mean mu_a`) or
        "weights" (the paper: `xbar = mean x_a`).
      l2: coupled L2 weight decay (the code has it off); with
        `authors_code=True` on the inner gradient only, as the code would.
      authors_code: False (default): the library's rule. True: the step of
        `parle_mpi.py` exactly (float64, noise and L2 off: equal to 1e-15 to
        an independent transcription, tests/distribute/test_replica_options.py):
        `v <- m v + g; d = g + v` in both loops (`nesterov` and
        `langevin_nesterov` unused); the coupling `gamma (x' - x)` added to
        the gradient before the inner momentum; mu and v' never restart;
        the outer step taken from the probe, `x_a <- x'_a - eta d`; the code's
        scoping counter, which advances once per parameter tensor per inner
        step, so that with P tensors gamma's exponent at inner step s is
        `(s P) // L` and rho's at outer step k is `(k + 1) P` (gamma and rho
        grow by `(1 + gdot)^P` per outer step, not `1 + gdot`).
      seed: integer seed of the Langevin noise, drawn per (seed, replica,
        iteration) for all variables at once, stateless.

    The default's five departures from the code, each the only change from
    `authors_code=True` (trajectory difference after 20 outer steps of a
    float64 MLP on 2 replicas, relative to how far the code's weights moved;
    `python -m bench.bench_parle_departures`, BENCHMARKS.md): Nesterov
    momentum instead of `g + v` (0.37); the coupling outside the inner
    momentum (0.35); mu and v' restart at the new anchor (0.53); the outer
    step from the anchor (0.53); scoping per outer step (0.016); all five:
    0.72. The library keeps its rule so that Parle on one replica with
    rho = 0 is `EntropySGD` and L = 1 is `ElasticSGD` (docs/distributed.md
    section 5.4). On MNIST-1D (CNN, 2 replicas, L = 25, 30 epochs, seeds
    0-2; `python -m bench.bench_parle_accuracy`) the five together: test
    accuracy 0.918 (std 0.010) with the default, 0.839 (std 0.015) with
    `authors_code=True`, paired difference +0.079 on every seed; each alone
    is not measured on accuracy (the switch is all or nothing).

    What the model holds: as `ElasticSGD`: each replica's probe during
    `fit` (`get_weights()` is their mean), `mean_a x_a` on every replica
    after `fit` / at epoch ends with `AnchorSwap` (the code's validation
    weights). `centers` hold the `xbar` of the last outer step during
    training, and are the model's variables while the center is in them.

    State per replica: Entropy-SGD's (anchor, mean, Langevin velocity, outer
    velocity) plus the center. The center slot is written at each outer step
    and read by no update, so while the center is in the model it holds the
    replica's probe (no further slot); when the probe goes back, the slot
    holds the center that was reported (`mean_a x_a`) until the next outer
    step.
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=True, langevin_steps=25,
                 langevin_learning_rate=0.1, langevin_momentum=0.9, langevin_nesterov=True, gamma=0.01,
                 rho=None, scoping=1e-3, gamma_max=1.0, rho_max=10.0, noise=0.0, mean_decay=0.75,
                 reference="means", l2=0.0, authors_code=False, seed=None, name="parle", **kwargs):
        super().__init__(learning_rate, inner_steps=1, l2=l2, seed=seed, name=name, **kwargs)
        self._init_outer(momentum, nesterov)
        if callable(gamma):
            raise ValueError("Parle's `gamma` is a number gamma0 (scoped by `scoping`, capped at `gamma_max`), "
                             f"got a callable {gamma!r}.")
        self._init_chain(langevin_steps, langevin_learning_rate, langevin_momentum, langevin_nesterov,
                         gamma, scoping, noise, mean_decay)
        self.rho = check_rho(rho)
        self.gamma_max = checks.check_non_negative("gamma_max", gamma_max)
        self.rho_max = checks.check_non_negative("rho_max", rho_max)
        if reference not in _REFERENCES:
            raise ValueError(f"`reference` must be one of {_REFERENCES}, got {reference!r}.")
        self.reference = reference
        if not isinstance(authors_code, bool):
            raise ValueError(f"`authors_code` must be True or False, got {authors_code!r}.")
        self.authors_code = authors_code

    def _chain_scalars(self, outer_step, dtype, position=None):
        def capped(initial, cap, exponent):
            value = local_entropy.exponential_scope(tf.constant(initial, dtype), self.scoping, exponent)
            return tf.minimum(value, tf.constant(cap, dtype))

        gamma_exponent = rho_exponent = outer_step
        if self.authors_code:
            # The code's counter t: +1 per parameter tensor per inner step (P tensors),
            # read as t // L when a step starts; the outer step comes after L inner steps.
            tensors = tf.cast(len(self._trainable_variables), outer_step.dtype)
            step = outer_step * self._inner_steps + (0 if position is None else tf.cast(position, outer_step.dtype))
            gamma_exponent = (step * tensors) // self._inner_steps
            rho_exponent = (outer_step + 1) * tensors
        return {**self._scope_scalars(capped(self.gamma, self.gamma_max, gamma_exponent), dtype),
                "rho": capped(self._resolved_rho(), self.rho_max, rho_exponent)}

    def _chain_apply(self, index, variable, gradient, probe, anchor, scalars):
        if not self.authors_code:
            return super()._chain_apply(index, variable, gradient, probe, anchor, scalars)
        variable = _tensor_of(variable)
        mean, velocity = self._chain_slots(index)
        new_probe, new_velocity = local_entropy.parle_code_langevin_step(
            probe, gradient, anchor, None if velocity is None else tf.convert_to_tensor(velocity),
            learning_rate=self.langevin_learning_rate, gamma=scalars.chain[variable.dtype.name]["gamma"],
            momentum=self.langevin_momentum, noise=scalars.noise[index] if self.noise else None)
        self.assign(variable, new_probe)
        if velocity is not None:
            self.assign(velocity, new_velocity)
        self.assign(mean, local_entropy.running_mean(tf.convert_to_tensor(mean), new_probe, self.mean_decay))

    def _outer_update(self, variable, control, learning_rate, scalars):
        """Library rule: `AnchoredOptimizer`'s. `authors_code=True`: the code's
        sync, `x_a <- x'_a - eta (a_a + v)` with `v <- m v + a_a`, from the
        probe, no L2 on the control, and the chain runs on (no restart)."""
        if not self.authors_code:
            return super()._outer_update(variable, control, learning_rate, scalars)
        index = self._get_variable_index(variable)
        probe = tf.convert_to_tensor(variable)
        velocity = self._outer_velocities[index] if self.momentum else None
        direction, new_velocity = momentum_lib.parle_code_direction(
            control, None if velocity is None else tf.convert_to_tensor(velocity), self.momentum)
        if velocity is not None:
            self.assign(velocity, new_velocity)
        new_anchor = probe - tf.cast(learning_rate, variable.dtype) * direction
        self.assign(self._anchors[index], new_anchor)
        self.assign(variable, new_anchor)

    def _merge_controls(self, distribution, variables, controls, scalars):
        """One all-reduce: `xbar = mean_b mu_b` (or `x_b`); then `(x_a - mu_a) + rho_k (x_a - xbar)`."""
        slots = self._means if self.reference == "means" else self._anchors
        centers = self._center.mean(distribution, slots)
        self._center.assign(centers)
        rho = {dtype: distribution.experimental_local_results(values["rho"])
               for dtype, values in scalars.chain.items()}
        indices = [self._get_variable_index(variable) for variable in variables]
        return self._center.pull(distribution, controls, indices, distribute.read_components(self._anchors), centers,
                                 lambda r, dtype: tf.cast(rho[tf.as_dtype(dtype).name][r], dtype))

    def get_config(self):
        config = super().get_config()
        config.update(self._coupling_config())
        config.update({"gamma_max": self.gamma_max, "rho_max": self.rho_max, "reference": self.reference,
                       "authors_code": self.authors_code})
        return config
