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

This module also holds `ReplicaLocalCoupling`, the mix-in that turns an
`AnchoredOptimizer` into a replica-local one (shared with `Parle`).

References:
  S. Zhang, A. Choromanska, Y. LeCun. Deep learning with elastic averaging
  SGD. NeurIPS 2015. https://arxiv.org/abs/1412.6651
"""

from __future__ import annotations

import sys
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from control_opt import distribute
from control_opt.distribute.reduction import _regroup
from control_opt.distribute.replicas import _in_a_strategy
from control_opt._internal import checks
from control_opt.optimizers import anchored
from control_opt.optimizers.swap import _tensor_of

__all__ = ["ElasticSGD", "ReplicaLocalCoupling"]

# Salt of the replicas' noise streams (the dtype streams use anchored's, another odd constant).
_REPLICA_SALT = 0x85EBCA77


def _check_rho(rho):
    return None if rho is None else checks.check_non_negative("rho", rho)


class ReplicaLocalCoupling:
    """Mix-in (placed before the `AnchoredOptimizer` subclass): per-replica
    state, no gradient all-reduce, a coupling control merged across replicas.

    * Slots: every optimizer slot (anchor `x_a`, chain, outer momentum, the
      probe held while the center is in the model) is replica-local; the
      center `xbar`, `iterations`, `anchor_in_model` and the count of
      communications (`syncs`) are mirrored.
    * Phase 1 (`_chain_phase`): each replica steps its own chain on its own
      gradient (times n, before clipping, `_own_gradients`: Keras scales each
      replica's loss by 1/n).
    * Phase 2 (`_merge_controls`, subclass): one all-reduce, then the control
      `a_a + rho (x_a - xbar)`, replica by replica.
    * What the model holds: during training each replica's probe (a read
      outside the replicas, e.g. `model.get_weights()`, gives their mean);
      swapped in (`AnchorSwap`, end of `fit`, `finalize_variable_values`): the
      center `xbar` (`_report`) on every replica, so evaluation, predict and
      save see it; each replica's probe waits in a `held_probe` slot.
    * Batch-norm statistics (`distribute.replica_statistics`): averaged in the
      all-reduce of every communication and when the center is swapped in.
    * `mixed_float16`: finiteness checked on every replica (one scalar
      all-reduce), an overflow anywhere skips the step everywhere.
    * Saving: the per-replica slots are stored stacked `[n, ...]`
      (`save_own_variables`); loading into another number of replicas raises.
    """

    @property
    def num_replicas(self):
        return self._distribution_strategy.num_replicas_in_sync

    def _resolved_rho(self):
        """`rho`, or the Parle authors' `0.01 L n` when it is None."""
        if self.rho is None:
            return 0.01 * self._inner_steps * self.num_replicas
        return self.rho

    # ---------------------------------------------------------------- state
    def _build_slots(self, var_list):
        strategy = self._distribution_strategy
        local = [v.path for v in var_list if distribute.is_replica_local(v)]
        if local and not _in_a_strategy(strategy):
            raise ValueError(
                f"{type(self).__name__} was created outside the strategy that holds the model's replica-local "
                f"weights ({local[0]}{', ...' if len(local) > 1 else ''}): create the optimizer, and compile the "
                "model, inside `with control_opt.replica_local(strategy):`, the scope the model was built in.")
        if _in_a_strategy(strategy):
            mirrored = [v.path for v in var_list if not distribute.is_replica_local(v)]
            if mirrored:
                raise ValueError(
                    f"{type(self).__name__} gives each replica its own weights, but the model's variables "
                    f"{mirrored[:3]}{'...' if len(mirrored) > 3 else ''} are mirrored copies. Build and "
                    "compile the model under `with control_opt.replica_local(strategy):` (it also enters "
                    "`strategy.scope()`).")
        self._check_replicas()
        self._find_loss_scale_owner()
        before = len(self.variables)
        with distribute.per_replica_slots(strategy):
            super()._build_slots(var_list)
            self._held_probes = self.add_copies(var_list, "held_probe")
        self._per_replica_indices = frozenset(
            i for i, v in enumerate(self.variables) if i >= before and v.aggregation == "none")
        self._centers = self.add_copies(var_list, "center")
        # Not a tracked attribute (the variables are the model's, not the optimizer's state).
        object.__setattr__(self, "_statistics", distribute.replica_statistics(strategy, var_list))
        self._syncs = self.add_variable(shape=(), initializer="zeros", dtype="int64",
                                        aggregation="only_first_replica", name="syncs")

    def _check_replicas(self):
        """Hook: raise for hyper-parameters that the number of replicas makes invalid."""

    @property
    def centers(self):
        """The center variables `xbar` (mirrored), in the order of the trainable variables."""
        return list(self._centers)

    @property
    def syncs(self):
        """Number of communications (all-reduces of the parameters) so far."""
        return int(self._syncs.numpy()) if self.built else 0

    # ------------------------------------------------------- mixed precision
    def _find_loss_scale_owner(self):
        """Keras' `LossScaleOptimizer` (what `compile` wraps the optimizer in under `mixed_float16`)
        builds the optimizer it wraps from its own `build`: recorded here (a weak reference, found
        among the callers' frames; Keras gives the wrapped optimizer no link to its wrapper), so
        that an overflow on any replica can skip the step and lower the wrapper's scale."""
        frame = sys._getframe(1)
        for _ in range(6):
            if frame is None:
                return
            owner = frame.f_locals.get("self")
            if isinstance(owner, keras.optimizers.LossScaleOptimizer) and \
                    getattr(owner, "inner_optimizer", None) is self:
                object.__setattr__(self, "_loss_scale_owner", weakref.ref(owner))
                return
            frame = frame.f_back

    def _backend_apply_gradients(self, grads, trainable_variables):
        """Under a `LossScaleOptimizer` with several replicas: finiteness checked on every replica
        (one scalar all-reduce). Keras' wrapper looks at replica 0's gradients only (under data
        parallelism they are all the same sum); here each replica steps on its own, so an
        overflow on any replica skips the step on all of them and halves the loss scale, as
        Keras does for an overflow: no weight moves, `iterations` does not advance, the
        wrapper's counter restarts."""
        ref = self.__dict__.get("_loss_scale_owner")
        owner = ref() if ref is not None else None
        if owner is None or self.num_replicas == 1:
            return super()._backend_apply_gradients(grads, trainable_variables)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
        context = tf.distribute.get_replica_context()
        overflows = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        step = super()._backend_apply_gradients

        def merged(distribution, overflows, grads, trainable_variables):
            def apply():
                distribution.extended.call_for_each_replica(step, args=(grads, trainable_variables))

            def skip():
                # Keras adds 1 to both after this call (the wrapper's counter, `apply`'s
                # iterations): the net effect is the wrapper's own skip.
                owner.step_counter.assign(-1)
                owner.dynamic_scale.assign(owner.dynamic_scale * 0.5)
                self.iterations.assign_sub(1)

            tf.cond(tf.equal(distribution.experimental_local_results(overflows)[0], 0.0), apply, skip)

        context.merge_call(merged, args=(overflows, grads, trainable_variables))

    # ---------------------------------------------------------- phase 1
    def _own_gradients(self, grads):
        """Keras divides each replica's loss by n: undone here, before Keras'
        clipping, so that `clipnorm` / `clipvalue` / `global_clipnorm` act on
        the gradient of the replica's own shard at the threshold asked."""
        n = self.num_replicas
        if n == 1:
            return grads
        return [None if g is None else tf.convert_to_tensor(g) * tf.cast(n, g.dtype) for g in grads]

    def _chain_phase(self, grads_and_vars, scalars):
        """Replica context: each replica's own chain step on its own gradient
        (`_own_gradients`); no all-reduce."""
        for gradient, variable in grads_and_vars:
            if gradient is None:
                continue
            self._chain_update(variable, tf.convert_to_tensor(gradient), scalars)

    def _noise_offset(self):
        """The noise is keyed by replica as well: replica 0 draws the stream of
        `AnchoredOptimizer.draw_step_noise`, replica r adds `r * salt`."""
        return tf.cast(distribute.replica_id(), tf.int64) * _REPLICA_SALT

    # ---------------------------------------------------------- phase 2 helpers
    def _per_replica_reads(self, slots):
        """`out[r][i]`: replica r's value of `slots[i]` (cross-replica context)."""
        copies = [distribute.components(_tensor_of(slot)) for slot in slots]
        out = []
        for r in range(len(copies[0])):
            row = []
            for c in copies:
                with tf.device(c[r].device):
                    row.append(tf.identity(c[r]))
            out.append(row)
        return out

    def _all_reduce_with_statistics(self, distribution, slots):
        """`out[r][i]`: the mean over replicas of `slots[i]` (cross-replica context). The model's
        statistics (`distribute.replica_statistics`: batch-norm moving mean and variance) travel
        in the same all-reduce and every replica's copy is set to their mean: the statistics
        are defined at the center, not by one replica."""
        statistics = list(getattr(self, "_statistics", ()))
        if not statistics or self.num_replicas == 1:
            return distribute.all_reduce_mean(distribution, self._per_replica_reads(slots)) if slots else None
        k = len(slots)
        mean = distribute.all_reduce_mean(distribution, self._per_replica_reads(list(slots) + statistics))
        for i, variable in enumerate(statistics):
            for r, copy in enumerate(distribute.components(variable)):
                with tf.device(copy.device):
                    copy.assign(mean[r][k + i])
        return [row[:k] for row in mean]

    def _assign_centers(self, values):
        """Center copy r of variable i <- `values[r][i]`; counts one communication."""
        for i, center in enumerate(self._centers):
            for r, copy in enumerate(distribute.components(_tensor_of(center))):
                with tf.device(copy.device):
                    copy.assign(values[r][i])
        self._syncs.assign_add(1)

    def _coupled_controls(self, distribution, controls, centers, rho_of):
        """`a_a + rho (x_a - xbar)` per variable, one value per replica.

        `controls[i]`: the chain's controls (one per replica); `centers[r][i]`;
        `rho_of(r, dtype)`: rho on replica r."""
        anchors = self._per_replica_reads(self._anchors)
        out = []
        for i, control in enumerate(controls):
            local = distribution.experimental_local_results(control)
            values = []
            for r, value in enumerate(local):
                with tf.device(value.device):
                    values.append(value + rho_of(r, value.dtype) * (anchors[r][i] - centers[r][i]))
            out.append(_regroup(values))
        return out

    # -------------------------------------------------------- what the model holds
    def _report(self, distribution):
        """`out[r][i]`: what the model holds on replica r when the center is
        swapped in: `mean_a x_a` (one all-reduce, outside the training step, which also
        averages the model's statistics)."""
        return self._all_reduce_with_statistics(distribution, self._anchors)

    def _put_probe_back(self, variable):
        self.assign(variable, self._held_probes[self._get_variable_index(variable)])

    def _release(self, variable):
        super()._release(variable)
        self.assign(self._held_probes[self._get_variable_index(variable)], tf.identity(variable))

    def _release_copies(self, index):
        """`_release` replica by replica (cross-replica context)."""
        variable = _tensor_of(self._trainable_variables[index])
        slots = [self._anchors[index], self._held_probes[index]]
        for r, copy in enumerate(distribute.components(variable)):
            with tf.device(copy.device):
                value = tf.identity(copy)
                for slot in slots:
                    distribute.components(_tensor_of(slot))[r].assign(value)
                for slot, reset in zip(self._chain_slots(index), self._chain_reset(value)):
                    if slot is not None:
                        distribute.components(_tensor_of(slot))[r].assign(reset)

    def _exchange_anchor_and_probe(self, var_list=None):
        """Center in (the probes go to `held_probe`) or probes back, per replica."""
        chosen = self._chosen_indices(var_list)
        to_center = not self.anchor_in_model
        if getattr(self, "_exchange_fns", None) is None:
            object.__setattr__(self, "_exchange_fns", {})
        key = (chosen, to_center)
        if key not in self._exchange_fns:
            def exchange():
                distribution = tf.distribute.get_strategy()
                report = self._report(distribution) if to_center else None
                for index, (variable, held) in enumerate(zip(self._trainable_variables, self._held_probes)):
                    if index not in chosen:
                        self._release_copies(index)
                        continue
                    pairs = zip(distribute.components(_tensor_of(variable)), distribute.components(_tensor_of(held)))
                    for r, (copy, held_copy) in enumerate(pairs):
                        with tf.device(copy.device):
                            if to_center:
                                held_copy.assign(tf.identity(copy))
                                copy.assign(report[r][index])
                            else:
                                copy.assign(tf.identity(held_copy))
            self._exchange_fns[key] = tf.function(exchange)
        with self._distribution_strategy.scope():
            self._exchange_fns[key]()

    # ---------------------------------------------------------------- saving
    def save_own_variables(self, store):
        """Per-replica slots stacked `[n, ...]` (a plain read would give their mean).

        Saved mid-epoch with the probes in the model (a checkpoint callback
        without `AnchorSwap`), the model's file gets their mean: the replicas'
        own probes are stored here too, and loading puts them in `held_probe`
        with `anchor_in_model` set, so the next step swaps them back exactly.
        Not built yet (e.g. `pickle.dumps` of a new optimizer): Keras' layout."""
        if not self.built:
            return super().save_own_variables(store)
        for i, variable in enumerate(self.variables):
            store[str(i)] = (distribute.stack_components(variable) if i in self._per_replica_indices
                             else variable.numpy())
        store["replicas"] = np.asarray(self.num_replicas, dtype="int64")
        if not self.anchor_in_model:
            for j, variable in enumerate(self._trainable_variables):
                store[f"probe_{j}"] = distribute.stack_components(variable)

    def load_own_variables(self, store):
        if not self.built:
            if "replicas" not in store:  # written before it was built (Keras' layout): nothing per replica
                return super().load_own_variables(store)
            warnings.warn(f"{type(self).__name__}: not built, the saved state was not loaded.", stacklevel=2)
            return
        if "replicas" not in store:
            raise ValueError(f"the saved optimizer state was not written by {type(self).__name__} "
                             "(no per-replica layout); it cannot be loaded.")
        saved = int(np.asarray(store["replicas"]))
        if saved != self.num_replicas:
            raise ValueError(
                f"{type(self).__name__}: the saved state holds {saved} replicas' weights, but the "
                f"strategy now has {self.num_replicas} replica(s). To resume training, load under "
                f"`with control_opt.replica_local(strategy):` with a strategy of {saved} replicas; to use the "
                "model (its weights are the center), pass `compile=False` to `keras.models.load_model`.")
        probes = "probe_0" in store
        expected = len(self.variables) + 1 + (len(self._trainable_variables) if probes else 0)
        if len(store.keys()) != expected:
            raise ValueError(f"{type(self).__name__}: the saved state has {len(store.keys())} entries, "
                             f"this optimizer expects {expected}.")
        for i, variable in enumerate(self.variables):
            if i in self._per_replica_indices:
                distribute.assign_components(variable, store[str(i)])
            else:
                variable.assign(store[str(i)])
        if probes:
            for j, held in enumerate(self._held_probes):
                distribute.assign_components(held, store[f"probe_{j}"])
            self._anchor_in_model.assign(1)

    def _coupling_config(self):
        return {"rho": self.rho}


