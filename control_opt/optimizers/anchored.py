"""The anchor / probe / chain / control pattern shared by every optimizer of the library.

Each optimizer here discretizes the controlled SDE `dw = -a(w, s) ds + dB`
(DESIGN.md section 1) with a control read from an inner Markov chain:

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
  inner step, returning the new probe and the new chain statistics),
  `_chain_reset(anchor)` and `_control(anchor, statistics)`;
* its outer rule: `_build_outer` and `_outer_direction(index, gradient)`, e.g.
  `MomentumOuterStep` or `AdamOuterStep` below (mix-ins).

Later replica-local optimizers (Elastic-SGD, Parle on `tf.distribute`) add their
coupling term to the control in `_control`.

Which weights the model holds
-----------------------------
During training the model's variables hold the probe. Everything that reports
or keeps the model must see the anchor; the exchange is exact (a swap, so
nothing is lost) and tracked by an optimizer variable, so checkpoints know
which is where:

* at the end of `fit`, Keras calls `finalize_variable_values`, which swaps the
  anchor into the model: `evaluate`, `predict` and `save` after `fit` see the
  anchor;
* `control_opt.AnchorSwap()` (put it first in `callbacks=`) also swaps the
  anchor in for validation inside `fit` and at every epoch end (so
  `ModelCheckpoint`, metrics writers and our experiment runner see it), and
  swaps the probe back before training resumes, including at the start of a
  later `fit` on a model that was saved or finalized mid inner loop;
* without that callback, a later `fit` still starts correctly: the first
  update notices that the model holds the anchor and swaps the probe back
  (only that first gradient is then taken at the anchor instead of the probe).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from control_opt._internal import sampling
from control_opt._internal.checks import (
    check_int, check_nesterov, check_non_negative, check_positive, check_unit_interval, resolve_seed)
from control_opt.formulas import momentum as momentum_lib

__all__ = ["AnchoredOptimizer", "AdamOuterStep", "MomentumOuterStep", "find_anchored_optimizer"]

# Salt that separates the noise streams of the variables of one optimizer.
_VARIABLE_SALT = 0x9E3779B1


def _tensor_of(variable):
    """The TF value behind a Keras variable (a `tf.Variable` is already one)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def find_anchored_optimizer(model_or_optimizer):
    """The `AnchoredOptimizer` of a model (or behind an optimizer), else None.

    Looks through wrappers such as the `LossScaleOptimizer` that `compile`
    puts around the optimizer under a `mixed_float16` policy (its
    `inner_optimizer`), so every part of the library finds the same optimizer.
    """
    optimizer = getattr(model_or_optimizer, "optimizer", model_or_optimizer)
    for _ in range(8):  # wrappers of wrappers, bounded
        if isinstance(optimizer, AnchoredOptimizer):
            return optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)
        if optimizer is None:
            return None
    return None


