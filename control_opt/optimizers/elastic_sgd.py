"""Elastic-SGD (EASGD): replicas with their own weights, coupled to a center.

docs/math.md section 5 (written out in docs/distributed.md). Inside a
`tf.distribute` strategy each replica a = 1..n holds its **own** weights `x_a`
(build the model under `control_opt.replica_local(strategy)`) and sees its own
shard of every global batch. With `xbar` the center:

    every step, on every replica:    d_a = grad f_a(x_a) + wd x_a + rho (x_a - xbar)
                                     x_a <- x_a - eta momentum(d_a)
    every `communication_period` steps (tau), before the step above, one all-reduce:
        center_moving_rate None:     xbar <- mean_a x_a
        center_moving_rate alpha:    xbar <- xbar + alpha sum_a (x_a - xbar)

`alpha = 1/n` is the mean. Zhang, Choromanska and LeCun (EASGD, NeurIPS 2015)
move the replicas and the center simultaneously (the control uses the old
center); here the center moves first and the replicas are pulled to the new
one (Gauss-Seidel order), so that both forms of the center agree at
`alpha = 1/n` and tau = 1 is Parle with L = 1 (see `Parle`). Between
communications the elastic force uses the last center.

There is no gradient all-reduce: Keras' SUM all-reduce of the gradients is
bypassed, and the 1/n that Keras puts on each replica's loss is undone, so each
replica steps on the gradient of its own shard's mean loss. Communication is
exactly one all-reduce of the parameters (one per dtype, batched over the
variables) every tau steps.

The step is SGD's on the model's own variables: no anchor, probe or chain
state (the `AnchoredOptimizer` core gives only the step's frame, the
exchange with `AnchorSwap` and the end of `fit`); the center and the coupling
are the composed `center.Center`, the per-replica state `replica_local`.

References:
  S. Zhang, A. Choromanska, Y. LeCun. Deep learning with elastic averaging
  SGD. NeurIPS 2015. https://arxiv.org/abs/1412.6651
"""

from __future__ import annotations

import keras
import tensorflow as tf

from control_opt import distribute
from control_opt._internal import checks
from control_opt.optimizers import anchored
from control_opt.optimizers.center import check_rho
from control_opt.optimizers.replica_local import ReplicaLocal
from control_opt.optimizers.swap import _tensor_of

__all__ = ["ElasticSGD"]


