"""Keras callbacks that keep reporting and saving on the anchor.

With an anchored optimizer (`EntropySGD`, `EntropyAdam`, ...) the model's
variables hold the probe `w'` during training while the weights to report, the
anchor `w`, are optimizer state (`control_opt.optimizers.anchored`).
"""

from __future__ import annotations

import keras

from control_opt.optimizers.anchored import AnchoredOptimizer

__all__ = ["AnchorSwap", "find_anchored_optimizer"]


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


class AnchorSwap(keras.callbacks.Callback):
    """Swap the anchor into the model wherever `fit` reports or saves.

    * validation inside `fit` (and `evaluate(callbacks=[AnchorSwap()])`) runs
      at the anchor;
    * at every epoch end the model holds the anchor, so callbacks placed
      *after* this one (`ModelCheckpoint`, `BackupAndRestore`, CSV/TensorBoard
      writers, the experiment runner) see the anchor;
    * at every epoch begin, and at the start of a later `fit` on a model that
      was finalized, saved or restored mid inner loop, the probe goes back, so
      training continues exactly where it stopped.

    Only the model's trainable variables are exchanged: those of a frozen
    layer stay where they are (the optimizer releases them).

    Place it first in `callbacks=`. For optimizers without an anchor it does
    nothing, so a runner can always add it. Every swap is an exchange of
    values (never a copy), tracked by the optimizer's `anchor_in_model`
    variable, so nothing is lost whatever the order of events.
    """

    def _optimizer(self):
        return find_anchored_optimizer(self.model)

    def _swap(self, to_anchor):
        optimizer = self._optimizer()
        if optimizer is None:
            return False
        # Only the variables being trained: a frozen layer never moves.
        var_list = self.model.trainable_variables
        return optimizer.swap_in_anchor(var_list) if to_anchor else optimizer.swap_in_probe(var_list)

    def on_train_begin(self, logs=None):
        self._swap(to_anchor=False)

    def on_epoch_begin(self, epoch, logs=None):
        self._swap(to_anchor=False)

    def on_test_begin(self, logs=None):
        self._swapped_for_test = self._swap(to_anchor=True)

    def on_test_end(self, logs=None):
        if getattr(self, "_swapped_for_test", False):
            self._swap(to_anchor=False)
            self._swapped_for_test = False

    def on_epoch_end(self, epoch, logs=None):
        self._swap(to_anchor=True)

    def on_train_end(self, logs=None):
        self._swap(to_anchor=True)
