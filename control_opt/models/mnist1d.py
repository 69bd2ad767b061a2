"""The MNIST-1D authors' baseline networks (Greydanus, "Scaling down deep learning", 2020).

They transcribe the authors' PyTorch definitions, including PyTorch's default
initialization (weights and biases uniform in +-1/sqrt(fan_in)), so that the
published accuracies (CNN 94%, MLP 68%) are the reference point.
"""

import math

import keras

from control_opt.models._layers import Seeds
from control_opt.models.registry import register

__all__ = []


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
    seeds = Seeds(seed)
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
    seeds = Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="signal")
    x = keras.layers.Flatten(name="flatten")(inputs)
    h1 = keras.layers.Dense(hidden_size, activation="relu", name="hidden1",
                            **_torch_default_init(x.shape[-1], seeds))(x)
    r = keras.layers.Dense(hidden_size, activation="relu", name="hidden2",
                           **_torch_default_init(hidden_size, seeds))(h1)
    h2 = keras.layers.Add(name="residual")([h1, r])
    logits = keras.layers.Dense(num_classes, name="logits", **_torch_default_init(hidden_size, seeds))(h2)
    return keras.Model(inputs, logits, name="mnist1d_mlp")
