"""Baseline optimizers the papers compare against that Keras lacks as such.

`CoupledL2SGD`: SGD (momentum, Nesterov) with *coupled* L2 weight decay, the
gradient `g + wd w` fed to the momentum, as in the authors' Torch code and
PyTorch's `SGD(weight_decay=...)` (the papers' "L2 1e-3"). Keras' own
`weight_decay` is decoupled (`w <- w - lr wd w` outside the momentum), a
different rule whenever the momentum is not 0.
"""

from __future__ import annotations

import keras

from control_opt._internal.checks import check_non_negative

__all__ = ["CoupledL2SGD"]


@keras.saving.register_keras_serializable(package="control_opt_experiments")
class CoupledL2SGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` on the gradient `g + l2 w` (coupled L2); `l2=0` is Keras' SGD exactly."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, name="sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, name=name, **kwargs)
        self.l2 = check_non_negative("l2", l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = keras.ops.add(keras.ops.cast(gradient, variable.dtype),
                                     keras.ops.multiply(self.l2, variable))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config
