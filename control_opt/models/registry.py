"""Networks, by name: `build("mnist1d_cnn")` and a registry that later issues extend.

Every builder returns an *uncompiled* `keras.Model` that emits logits (no softmax):
compile it with `SparseCategoricalCrossentropy(from_logits=True)`.

The MNIST-1D networks are the baselines of Greydanus, "Scaling down deep
learning" (2020), whose published test accuracies are CNN 94% and MLP 68%. They
transcribe the authors' PyTorch definitions, including PyTorch's default
initialization (weights and biases uniform in +-1/sqrt(fan_in)), so that the
published accuracies are the reference point.

Example:

    >>> from control_opt import models
    >>> model = models.build("mnist1d_cnn")
    >>> model.output_shape, model.count_params()
    ((None, 10), 5210)
"""

from typing import Callable

import keras

__all__ = ["build", "names", "register", "MNIST1D_INPUT_SHAPE", "MNIST1D_NUM_CLASSES"]

MNIST1D_INPUT_SHAPE = (40, 1)
MNIST1D_NUM_CLASSES = 10

_BUILDERS: dict[str, Callable[..., keras.Model]] = {}


def register(name: str):
    """Decorator adding `builder(*, input_shape, num_classes, seed) -> keras.Model`."""

    def decorator(builder):
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorator


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_BUILDERS)


def build(name: str, *, input_shape=None, num_classes=None, seed: int | None = None) -> keras.Model:
    """Builds the network registered as `name`, uncompiled, emitting logits.

    Args:
      name: a registry name; see `names()`.
      input_shape: shape of one example without the batch axis; defaults to
        MNIST-1D's (40, 1).
      num_classes: width of the logit layer; defaults to MNIST-1D's 10.
      seed: seeds every initializer (layer i gets a seed derived from `seed`
        and i), so the initial weights do not depend on global RNG state. None
        draws from Keras's global generator (`keras.utils.set_random_seed`).

    Raises:
      ValueError: `name` is not registered; the message lists the known names.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")
    input_shape = tuple(MNIST1D_INPUT_SHAPE if input_shape is None else input_shape)
    num_classes = MNIST1D_NUM_CLASSES if num_classes is None else int(num_classes)
    return _BUILDERS[name](input_shape=input_shape, num_classes=num_classes, seed=seed)
