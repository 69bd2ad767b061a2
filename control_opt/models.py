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

import math
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


class _Seeds:
    """Hands out a distinct initializer seed per call (None stays None)."""

    def __init__(self, seed):
        self._seed, self._count = seed, 0

    def __call__(self):
        if self._seed is None:
            return None
        self._count += 1
        return (int(self._seed) * 1000 + self._count) % (2**31 - 1)


def _torch_default_init(fan_in, seeds):
    """PyTorch's default Linear/Conv initialization, for layers with this fan-in.

    kaiming_uniform(a=sqrt(5)) on the weight gives the bound 1/sqrt(fan_in), and the
    bias is uniform with the same bound. Returns Keras layer keyword arguments.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return dict(
        kernel_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seeds()),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seeds()),
    )


@register("mnist1d_cnn")
def _mnist1d_cnn(*, input_shape, num_classes, seed):
    """The MNIST-1D authors' `ConvBase`: 3 x (Conv1D 25 channels, stride 2, ReLU), linear head.

    Kernel sizes 5, 3, 3, each with one zero on both sides (PyTorch `padding=1`),
    so a length-40 input gives lengths 19, 10, 5 and a 125-wide flattened
    feature (5,210 parameters). Keras's padding="same" would pad asymmetrically,
    hence the explicit ZeroPadding1D.
    """
    if len(input_shape) != 2:
        raise ValueError(f"mnist1d_cnn takes inputs shaped (length, channels); got input_shape={input_shape}")
    seeds = _Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="signal")
    h = inputs
    channels_in = input_shape[-1]
    for i, kernel_size in enumerate((5, 3, 3), start=1):
        h = keras.layers.ZeroPadding1D(1, name=f"pad{i}")(h)
        h = keras.layers.Conv1D(25, kernel_size, strides=2, padding="valid", activation="relu",
                                name=f"conv{i}", **_torch_default_init(channels_in * kernel_size, seeds))(h)
        channels_in = 25
    h = keras.layers.Flatten(name="flatten")(h)
    logits = keras.layers.Dense(num_classes, name="logits", **_torch_default_init(h.shape[-1], seeds))(h)
    return keras.Model(inputs, logits, name="mnist1d_cnn")


@register("mnist1d_mlp")
def _mnist1d_mlp(*, input_shape, num_classes, seed, hidden_size=100):
    """The MNIST-1D authors' `MLPBase`: two ReLU hidden layers of 100, linear head.

    As in the authors' code, the second hidden layer is residual:
    h2 = h1 + relu(W2 h1 + b2). Inputs of any shape are flattened first.
    """
    seeds = _Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="signal")
    x = keras.layers.Flatten(name="flatten")(inputs)
    h1 = keras.layers.Dense(hidden_size, activation="relu", name="hidden1",
                            **_torch_default_init(x.shape[-1], seeds))(x)
    r = keras.layers.Dense(hidden_size, activation="relu", name="hidden2",
                           **_torch_default_init(hidden_size, seeds))(h1)
    h2 = keras.layers.Add(name="residual")([h1, r])
    logits = keras.layers.Dense(num_classes, name="logits", **_torch_default_init(hidden_size, seeds))(h2)
    return keras.Model(inputs, logits, name="mnist1d_mlp")
