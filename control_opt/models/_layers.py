"""Pieces the networks share: per-layer seeds, the Torch-default initializer, Torch's BN.

The papers' networks were trained in (Lua) Torch and PyTorch; these helpers
state their conventions once, with Keras initializers:

* Torch's default `nn.Linear` / `nn.SpatialConvolution` weight is uniform in
  +-1/sqrt(fan_in): `VarianceScaling(scale=1/3, mode="fan_in",
  distribution="uniform")`, whose bound is sqrt(3 * scale / fan_in). Biases
  start at zero (Keras has no fan-in-aware bias initializer, and a bias that
  feeds a batch normalization is cancelled by it anyway).
* Torch's batch normalization: epsilon 1e-5 and running averages that move
  10% per step, i.e. Keras momentum 0.9.
"""

import math

import keras

__all__ = []

BN_MOMENTUM = 0.9  # Torch's momentum 0.1 for the new batch statistic
BN_EPSILON = 1e-5


class Seeds:
    """Hands out a distinct initializer / dropout seed per call (None stays None)."""

    def __init__(self, seed):
        self._seed, self._count = seed, 0

    def __call__(self):
        if self._seed is None:
            return None
        self._count += 1
        return (int(self._seed) * 1000 + self._count) % (2**31 - 1)


def torch_default_kernel(seeds):
    """Torch's default weight initialization: uniform in +-1/sqrt(fan_in)."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform",
                                              seed=seeds())


def batch_norm(name):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def dropout(rate, seeds, name):
    """A Dropout layer, or None for rate 0 (so that rate 0 adds no layer)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rates must be in [0, 1), got {rate!r} for {name}")
    return keras.layers.Dropout(rate, seed=seeds(), name=name) if rate else None


def apply(layer, h):
    return h if layer is None else layer(h)


def default_input_shape(shape):
    """Decorator recording the input shape `build` uses when none is given."""

    def decorator(builder):
        builder.default_input_shape = tuple(shape)
        return builder

    return decorator


def trainable_count(model):
    """The number of trainable parameters: what the papers (and Torch's `numel` sums) count.

    `model.count_params()` also counts batch normalization's running mean and
    variance, which are not trained.
    """
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