@keras.saving.register_keras_serializable(package="control_opt")
class ElasticSGD(anchored.MomentumOuterStep, ReplicaLocalCoupling, anchored.AnchoredOptimizer):
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

    State per replica (BENCHMARKS.md, "Optimizer state per parameter"): the
    momentum, the center, and three more model-sized buffers than EASGD needs:
    the anchor slot (equal to the weights between steps), the last gradient
    (the chain statistic of the shared anchored core, read at the merge), and
    `held_probe` (x_a while the center is in the model). They come from the
    anchored core's anchor / probe layout; not yet reduced.

    What the model holds: during `fit`, replica a's `x_a` (`get_weights()`
    returns their mean); after `fit`, and at epoch ends with `AnchorSwap`,
    the center on every replica: `mean_a x_a` (`center_moving_rate=None`) or
    the EASGD center variable. `centers` are the `xbar` of the last
    communication; `syncs` counts communications.
    """

    _L2_ON_CONTROL = False  # the control already holds the L2-carrying gradient
    _OUTER_FROM_PROBE = True  # x_a is both; Keras' decoupled weight decay has acted on the model's copy

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=True, rho=None, communication_period=1,
                 center_moving_rate=None, l2=0.0, seed=None, name="elastic_sgd", **kwargs):
        super().__init__(learning_rate, inner_steps=1, l2=l2, seed=seed, name=name, **kwargs)
        self._init_outer(momentum, nesterov)
        self.rho = _check_rho(rho)
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

    # chain: the last gradient is the statistic; the probe does not move
    def _build_chain(self, var_list):
        self._gradients = self.add_optimizer_variables(var_list, "gradient")

    def _chain_slots(self, index):
        return (self._gradients[index],)

    def _chain_step(self, index, gradient, probe, anchor, slots, scalars):
        return probe, (gradient,)

    def _chain_reset(self, anchor):
        return (tf.zeros_like(anchor),)

    def _control(self, anchor, statistics):
        return statistics[0]

    def _merge_controls(self, distribution, variables, controls, scalars):
        """Every tau steps one all-reduce moves the center; then `g_a + rho (x_a - xbar)`."""
        step = distribution.experimental_local_results(scalars.step)[0]

        def sync():
            mean = self._all_reduce_with_statistics(distribution, self._anchors)
            if self.center_moving_rate is not None:
                rate = self.center_moving_rate * self.num_replicas
                old = self._per_replica_reads(self._centers)
                # A Python float times a tensor is converted in the tensor's dtype (no float32 rounding).
                mean = [[c + rate * (m - c) for c, m in zip(cs, ms)] for cs, ms in zip(old, mean)]
            self._assign_centers(mean)

        tf.cond(tf.equal(step % self.communication_period, 0), sync, lambda: None)
        rho = self._resolved_rho()
        return self._coupled_controls(distribution, controls, self._per_replica_reads(self._centers),
                                      lambda r, dtype: tf.constant(rho, dtype))

    def _report(self, distribution):
        if self.center_moving_rate is not None:
            self._all_reduce_with_statistics(distribution, [])
            return self._per_replica_reads(self._centers)
        return super()._report(distribution)

    def get_config(self):
        config = super().get_config()
        config.update(self._coupling_config())
        config.update({"communication_period": self.communication_period,
                       "center_moving_rate": self.center_moving_rate})
        return config
