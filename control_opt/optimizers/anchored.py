"""The anchor / probe / chain / control pattern shared by every optimizer of the library.

Each optimizer here discretizes the controlled SDE `dw = -a(w, s) ds + dB`
(docs/math.md section 1) with a control read from an inner Markov chain:

* the **anchor** `w`: the slow variable, the weights we report; optimizer state;
* the **probe** `w'`: the fast variable where the next gradient is evaluated;
  it lives in the model's own variables during training;
* a **chain statistic** (the running mean `mu` of Entropy-SGD, the fixed point
  `p` of the HJ optimizer) from which the **control** `a` is read;
* the **outer step** `w <- w - eta * rule(a + wd w)` after every `inner_steps`
  gradient evaluations (SGD momentum, Adam, ...), after which the probe and the
  chain restart at the new anchor.

Keras calls `apply_gradients` once per minibatch gradient, so the inner loop is
unrolled across calls and gated by a counter (as in Optax's `lookahead`): with
`k = iterations // L` and `l = iterations % L` (both derived from the
optimizer's own `iterations` variable, so they survive checkpoints,
`steps_per_execution` and XLA), the call with `l = L - 1` also does the outer
step. One Keras step is one gradient evaluation; an "effective epoch" is one
pass over the data whatever L is, as in the papers.

A subclass supplies two small parts, and nothing else:

* its chain: `_build_chain`, `_chain_slots(index)`, `_chain_step(...)` (one
  inner step, returning the new probe and the new chain statistics; or
  `_chain_apply(...)`, the same step done in place, e.g. with fused kernels),
  `_chain_reset(anchor)` and `_control(anchor, statistics)`;
* its outer rule: `_build_outer` and `_outer_direction(index, gradient)`, e.g.
  `MomentumOuterStep` or `AdamOuterStep` below (mix-ins).

Hook points: one step, under any `tf.distribute` strategy
---------------------------------------------------------
Keras routes `apply_gradients` -> `apply` (replica context) ->
`_backend_apply_gradients`. We override that method (Keras' version only adds
gradient accumulation and EMA, both rejected in `__init__`):

0. `_step_scalars` builds this step's `StepScalars` (iteration, k, l, "the
   model holds the anchor", the chain's scalars per dtype) once, in replica
   context, and every later phase receives it as an argument: no per-step
   object state, so the replica threads of `MirroredStrategy` never share
   tensors. Then, in this order: the probe goes back into the model if the
   anchor is there (`_restore_probes`; before Keras' decoupled weight decay,
   which must act on the probe), variables the optimizer was built on but
   that this step does not update are released (`_release`: anchor and chain
   collapse onto the value the model holds, so no swap ever moves them),
   gradients are clipped, weight decay is applied, and
   `_backend_update_step(grads, variables, learning_rate, scalars)` runs:

1. **chain step, per replica** (`_chain_phase`, replica context): here
   Keras' data parallelism, i.e. gradients summed over replicas
   (`_all_reduce_sum_gradients`) and `_chain_update` on every copy of every
   variable through `merge_call` + `extended.update`, as Keras'
   `_distributed_tf_update_step` does. A replica-local optimizer (Elastic-SGD,
   Parle) overrides it to step its own chain on its own gradient.
2. **merge hook** (`_merge_controls`, cross-replica context, outer steps
   only): identity here. `_merged_outer_phase` is entered through an
   *unconditional* `merge_call` and holds the `tf.cond` on "outer step",
   so a collective placed in this hook (one all-reduce of the controls /
   anchors) runs only on outer steps; an all-reduce inside a replica-context
   `tf.cond` would raise (Keras' `LossScaleOptimizer` uses the same pattern).
3. **outer step** (`_outer_update`, per variable on every device):
   `w <- w - eta rule(a + wd w)`, then the probe and the chain restart at `w`.

Elastic-SGD / Parle add their coupling term to the control in `_control`.

Which weights the model holds, and how they are exchanged: `swap` (the
`AnchorProbeExchange` mix-in) and `callbacks.AnchorSwap`.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from control_opt._internal import graph_modes, sampling
from control_opt._internal.checks import (
    check_non_negative, check_positive, resolve_seed)
from control_opt.optimizers.outer_rules import AdamOuterStep, MomentumOuterStep
from control_opt.optimizers.step_scalars import StepScalars
from control_opt.optimizers.swap import AnchorProbeExchange, _tensor_of

__all__ = ["AnchoredOptimizer", "AdamOuterStep", "MomentumOuterStep", "StepScalars"]

# Salt that separates the noise streams (one per dtype) of one optimizer.
_VARIABLE_SALT = 0x9E3779B1


class AnchoredOptimizer(AnchorProbeExchange, keras.optimizers.Optimizer):
    """Base class: anchor, probe, chain statistic, control, outer step (module docstring).

    Keras' `use_ema=True` and `gradient_accumulation_steps` are rejected with a
    `ValueError` (the EMA swap at the end of `fit` would overwrite the probe;
    accumulation would clear `anchor_in_model` on micro-steps). Keras'
    decoupled `weight_decay` acts on the probe, after it is swapped back.
    """

    # The outer step acts on `a + wd w` (docs/math.md section 3); a chain whose
    # control already averages L2-carrying gradients sets this to False.
    _L2_ON_CONTROL = True
    # The outer step starts from the model's value instead of the anchor slot: for
    # Elastic-SGD (L = 1, the two are one value) this lets Keras' decoupled
    # weight decay, applied to the model's variable first, act as in Keras' SGD.
    _OUTER_FROM_PROBE = False
    # The constructor argument that sets L, for messages.
    _INNER_STEPS_ARG = "inner_steps"

    def __init__(self, learning_rate, *, inner_steps, l2=0.0, seed=None, name=None, **kwargs):
        if kwargs.get("use_ema"):
            raise ValueError(
                f"`use_ema=True` is not supported by {type(self).__name__}: Keras' end-of-fit EMA swap "
                "would write the average of the probe into the model, and the anchor swap would then "
                "move it into the anchor slot, losing the probe. Pass `use_ema=False` (the anchor is "
                "already an average of the chain).")
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError(
                f"`gradient_accumulation_steps` is not supported by {type(self).__name__} (received "
                f"gradient_accumulation_steps={kwargs['gradient_accumulation_steps']!r}): the inner "
                "loop already unrolls over `apply_gradients` calls; use a larger batch or more inner steps.")
        super().__init__(learning_rate=check_positive("learning_rate", learning_rate, schedule=True),
                         name=name, **kwargs)
        self._warned_no_outer_step = False
        self._inner_steps = inner_steps
        self.l2 = check_non_negative("l2", l2)
        self.seed = resolve_seed(seed)

    # ------------------------------------------------------------------ state
    def build(self, var_list):
        if self.built:
            return
        # Keras builds the optimizer inside the traced train step when no
        # distribution strategy is set; slots that copy the weights must be
        # created and filled eagerly (XLA cannot lift them otherwise).
        with tf.init_scope():
            self._build_slots(var_list)

    def _build_slots(self, var_list):
        super().build(var_list)
        self._anchors = self.add_copies(var_list, "anchor")
        # 1 while the model's variables hold the anchor (and the anchor slots the probe).
        self._anchor_in_model = self.add_variable(
            shape=(), initializer="zeros", dtype="int32", aggregation="only_first_replica",
            name="anchor_in_model")
        self._noise_seed = self.add_variable(
            shape=(), initializer=keras.initializers.Constant(self.seed), dtype="int64",
            aggregation="only_first_replica", name="noise_seed")
        self._build_chain(var_list)
        self._build_outer(var_list)

    def add_copies(self, var_list, name):
        """Optimizer slots initialized to the current values of `var_list`.

        The value enters through the initializer (run eagerly, in init scope),
        not through an assign op: an assign would be traced into the training
        function when `build` runs inside `tf.function`, and rerun every step.
        """
        def copy_of(variable):
            def initializer(shape, dtype):
                with tf.init_scope():
                    return tf.cast(tf.identity(_tensor_of(variable)), dtype)
            return initializer

        return [self.add_variable_from_reference(variable, name=name, initializer=copy_of(variable))
                for variable in var_list]

    @property
    def inner_step(self):
        """Position l in the inner loop (0 at the start of an outer step)."""
        return self.iterations % self._inner_steps

    @property
    def outer_step(self):
        """k, the number of completed outer steps."""
        return self.iterations // self._inner_steps

    def finalize_variable_values(self, var_list):
        """Called by Keras at the end of `fit`: the model keeps the anchor.

        Warns (once per optimizer) when no outer step has run yet: the anchor,
        which the model then holds, is still the initial weights."""
        super().finalize_variable_values(var_list)
        iterations = int(self.iterations.numpy()) if self.built else 0
        if not self._warned_no_outer_step and 0 < iterations < self._inner_steps:
            self._warned_no_outer_step = True
            warnings.warn(
                f"{type(self).__name__}: training stopped after {iterations} gradient "
                f"evaluations, before the first outer step (one every {self._inner_steps}, "
                f"`{self._INNER_STEPS_ARG}`): the anchor, which the model now holds, is still the "
                f"initial weights. Train for at least {self._inner_steps} steps or lower "
                f"`{self._INNER_STEPS_ARG}`.", UserWarning, stacklevel=2)
        self.swap_in_anchor(var_list)

    # ------------------------------------------------------------ update
    def _step_scalars(self, trainable_variables):
        """The `StepScalars` of this step, computed once (in replica context)."""
        step = tf.convert_to_tensor(self.iterations)
        outer = step // self._inner_steps
        position = step % self._inner_steps
        dtypes = sorted({tf.as_dtype(variable.dtype).name for variable in trainable_variables})

        def chain_scalars(dtype):
            # In the variable's dtype (float64 models get float64); half-precision
            # variables get float32 values rounded once.
            dtype = tf.as_dtype(dtype)
            if dtype.size >= 4:
                return self._chain_scalars(outer, dtype, position=position)
            return tf.nest.map_structure(lambda value: tf.cast(value, dtype),
                                         self._chain_scalars(outer, tf.float32, position=position))

        return StepScalars(
            step=step,
            outer=outer,
            position=position,
            anchor_in_model=tf.equal(tf.convert_to_tensor(self._anchor_in_model), 1),
            chain={dtype: chain_scalars(dtype) for dtype in dtypes},
            noise=self._step_noise(trainable_variables, step))

    def _backend_apply_gradients(self, grads, trainable_variables):
        # Replaces Keras' (gradient accumulation and EMA are rejected in
        # `__init__`): the probe must be back in the model before Keras'
        # decoupled weight decay acts on it.
        scalars = self._step_scalars(trainable_variables)
        self._restore_probes(trainable_variables, scalars)
        updated = {self._var_key(variable) for variable in trainable_variables}
        idle = [variable for variable in self._trainable_variables if self._var_key(variable) not in updated]
        if idle:  # a subset (frozen layer, no gradient): those variables must not move
            self._for_each_variable(self._release, idle)
        grads = self._own_gradients(grads)  # before clipping: the threshold acts on the gradient stepped on
        grads = self._clip_gradients(grads)
        self._apply_weight_decay(trainable_variables)
        self._backend_update_step(grads, trainable_variables, self.learning_rate, scalars)
        # Every variable swapped back by `_restore_probes` (if it had to).
        self._anchor_in_model.assign(0)

    def _own_gradients(self, grads):
        """Hook: the gradients this replica steps on, from Keras' (identity here;
        a replica-local optimizer undoes Keras' 1/n loss scaling)."""
        return grads

    def _for_each_variable(self, fn, variables, *args):
        """`fn(variable, *args)` on every copy of every variable (update context)."""
        variables = [_tensor_of(variable) for variable in variables]

        def merged(distribution, variables, *args):
            for variable in variables:
                distribution.extended.update(variable, fn, args=args, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            merged, self._distribution_strategy, variables, *args)

    def _backend_update_step(self, grads, trainable_variables, learning_rate, scalars=None):
        """The three phases (module docstring, "Hook points")."""
        if scalars is None:
            scalars = self._step_scalars(trainable_variables)
        variables = [_tensor_of(variable) for variable in trainable_variables]
        self._chain_phase(list(zip(grads, variables)), scalars)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._merged_outer_phase, self._distribution_strategy, variables, learning_rate, scalars)

    def _chain_phase(self, grads_and_vars, scalars):
        """Phase 1, in replica context: one inner step of the chain on every
        variable. Here: Keras' data parallelism (gradients summed over
        replicas, every copy takes the same step)."""
        grads_and_vars = self._all_reduce_sum_gradients(grads_and_vars)

        def merged(distribution, grads_and_vars, scalars):
            for gradient, variable in grads_and_vars:
                distribution.extended.update(variable, self._chain_update, args=(gradient, scalars), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            merged, self._distribution_strategy, grads_and_vars, scalars)

    def _merged_outer_phase(self, distribution, variables, learning_rate, scalars):
        """Phases 2 and 3, in cross-replica context, entered unconditionally:
        the `tf.cond` on "is this an outer step" lives here, so a collective
        in `_merge_controls` runs only on outer steps."""
        position = distribution.experimental_local_results(scalars.position)[0]

        def outer_step():
            # group=True: one (mirrored) value per variable, which `extended.update`
            # below splits again into each device's own copy.
            controls = [distribution.extended.update(variable, self._read_control, args=(scalars,), group=True)
                        for variable in variables]
            controls = self._merge_controls(distribution, variables, controls, scalars)
            for variable, control in zip(variables, controls):
                distribution.extended.update(variable, self._outer_update, args=(control, learning_rate, scalars),
                                             group=False)

        self._step_cond(tf.equal(position, self._inner_steps - 1), outer_step)

    _UNLOWERED_CONDS = True  # False: a plain `tf.cond` everywhere (a test compares the two)

    def _step_cond(self, pred, true_fn):
        """The per-step conditionals (outer step, probe restore): on one device,
        `graph_modes.step_cond`, a function call rather than Switch/Merge, so
        the untaken branch costs one op. Across replicas a plain `tf.cond`: an
        unlowered `If` cannot hold variables of several devices."""
        strategy = self._distribution_strategy
        if self._UNLOWERED_CONDS and (strategy is None or strategy.num_replicas_in_sync == 1):
            return graph_modes.step_cond(pred, true_fn)
        return tf.cond(pred, true_fn, lambda: None)

    def _merge_controls(self, distribution, variables, controls, scalars):
        """Phase 2 hook: combine the controls across replicas (cross-replica
        context, outer steps only). Identity here: under data parallelism every
        replica already holds the same control. Elastic-SGD / Parle reduce here
        (`distribution.extended.batch_reduce_to`)."""
        return controls

    def _restore_probes(self, variables, scalars):
        """A model finalized (anchor in it) and fit again without AnchorSwap:
        the probes go back, behind one `tf.cond` for all variables (not one per
        variable: this runs on every step)."""
        variables = [_tensor_of(variable) for variable in variables]

        def merged(distribution, variables, scalars):
            held = distribution.experimental_local_results(scalars.anchor_in_model)[0]

            def swap_all():
                for variable in variables:
                    distribution.extended.update(variable, self._put_probe_back, group=False)

            self._step_cond(held, swap_all)

        tf.__internal__.distribute.interim.maybe_merge_call(merged, self._distribution_strategy, variables, scalars)

    def _put_probe_back(self, variable):
        """One variable's probe back into the model (here: the anchor slot holds it; a swap)."""
        self._swap_one(variable, self._anchors[self._get_variable_index(variable)])

    def _release(self, variable):
        """A built variable that this step does not update: its anchor and chain
        collapse onto the value the model holds, so no later swap moves it."""
        index = self._get_variable_index(variable)
        value = tf.identity(_tensor_of(variable))
        self.assign(self._anchors[index], value)
        for slot, reset in zip(self._chain_slots(index), self._chain_reset(value)):
            if slot is not None:
                self.assign(slot, reset)

    def _chain_update(self, variable, gradient, scalars):
        """Phase 1 for one variable: the probe and the chain statistics move."""
        index = self._get_variable_index(variable)
        # Dense: the chain's arithmetic (means, tf.where) needs it (Embedding gives IndexedSlices).
        gradient = tf.convert_to_tensor(gradient)
        if gradient.dtype != variable.dtype:
            gradient = tf.cast(gradient, variable.dtype)
        # One read of each, no copy: every assign below comes after these reads
        # (automatic control dependencies order the ops on a resource).
        probe = tf.convert_to_tensor(variable)
        anchor = tf.convert_to_tensor(self._anchors[index])
        if self.l2:
            gradient = gradient + self.l2 * probe
        self._chain_apply(index, variable, gradient, probe, anchor, scalars)

    def _chain_apply(self, index, variable, gradient, probe, anchor, scalars):
        """One inner step for one variable, in place. Default: `_chain_step`
        gives the new probe and statistics, assigned here; a chain with fused
        kernels (Entropy-SGD's) overrides this instead of `_chain_step`."""
        slots = self._chain_slots(index)
        new_probe, statistics = self._chain_step(index, gradient, probe, anchor, slots, scalars)
        self.assign(variable, new_probe)
        for slot, value in zip(slots, statistics):
            if slot is not None:
                self.assign(slot, value)

    def _read_control(self, variable, scalars):
        index = self._get_variable_index(variable)
        statistics = [None if slot is None else tf.convert_to_tensor(slot) for slot in self._chain_slots(index)]
        return self._control(tf.convert_to_tensor(self._anchors[index]), statistics)

    def _outer_update(self, variable, control, learning_rate, scalars):
        """Phase 3 for one variable: `w <- w - eta rule(a + wd w)`; probe and chain restart at w."""
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        anchor_slot = self._anchors[index]
        anchor = tf.convert_to_tensor(anchor_slot)
        if self.l2 and self._L2_ON_CONTROL:
            control = control + self.l2 * anchor
        direction = self._outer_direction(index, control, scalars.outer + 1)
        start = tf.convert_to_tensor(variable) if self._OUTER_FROM_PROBE else anchor
        new_anchor = start - tf.cast(learning_rate, dtype) * direction
        self.assign(anchor_slot, new_anchor)
        self.assign(variable, new_anchor)
        for slot, value in zip(self._chain_slots(index), self._chain_reset(new_anchor)):
            if slot is not None:
                self.assign(slot, value)

    def update_step(self, gradient, variable, learning_rate):
        """Keras' per-variable entry point, for callers outside `apply`: one
        whole step (chain, then the outer step if due) on one variable."""
        scalars = self._step_scalars([variable])
        self._step_cond(scalars.anchor_in_model, lambda: self._put_probe_back(variable))
        self._chain_update(variable, gradient, scalars)
        self._step_cond(tf.equal(scalars.position, self._inner_steps - 1),
                        lambda: self._outer_update(variable, self._read_control(variable, scalars), learning_rate,
                                                   scalars))

    def _step_noise(self, variables, step):
        """Hook: this step's noise `{variable index: tensor}` for the chain
        (`scalars.noise`), drawn once per step in replica context; None (the
        default) when the chain draws none. See `draw_step_noise`."""
        return None

    def draw_step_noise(self, variables, step, scale):
        """`scale * xi`, `xi ~ N(0, I)`, for every variable of this step, as
        `{variable index: tensor of the variable's shape and dtype}`.

        One draw per step and dtype, split across the variables (in the
        optimizer's variable order), not one draw per variable: a per-step
        cost of a few ops instead of a few dozen ops per variable. The draw is
        a pure function of (seed, dtype stream, iteration) through stateless
        ops (`_noise_seed_of`), so a resumed or replayed run draws the same
        noise, and under a `tf.distribute` strategy every replica of a
        data-parallel optimizer draws the same numbers (Elastic-SGD and Parle
        key the seed by replica as well). Drawn through the library's one
        Gaussian sampler (Box-Muller on Philox bits converted by the library),
        so eager, graph and XLA runs draw the same numbers (TensorFlow's own
        `stateless_normal` does not under XLA); with 16 random bits per uniform
        (`sampling.standard_normal(bits=16)`): the Philox kernel is most of the
        noise's cost on CPU."""
        groups = {}
        for variable in sorted(variables, key=self._get_variable_index):
            groups.setdefault(tf.as_dtype(variable.dtype).name, []).append(variable)
        noise = {}
        for stream, dtype in enumerate(sorted(groups)):
            members = groups[dtype]
            sizes = [int(np.prod(variable.shape)) for variable in members]
            flat = scale * sampling.standard_normal([sum(sizes)], self._noise_seed_of(stream, step), dtype, bits=16)
            for variable, piece in zip(members, tf.split(flat, sizes) if len(sizes) > 1 else [flat]):
                noise[self._get_variable_index(variable)] = tf.reshape(piece, variable.shape)
        return noise

    def _noise_seed_of(self, stream, step):
        """The stateless seed of dtype stream `stream` at iteration `step`:
        `[seed + stream * salt + _noise_offset(), step]` as int32 (wrapping)."""
        key = self._noise_seed + stream * _VARIABLE_SALT + self._noise_offset()
        return tf.cast(tf.stack([key, tf.cast(step, tf.int64)]), tf.int32)

    def _noise_offset(self):
        """Hook: an int64 added to the noise seed (0; Elastic-SGD / Parle: the replica's salt)."""
        return tf.constant(0, tf.int64)

    # ------------------------------------------------- subclass interface
    def _build_chain(self, var_list):
        raise NotImplementedError

    def _chain_slots(self, index):
        """Tuple of the chain's slot variables for variable `index` (None allowed)."""
        raise NotImplementedError

    def _chain_scalars(self, outer_step, dtype, position=None):
        """Scalars of the chain for this step in `dtype` (e.g. the scope gamma_k),
        computed once per step and dtype from k = `outer_step` and l =
        `position` (None outside a step); `_chain_step` reads them as
        `scalars.chain[dtype.name]`."""
        return {}

    def _chain_step(self, index, gradient, probe, anchor, slots, scalars):
        """One inner step: `(new_probe, new_statistics)`, statistics aligned with
        `slots`; `scalars` is this step's `StepScalars`."""
        raise NotImplementedError

    def _chain_reset(self, anchor):
        """Values of the chain slots at the start of an outer step."""
        raise NotImplementedError

    def _control(self, anchor, statistics):
        """The control `a` read from the chain after its last inner step."""
        raise NotImplementedError

    def _build_outer(self, var_list):
        raise NotImplementedError

    def _outer_config(self):
        """The outer rule's hyper-parameters, for `get_config`."""
        raise NotImplementedError

    def _outer_direction(self, index, gradient, step):
        """Direction `d` of the outer step `w <- w - eta d` for the control
        `gradient` (L2 included); `step` = k + 1 >= 1."""
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2, "seed": self.seed})
        config.update(self._outer_config())
        return config
