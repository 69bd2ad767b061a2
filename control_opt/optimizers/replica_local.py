"""Replica-local state for an `AnchoredOptimizer`: each replica its own weights and slots.

The mix-in `ReplicaLocal` (placed before the `AnchoredOptimizer` subclass in
the bases of `ElasticSGD` and `Parle`) changes what is per replica and how the
state is stored; the coupling to the center is the composed `center.Center`.

* Slots: every optimizer slot is per replica (`distribute.per_replica_slots`),
  the center's included (it holds each replica's weights while the center is
  in the model); `iterations`, `anchor_in_model` and `syncs` are mirrored.
* Phase 1 (`_chain_phase`): each replica steps its own chain on its own
  gradient (times n, before clipping, `_own_gradients`: Keras scales each
  replica's loss by 1/n); no gradient all-reduce.
* What the model holds: during training each replica's own weights (a read
  outside the replicas, e.g. `model.get_weights()`, gives their mean);
  swapped in (`AnchorSwap`, end of `fit`): the center (`_report`) on every
  replica, so evaluation, predict and save see it.
* `mixed_float16`: finiteness checked on every replica (one scalar
  all-reduce), an overflow anywhere skips the step everywhere.
* Saving: the per-replica slots are stored stacked `[n, ...]`
  (`save_own_variables`); loading into another number of replicas raises.
"""

from __future__ import annotations

import sys
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from control_opt import distribute
from control_opt.distribute.replicas import _in_a_strategy
from control_opt.optimizers.center import Center
from control_opt.optimizers.swap import _tensor_of

__all__ = ["ReplicaLocal", "STATE_LAYOUT"]

# Version of the saved per-replica layout. 2: the center slot per replica holds the weights while the
# center is in the model (no `held_probe`), Elastic-SGD without anchor and gradient slots.
STATE_LAYOUT = 2

# Salt of the replicas' noise streams (the dtype streams use anchored's, another odd constant).
_REPLICA_SALT = 0x85EBCA77