class AnchoredOptimizer(keras.optimizers.Optimizer):
    """Base class: anchor, probe, chain statistic, control, outer step (module docstring)."""

    # The outer step acts on `a + wd w` (DESIGN.md section 3); a chain whose
    # control already averages L2-carrying gradients sets this to False.
    _L2_ON_CONTROL = True

    def __init__(self, learning_rate, *, inner_steps, l2=0.0, seed=None, name=None, **kwargs):
        super().__init__(learning_rate=check_positive("learning_rate", learning_rate, schedule=True),
                         name=name, **kwargs)
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
    def anchors(self):
        """The anchor variables `w`, in the order of the model's trainable variables
        (they hold the probe while `anchor_in_model` is true)."""
        return list(self._anchors)

    @property
    def anchor_in_model(self):
        return self.built and bool(int(self._anchor_in_model.numpy()))

    @property
    def inner_step(self):
        """Position l in the inner loop (0 at the start of an outer step)."""
        return self.iterations % self._inner_steps

    @property
    def outer_step(self):
        """k, the number of completed outer steps."""
        return self.iterations // self._inner_steps

    # ---------------------------------------------------------- the swap
    def _exchange_anchor_and_probe(self):
        # One traced function instead of three eager ops per variable: the
        # callback swaps a few times per epoch.
        if getattr(self, "_exchange_fn", None) is None:
            def exchange():
                for variable, anchor in zip(self._trainable_variables, self._anchors):
                    self._swap_one(variable, anchor)
            object.__setattr__(self, "_exchange_fn", tf.function(exchange))
        self._exchange_fn()

    def swap_in_anchor(self):
        """Put the anchor in the model's variables (the probe goes to the anchor
        slots). Returns True if anything moved. Eager; used by callbacks."""
        if not self.built or self.anchor_in_model:
            return False
        self._exchange_anchor_and_probe()
        self._anchor_in_model.assign(1)
        return True

    def swap_in_probe(self):
        """Inverse of `swap_in_anchor`: training continues from the probe."""
        if not self.anchor_in_model:
            return False
        self._exchange_anchor_and_probe()
        self._anchor_in_model.assign(0)
        return True

    def finalize_variable_values(self, var_list):
        """Called by Keras at the end of `fit`: the model keeps the anchor."""
        super().finalize_variable_values(var_list)
        self.swap_in_anchor()

    # ------------------------------------------------------------ update
    def _backend_apply_gradients(self, grads, trainable_variables):
        # Scalars shared by every variable's update, computed once per step
        # (update_step runs once per variable: on small models the op count is the cost).
        step = tf.convert_to_tensor(self.iterations)
        per_step = {
            "step": step,
            "outer": step // self._inner_steps,
            "position": step % self._inner_steps,
            "anchor_in_model": tf.equal(tf.convert_to_tensor(self._anchor_in_model), 1),
            "chain": self._chain_scalars(step // self._inner_steps),
        }
        # Plain attribute: not tracked (it holds this trace's tensors only).
        object.__setattr__(self, "_per_step", per_step)
        try:
            super()._backend_apply_gradients(grads, trainable_variables)
        finally:
            object.__setattr__(self, "_per_step", None)
        # Every variable swapped back in its update_step (if it had to).
        self._anchor_in_model.assign(0)

    def noise_normal(self, index, shape, dtype):
        """`xi ~ N(0, I)` for variable `index` at the current iteration, from
        stateless ops: a pure function of (seed, variable, iteration), so a
        resumed or replayed run draws the same noise, and all replicas of a
        `tf.distribute` strategy draw the same. Drawn through the library's one
        Gaussian sampler (Box-Muller on Philox bits converted by the library),
        so eager, graph and XLA runs draw the same numbers (TensorFlow's own
        `stateless_normal` does not under XLA); with 16 random bits per uniform
        (`sampling.standard_normal(bits=16)`), half the random bits per draw:
        the Philox kernel is most of the noise's cost on CPU."""
        seed = tf.cast(tf.stack([self._noise_seed + index * _VARIABLE_SALT,
                                 tf.cast(self._per_step["step"], tf.int64)]), tf.int32)  # wraps
        return sampling.standard_normal(shape, seed, dtype, bits=16)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        anchor_slot = self._anchors[index]
        # A model finalized (anchor in it) and fit again without AnchorSwap.
        per_step = self._per_step
        tf.cond(per_step["anchor_in_model"], lambda: self._swap_one(variable, anchor_slot), lambda: None)
        gradient = tf.cast(gradient, dtype)
        probe = tf.identity(variable)
        anchor = tf.identity(anchor_slot)
        if self.l2:
            gradient = gradient + self.l2 * probe
        outer = per_step["outer"]
        slots = self._chain_slots(index)
        new_probe, statistics = self._chain_step(index, gradient, probe, anchor, slots, per_step)

        def inner_only():
            self.assign(variable, new_probe)
            for slot, value in zip(slots, statistics):
                if slot is not None:
                    self.assign(slot, value)

        def outer_step():
            control = self._control(anchor, statistics)
            if self.l2 and self._L2_ON_CONTROL:
                control = control + self.l2 * anchor
            direction = self._outer_direction(index, control, outer + 1)
            new_anchor = anchor - tf.cast(learning_rate, dtype) * direction
            self.assign(anchor_slot, new_anchor)
            self.assign(variable, new_anchor)
            for slot, value in zip(slots, self._chain_reset(new_anchor)):
                if slot is not None:
                    self.assign(slot, value)

        tf.cond(tf.equal(per_step["position"], self._inner_steps - 1), outer_step, inner_only)

    def _swap_one(self, variable, anchor_slot):
        """Exchange the values of a model variable and its anchor slot."""
        held = tf.identity(_tensor_of(variable))
        self.assign(variable, anchor_slot)
        self.assign(anchor_slot, held)

    # ------------------------------------------------- subclass interface
    def _build_chain(self, var_list):
        raise NotImplementedError

    def _chain_slots(self, index):
        """Tuple of the chain's slot variables for variable `index` (None allowed)."""
        raise NotImplementedError

    def _chain_scalars(self, outer_step):
        """Scalars of the chain for this step (e.g. the scope gamma_k), computed
        once per step and handed to `_chain_step` as `per_step["chain"]`."""
        return {}

    def _chain_step(self, index, gradient, probe, anchor, slots, per_step):
        """One inner step: `(new_probe, new_statistics)`, statistics aligned with
        `slots`; `per_step` holds "step", "outer", "position" and "chain"."""
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


class MomentumOuterStep:
    """Outer rule: SGD with (Nesterov) momentum on the control; buffer starts at 0."""

    def _init_outer(self, momentum, nesterov):
        self.momentum = check_unit_interval("momentum", momentum)
        self.nesterov = check_nesterov("nesterov", nesterov, "momentum", self.momentum)

    def _build_outer(self, var_list):
        self._outer_velocities = (self.add_optimizer_variables(var_list, "outer_velocity")
                                  if self.momentum else None)

    def _outer_direction(self, index, gradient, step):
        velocity = self._outer_velocities[index] if self.momentum else None
        direction, new_velocity = momentum_lib.momentum_direction(
            gradient, velocity, self.momentum, self.nesterov)
        if new_velocity is not None:
            self.assign(velocity, new_velocity)
        return direction

    def _outer_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class AdamOuterStep:
    """Outer rule: Adam on the control, its step counter the outer step k + 1."""

    def _init_outer(self, beta_1, beta_2, epsilon):
        self.beta_1 = check_unit_interval("beta_1", beta_1)
        self.beta_2 = check_unit_interval("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)

    def _build_outer(self, var_list):
        self._first_moments, self._second_moments = self.add_optimizer_variables(
            var_list, ["first_moment", "second_moment"])

    def _outer_direction(self, index, gradient, step):
        first, second = self._first_moments[index], self._second_moments[index]
        direction, new_first, new_second = momentum_lib.adam_direction(
            gradient, first, second, step, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        self.assign(first, new_first)
        self.assign(second, new_second)
        return direction

    def _outer_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