@keras.saving.register_keras_serializable(package="control_opt")
class ElasticSGD(anchored.MomentumOuterStep, ReplicaLocal, anchored.AnchoredOptimizer):
    """Elastic-SGD / EASGD: each replica's own weights, pulled toward a center.

    Usage (plain Keras; the strategy's ordinary input distribution, each
    replica gets `batch_size / n` examples of every global batch):

    >>> strategy = tf.distribute.MirroredStrategy()
    >>> with control_opt.replica_local(strategy):
    ...     model = build_model()
    ...     model.compile(optimizer=control_opt.ElasticSGD(rho=0.1), loss=...)
    >>> model.fit(dataset, callbacks=[control_opt.AnchorSwap()])

    Without a strategy it runs with one replica (then `xbar = x` and, with
    `rho = 0` or not, it is Keras' SGD: the coupling term vanishes).

    Args:
      learning_rate: eta (0.1), a float or a Keras schedule of `iterations`.
      momentum, nesterov: (Nesterov) momentum on `d_a` (0.9, True).
      rho: coupling strength; None (default) takes the Parle authors'
        `0.01 n` (their `rho * L * n` with L = 1; ucla-vision/parle).
      communication_period: tau >= 1, steps between two all-reduces (1).
      center_moving_rate: None (default): `xbar` is the replicas' mean; a
        float alpha in (0, 1/n]: the EASGD moving average (n alpha is EASGD's
        beta; the authors use beta = 0.9).
      l2: coupled L2 weight decay `wd`.
      seed: accepted for a uniform interface (Elastic-SGD draws no noise).
      **kwargs: the Keras optimizer arguments (`name`, `clipnorm`, ...).

    Momentum form: `v <- m v + d_a`, `x_a <- x_a - eta (d_a + m v)` (Nesterov)
    or `x_a - eta v`, the form of `torch.optim.SGD` and of the Parle authors'
    outer loop, buffer from 0; the rate multiplies outside the buffer. At a
    constant rate this is Keras' SGD; under a schedule with momentum it is
    this form, not Keras' (which puts the rate inside its buffer).
    EASGD's EAMSGD puts only the gradient under the momentum and moves the
    center simultaneously with the replicas; here the elastic force is under
    the momentum too and the center moves first (module docstring).

    Keras' options act per replica on the gradient of its own shard:
    `clipnorm` / `clipvalue` / `global_clipnorm` at the threshold asked,
    decoupled `weight_decay` as in Keras' SGD (tested on 2 replicas against
    Keras' SGD on each shard).

    State per replica (BENCHMARKS.md, "Optimizer state per parameter"): what
    EASGD holds, the weights (the model's own variables), the momentum and the
    center, and no more, except with the replicas' mean
    (`center_moving_rate=None`) and `communication_period > 1`: one more
    model-sized slot, `held_center`, keeps the last center while the center
    is in the model (between communications the elastic force reads it; at
    that moment the center slot holds the replica's weights and the model the
    current mean). `anchors` are the weights themselves: the model's
    variables during training, the center slots while the center is in the
    model (they hold x_a then).

    What the model holds: during `fit`, replica a's `x_a` (`get_weights()`
    returns their mean); after `fit`, and at epoch ends with `AnchorSwap`,
    the center on every replica: `mean_a x_a` (`center_moving_rate=None`) or
    the EASGD center variable. `centers` are where the center is: the center
    slots (the `xbar` of the last communication) during training, the model's
    variables while the center is in them; `syncs` counts communications.

    Keras' decoupled `weight_decay` is applied in the step itself, to the
    weights read before it (the center and the coupling see the undecayed
    `x_a`), with Keras' arithmetic `x - x wd eta`: equal to Keras' SGD.

    Saved inside `fit` without `AnchorSwap` (each replica's weights in the
    model, the file gets their mean), the optimizer's state stores each
    replica's weights and loading puts them back: into the center slots as if
    the center were in the model, or, with EASGD's moving center (whose slot
    is state), straight into the model's variables. That relies on Keras
    loading a model's layers before its optimizer, which it does for
    Sequential and functional models (tested); a subclassed model whose layer
    attributes sort after `optimizer` would get the file's mean instead.
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=True, rho=None, communication_period=1,
                 center_moving_rate=None, l2=0.0, seed=None, name="elastic_sgd", **kwargs):
        super().__init__(learning_rate, inner_steps=1, l2=l2, seed=seed, name=name, **kwargs)
        self._init_outer(momentum, nesterov)
        self.rho = check_rho(rho)
        self.communication_period = checks.check_int("communication_period", communication_period)
        if center_moving_rate is not None:
            center_moving_rate = checks.check_positive("center_moving_rate", center_moving_rate)
            if center_moving_rate > 1.0:
                raise ValueError("`center_moving_rate` must be in (0, 1/n] for n replicas, "
                                 f"got {center_moving_rate!r}.")
        self.center_moving_rate = center_moving_rate

    def _check_replicas(self):
        alpha = self.center_moving_rate
        if alpha is not None and alpha * self.num_replicas > 1.0 + 1e-12:
            raise ValueError(
                f"`center_moving_rate` {alpha!r} times the {self.num_replicas} replicas exceeds 1: the center "
                f"would overshoot the replicas' mean (EASGD needs n alpha <= 1); use at most "
                f"{1 / self.num_replicas:g}.")

    # ---------------------------------------------------------------- state
    def _keeps_last_center(self):
        return self.center_moving_rate is None and self.communication_period > 1

    def _build_own_slots(self, var_list):
        # Keras' own (iterations, ...), the flag of what the model holds, the momentum: no anchor,
        # no chain, no noise (the center is added by `ReplicaLocal`).
        keras.optimizers.Optimizer.build(self, var_list)
        self._anchor_in_model = self.add_variable(
            shape=(), initializer="zeros", dtype="int32", aggregation="only_first_replica",
            name="anchor_in_model")
        self._build_outer(var_list)

    @property
    def anchors(self):
        """The weights `x_a`: the model's variables, or the center slots while the center is in
        the model (`anchor_in_model`; the slots hold each replica's weights then)."""
        if self.anchor_in_model:
            return list(self._center.slots)
        return list(self._trainable_variables)

    def _collapsed_slots(self, index, value):
        return []  # only the center slot (`ReplicaLocal._release`)

    def _report(self, distribution):
        if self.center_moving_rate is not None:
            self._center.mean(distribution, [])  # the statistics only
            return self._center.read()
        return self._center.mean(distribution, self._trainable_variables)

    def _load_own_weights(self, stacked):
        """EASGD's moving center is state that the slot cannot give up: the replicas' weights go
        straight into the model's variables (Keras loads a Sequential or functional model's
        layers before its optimizer, so they are not overwritten by the file's mean)."""
        if self.center_moving_rate is None:
            return super()._load_own_weights(stacked)
        for variable, values in zip(self._trainable_variables, stacked):
            distribute.assign_components(variable, values)

    # ----------------------------------------------------------------- the step
    def _apply_weight_decay(self, variables):
        """Applied in the step (`_decayed`), after the center and the coupling have read x_a."""

    def _decayed(self, variable):
        """The variable's value after Keras' decoupled weight decay, in Keras' arithmetic."""
        value = tf.convert_to_tensor(variable)
        if self.weight_decay is not None and self._use_weight_decay(variable):
            value = value - value * tf.cast(self.weight_decay, variable.dtype) * tf.cast(self.learning_rate,
                                                                                          variable.dtype)
        return value

    def _gradient(self, gradient, variable):
        """Dense, in the variable's dtype, with the coupled L2 term (at the decayed weights)."""
        gradient = tf.convert_to_tensor(gradient)
        if gradient.dtype != variable.dtype:
            gradient = tf.cast(gradient, variable.dtype)
        if self.l2:
            gradient = gradient + self.l2 * self._decayed(variable)
        return gradient

    def _backend_update_step(self, grads, trainable_variables, learning_rate, scalars=None):
        """Replica context: each replica's own gradient; then one merge: the communication if
        due, the coupled control, the momentum step on every replica's weights."""
        if scalars is None:
            scalars = self._step_scalars(trainable_variables)
        variables = [_tensor_of(variable) for variable in trainable_variables]
        gradients = [self._gradient(g, v) for g, v in zip(grads, variables)]
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._merged_step, self._distribution_strategy, variables, gradients, learning_rate, scalars)

    def _merged_step(self, distribution, variables, gradients, learning_rate, scalars):
        """Every tau steps one all-reduce moves the center; then `g_a + rho (x_a - xbar)`."""
        step = distribution.experimental_local_results(scalars.step)[0]
        center = self._center
        # Every variable the optimizer was built on (a step may update a subset: a frozen layer).
        weights = [_tensor_of(variable) for variable in self._trainable_variables]

        def sync():
            mean = center.mean(distribution, weights)
            if self.center_moving_rate is not None:
                rate = self.center_moving_rate * self.num_replicas
                # A Python float times a tensor is converted in the tensor's dtype (no float32 rounding).
                mean = [[c + rate * (m - c) for c, m in zip(cs, ms)] for cs, ms in zip(center.read(), mean)]
            center.assign(mean)

        tf.cond(tf.equal(step % self.communication_period, 0), sync, lambda: None)
        rho = self._resolved_rho()
        indices = [self._get_variable_index(variable) for variable in variables]
        controls = center.pull(distribution, gradients, indices, distribute.read_components(weights), center.read(),
                               lambda r, dtype: tf.constant(rho, dtype))
        for variable, control in zip(variables, controls):
            distribution.extended.update(variable, self._sgd_update, args=(control, learning_rate, scalars),
                                         group=False)

    def _sgd_update(self, variable, control, learning_rate, scalars):
        """`x_a <- decayed(x_a) - eta momentum(control)`, on one replica's copy."""
        direction = self._outer_direction(self._get_variable_index(variable), control, scalars.outer + 1)
        self.assign(variable, self._decayed(variable) - tf.cast(learning_rate, variable.dtype) * direction)

    def update_step(self, gradient, variable, learning_rate):
        """Keras' per-variable entry point, for callers outside `apply`: one replica's step
        with no communication (one replica: the center is x, the coupling vanishes)."""
        scalars = self._step_scalars([variable])
        self._step_cond(scalars.anchor_in_model, lambda: self._put_probe_back(variable))
        self._sgd_update(variable, self._gradient(gradient, variable), learning_rate, scalars)

    def get_config(self):
        config = super().get_config()
        config.update(self._coupling_config())
        config.update({"communication_period": self.communication_period,
                       "center_moving_rate": self.center_moving_rate})
        return config
