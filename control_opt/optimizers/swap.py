"""Which weights the model holds: the exact exchange of anchor and probe.

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

__all__ = ["AnchorProbeExchange"]


def _tensor_of(variable):
    """The TF value behind a Keras variable (a `tf.Variable` is already one)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


class AnchorProbeExchange:
    """Mix-in of `AnchoredOptimizer`: the anchor slots, `anchor_in_model`, and the swaps.

    Needs from the optimizer: `_trainable_variables`, `_anchors`,
    `_anchor_in_model`, `assign`, `_release(variable)` and Keras' variable indices.
    """

    @property
    def anchors(self):
        """The anchor variables `w`, in the order of the model's trainable variables
        (they hold the probe while `anchor_in_model` is true)."""
        return list(self._anchors)

    @property
    def anchor_in_model(self):
        return self.built and bool(int(self._anchor_in_model.numpy()))

    def _exchange_anchor_and_probe(self, var_list=None):
        """Swap anchor and probe of the variables in `var_list` (None: all the
        optimizer was built on); the others are released (`_release`), so a
        variable that is not trained (a frozen layer) never moves."""
        chosen = self._chosen_indices(var_list)
        # One traced function (per subset) instead of three eager ops per
        # variable: the callback swaps a few times per epoch.
        if getattr(self, "_exchange_fns", None) is None:
            object.__setattr__(self, "_exchange_fns", {})
        if chosen not in self._exchange_fns:
            def exchange():
                for index, (variable, anchor) in enumerate(zip(self._trainable_variables, self._anchors)):
                    if index in chosen:
                        self._swap_one(variable, anchor)
                    else:
                        self._release(variable)
            self._exchange_fns[chosen] = tf.function(exchange)
        self._exchange_fns[chosen]()

    def swap_in_anchor(self, var_list=None):
        """Put the anchor in the model's variables (the probe goes to the anchor
        slots). Returns True if anything moved. Eager; used by callbacks.

        `var_list`: the variables being trained (e.g. `model.trainable_variables`);
        the optimizer's other variables are released, never moved. None: all."""
        if not self.built or self.anchor_in_model:
            return False
        self._exchange_anchor_and_probe(var_list)
        self._anchor_in_model.assign(1)
        return True

    def swap_in_probe(self, var_list=None):
        """Inverse of `swap_in_anchor`: training continues from the probe."""
        if not self.anchor_in_model:
            return False
        self._exchange_anchor_and_probe(var_list)
        self._anchor_in_model.assign(0)
        return True

    def _swap_one(self, variable, anchor_slot):
        """Exchange the values of a model variable and its anchor slot."""
        held = tf.identity(_tensor_of(variable))
        self.assign(variable, anchor_slot)
        self.assign(anchor_slot, held)

    def _chosen_indices(self, var_list):
        """Indices (sorted tuple) of the variables of `var_list` the optimizer was built on; None: all."""
        if var_list is None:
            return tuple(range(len(self._trainable_variables)))
        return tuple(sorted({self._trainable_variables_indices[self._var_key(variable)]
                             for variable in var_list
                             if self._var_key(variable) in self._trainable_variables_indices}))