class ReplicaLocal:
    """Mix-in: per-replica state, no gradient all-reduce, the center composed (module docstring)."""

    # True: `Center(keep_last=True)`, the last center survives the center's visit to the model.
    def _keeps_last_center(self):
        return False

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
            self._build_own_slots(var_list)
            # Not a tracked attribute: its variables are the optimizer's (added above by `add_variable`).
            object.__setattr__(self, "_center", Center(self, var_list, keep_last=self._keeps_last_center()))
        self._per_replica_indices = frozenset(
            i for i, v in enumerate(self.variables) if i >= before and v.aggregation == "none")

    def _build_own_slots(self, var_list):
        """The optimizer's own slots (under `per_replica_slots`): here the anchored core's."""
        super()._build_slots(var_list)

    def _check_replicas(self):
        """Hook: raise for hyper-parameters that the number of replicas makes invalid."""

    @property
    def centers(self):
        """Where the center `xbar` is now, in the order of the trainable variables: the center
        slots during training (the `xbar` of the last communication, the same on every
        replica), the model's variables while the center is in the model (`anchor_in_model`;
        the slots then hold each replica's weights)."""
        if self.anchor_in_model:
            return list(self._trainable_variables)
        return list(self._center.slots)

    @property
    def syncs(self):
        """Number of communications (all-reduces of the parameters) so far."""
        return int(self._center.syncs.numpy()) if self.built else 0

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

    # -------------------------------------------------------- what the model holds
    def _report(self, distribution):
        """`out[r][i]`: what the model holds on replica r when the center is swapped in:
        `mean_a x_a` (one all-reduce, outside the training step, which also averages the
        model's statistics)."""
        return self._center.mean(distribution, self._anchors)

    def _put_probe_back(self, variable):
        self._center.take_out_one(self, self._get_variable_index(variable), variable)

    def _collapsed_slots(self, index, value):
        """`(slot, value)` pairs that collapse onto `value` when variable `index` is released
        (besides its center slot): here the anchor and the chain's restart."""
        pairs = [(self._anchors[index], value)]
        pairs += [(slot, reset) for slot, reset in zip(self._chain_slots(index), self._chain_reset(value))
                  if slot is not None]
        return pairs

    def _release(self, variable):
        """Not trained this step: every slot collapses onto the model's value (no swap moves it)."""
        index = self._get_variable_index(variable)
        value = tf.identity(_tensor_of(variable))
        for slot, reset in self._collapsed_slots(index, value) + [(self._center.slots[index], value)]:
            self.assign(slot, reset)

    def _release_copies(self, index):
        """`_release` replica by replica (cross-replica context)."""
        variable = _tensor_of(self._trainable_variables[index])
        for r, copy in enumerate(distribute.components(variable)):
            with tf.device(copy.device):
                value = tf.identity(copy)
                for slot, reset in self._collapsed_slots(index, value) + [(self._center.slots[index], value)]:
                    distribute.components(_tensor_of(slot))[r].assign(reset)

    def _exchange_anchor_and_probe(self, var_list=None):
        """Center in (each replica's weights go to its center slot) or weights back, per replica."""
        chosen = self._chosen_indices(var_list)
        to_center = not self.anchor_in_model
        if getattr(self, "_exchange_fns", None) is None:
            object.__setattr__(self, "_exchange_fns", {})
        key = (chosen, to_center)
        if key not in self._exchange_fns:
            def exchange():
                distribution = tf.distribute.get_strategy()
                report = self._report(distribution) if to_center else None
                for index, variable in enumerate(self._trainable_variables):
                    if index not in chosen:
                        self._release_copies(index)
                    elif to_center:
                        self._center.put_in(index, _tensor_of(variable), [row[index] for row in report])
                    else:
                        self._center.take_out(index, _tensor_of(variable))
            self._exchange_fns[key] = tf.function(exchange)
        with self._distribution_strategy.scope():
            self._exchange_fns[key]()

    # ---------------------------------------------------------------- saving
    def save_own_variables(self, store):
        """Per-replica slots stacked `[n, ...]` (a plain read would give their mean).

        Saved mid-epoch with the replicas' weights in the model (a checkpoint callback
        without `AnchorSwap`), the model's file gets their mean: the replicas' own
        weights are stored here too (`probe_j`), and loading puts them back
        (`_load_own_weights`). Not built yet (e.g. `pickle.dumps` of a new optimizer):
        Keras' layout."""
        if not self.built:
            return super().save_own_variables(store)
        for i, variable in enumerate(self.variables):
            store[str(i)] = (distribute.stack_components(variable) if i in self._per_replica_indices
                             else variable.numpy())
        store["replicas"] = np.asarray(self.num_replicas, dtype="int64")
        store["layout"] = np.asarray(STATE_LAYOUT, dtype="int64")
        if not self.anchor_in_model:
            for j, variable in enumerate(self._trainable_variables):
                store[f"probe_{j}"] = distribute.stack_components(variable)

    def load_own_variables(self, store):
        name = type(self).__name__
        if not self.built:
            if "replicas" not in store:  # written before it was built (Keras' layout): nothing per replica
                return super().load_own_variables(store)
            warnings.warn(f"{name}: not built, the saved state was not loaded.", stacklevel=2)
            return
        if "replicas" not in store:
            raise ValueError(f"the saved optimizer state was not written by {name} "
                             "(no per-replica layout); it cannot be loaded.")
        layout = int(np.asarray(store["layout"])) if "layout" in store else 1
        if layout != STATE_LAYOUT:
            raise ValueError(
                f"{name}: the saved optimizer state has layout {layout}, this version reads layout "
                f"{STATE_LAYOUT}. Layout 2 (issue 17) holds less: no `held_probe` slot (each replica's weights "
                "wait in its `center` slot while the center is in the model), and Elastic-SGD has no `anchor` "
                "and `gradient` slots. The old state cannot be loaded; to use the model, load it with "
                "`keras.models.load_model(path, compile=False)` (its weights are the center) and compile a new "
                "optimizer.")
        saved = int(np.asarray(store["replicas"]))
        if saved != self.num_replicas:
            raise ValueError(
                f"{name}: the saved state holds {saved} replicas' weights, but the "
                f"strategy now has {self.num_replicas} replica(s). To resume training, load under "
                f"`with control_opt.replica_local(strategy):` with a strategy of {saved} replicas; to use the "
                "model (its weights are the center), pass `compile=False` to `keras.models.load_model`.")
        probes = "probe_0" in store
        expected = len(self.variables) + 2 + (len(self._trainable_variables) if probes else 0)
        if len(store.keys()) != expected:
            raise ValueError(f"{name}: the saved state has {len(store.keys())} entries, "
                             f"this optimizer expects {expected}.")
        for i, variable in enumerate(self.variables):
            if i in self._per_replica_indices:
                distribute.assign_components(variable, store[str(i)])
            else:
                variable.assign(store[str(i)])
        if probes:
            self._load_own_weights([store[f"probe_{j}"] for j in range(len(self._trainable_variables))])

    def _load_own_weights(self, stacked):
        """The replicas' weights of a checkpoint saved during training: into the center slots, as
        if the center were in the model (`anchor_in_model`; the next step or `AnchorSwap` puts
        them back). Whatever Keras loads into the model afterwards, they survive. The center
        slot's own value is then lost; kept when it is needed (`held_center`)."""
        center = self._center
        for j, slot in enumerate(center.slots):
            if center.held is not None:
                distribute.assign_components(center.held[j], distribute.stack_components(slot))
            distribute.assign_components(slot, stacked[j])
        self._anchor_in_model.assign(1)

    def _coupling_config(self):
        return {"rho": self.rho}
