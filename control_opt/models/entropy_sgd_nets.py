"""The Entropy-SGD paper's networks: `mnistfc`, `lenet` (MNIST) and `allcnn_bn` (CIFAR).

Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun and
Zecchina, "Entropy-SGD: biasing gradient descent into wide valleys", ICLR 2017,
section 5. The layer order, dropout rates and batch normalization follow the
authors' code (github.com/ucla-vision/entropy-sgd: `models.lua`, which produced
the paper's tables, and its PyTorch port `python/models.py`); where the two
differ, the docstrings say which one is followed and which keywords give the
other. Initialization is Torch's default (see `_layers`).

Inputs are channels-last images: (28, 28, 1) for MNIST, (32, 32, 3) for CIFAR.
Every network emits logits.
"""

import keras

from control_opt.models import _layers
from control_opt.models._layers import Seeds, apply, default_input_shape, torch_default_kernel
from control_opt.models.registry import register

__all__ = []

MNIST_INPUT_SHAPE = (28, 28, 1)
CIFAR_INPUT_SHAPE = (32, 32, 3)


def _dense(units, seeds, name):
    return keras.layers.Dense(units, kernel_initializer=torch_default_kernel(seeds), name=name)


def _conv(filters, kernel_size, seeds, name, strides=1, padding="valid"):
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                               kernel_initializer=torch_default_kernel(seeds), name=name)


@register("mnistfc")
@default_input_shape(MNIST_INPUT_SHAPE)
def _mnistfc(*, input_shape, num_classes, seed, hidden=1024, batch_norm=True, input_dropout=0.2, dropout=0.5):
    """The paper's `mnistfc`: two fully connected hidden layers of 1024 ReLU units.

    Per hidden layer: Dense -> BatchNorm -> ReLU -> Dropout(0.5), after a
    Dropout(0.2) on the input pixels: the authors' PyTorch port
    (`python/models.py`). The Lua code has neither the input dropout nor the
    batch normalization (`batch_norm=False, input_dropout=0`).

    1,863,690 weights without batch normalization (784*1024 + 1024 +
    1024*1024 + 1024 + 1024*10 + 10), 1,867,786 trainable with it.
    """
    seeds = Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    h = keras.layers.Flatten(name="flatten")(inputs)
    h = apply(_layers.dropout(input_dropout, seeds, "input_dropout"), h)
    for i in (1, 2):
        h = _dense(hidden, seeds, f"dense{i}")(h)
        if batch_norm:
            h = _layers.batch_norm(f"bn{i}")(h)
        h = keras.layers.ReLU(name=f"relu{i}")(h)
        h = apply(_layers.dropout(dropout, seeds, f"dropout{i}"), h)
    logits = _dense(num_classes, seeds, "logits")(h)
    return keras.Model(inputs, logits, name="mnistfc")


@register("lenet")
@default_input_shape(MNIST_INPUT_SHAPE)
def _lenet(*, input_shape, num_classes, seed, batch_norm=True, dropout=0.5, authors_code=False):
    """The paper's LeNet: 20 and 50 5x5 convolutions with max pooling, 500 dense units.

    Per convolution: Conv 5x5 (valid) -> ReLU -> MaxPool -> BatchNorm ->
    Dropout(0.5); then Dense 500 -> ReLU -> Dropout(0.5) -> logits: the layer
    order of the authors' Lua code (`models.lua`, `mnistconv`; their PyTorch
    port puts batch normalization before the ReLU and adds one after the dense
    layer).

    Pooling: LeCun's 2x2 (stride 2) after both convolutions, the LeNet of
    431,080 weights without batch normalization (`batch_norm=False`: 520 +
    25,050 + 800*500 + 500 + 5,010); 431,220 trainable with it. The authors'
    code pools 3x3 (stride 3) after the first convolution, so its dense layer
    sees 50*2*2 features: `authors_code=True` builds that network, 131,080
    weights without batch normalization, 131,220 with it.
    """
    first_pool = 3 if authors_code else 2
    if len(input_shape) != 3:
        raise ValueError(f"lenet takes images shaped (height, width, channels); got input_shape={input_shape}")
    seeds = Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    h = inputs
    for i, (filters, pool) in enumerate(((20, first_pool), (50, 2)), start=1):
        h = _conv(filters, 5, seeds, f"conv{i}")(h)
        h = keras.layers.ReLU(name=f"relu{i}")(h)
        h = keras.layers.MaxPooling2D(pool, strides=pool, name=f"pool{i}")(h)
        if batch_norm:
            h = _layers.batch_norm(f"bn{i}")(h)
        h = apply(_layers.dropout(dropout, seeds, f"dropout{i}"), h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = _dense(500, seeds, "dense")(h)
    h = keras.layers.ReLU(name="relu3")(h)
    h = apply(_layers.dropout(dropout, seeds, "dropout3"), h)
    logits = _dense(num_classes, seeds, "logits")(h)
    return keras.Model(inputs, logits, name="lenet")


@register("allcnn_bn")
@default_input_shape(CIFAR_INPUT_SHAPE)
def _allcnn_bn(*, input_shape, num_classes, seed, input_dropout=0.2, dropout=0.5, batch_norm=True,
               authors_code=False):
    """All-CNN-C (Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for simplicity:
    the all convolutional net", ICLR 2015 workshop) with batch normalization: the
    Entropy-SGD paper's CIFAR-10 network ("All-CNN-BN").

    Dropout(0.2) on the input; nine convolutions, each Conv -> BatchNorm -> ReLU
    (the order of the authors' code): 3x3 96, 3x3 96, 3x3 96 stride 2,
    Dropout(0.5), 3x3 192, 3x3 192, 3x3 192 stride 2, Dropout(0.5), 3x3 192
    (unpadded: 6x6 map), 1x1 192, 1x1 num_classes; then the global average. The
    other 3x3 convolutions pad one pixel on each side. Springenberg et al.'s
    dropout (0.2 input, 0.5 after each stride-2 layer) is also the authors'.
    1,369,738 weights without batch normalization, 1,372,254 trainable with it.

    `authors_code=True` builds the network of the authors' code (`models.lua`,
    `cifarconv`, and its PyTorch port), which the paper's "All-CNN-BN" numbers
    come from: its eighth convolution is 3x3 instead of 1x1 and every 3x3
    convolution is padded (8x8 map). 1,664,650 weights without batch
    normalization, 1,667,166 trainable with it (the "1.67 million" weights the
    paper's text gives for All-CNN-BN, as far as recalled here).
    Both keep batch normalization and ReLU on the last, class-wide convolution
    before the average, as the authors' code does.
    """
    if len(input_shape) != 3:
        raise ValueError(f"allcnn_bn takes images shaped (height, width, channels); got input_shape={input_shape}")
    c1, c2 = 96, 192
    seeds = Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    h = apply(_layers.dropout(input_dropout, seeds, "input_dropout"), inputs)
    plan = [(c1, 3, 1), (c1, 3, 1), (c1, 3, 2), "dropout", (c2, 3, 1), (c2, 3, 1), (c2, 3, 2), "dropout",
            (c2, 3, 1), (c2, 3 if authors_code else 1, 1), (num_classes, 1, 1)]
    conv_index = drop_index = 0
    for step in plan:
        if step == "dropout":
            drop_index += 1
            h = apply(_layers.dropout(dropout, seeds, f"dropout{drop_index}"), h)
            continue
        filters, size, stride = step
        conv_index += 1
        if size == 3 and (authors_code or conv_index != 7):
            # Torch's padding=1 on both sides (Keras "same" pads asymmetrically at stride 2)
            h = keras.layers.ZeroPadding2D(1, name=f"pad{conv_index}")(h)
        h = _conv(filters, size, seeds, f"conv{conv_index}", strides=stride)(h)
        if batch_norm:
            h = _layers.batch_norm(f"bn{conv_index}")(h)
        h = keras.layers.ReLU(name=f"relu{conv_index}")(h)
    logits = keras.layers.GlobalAveragePooling2D(name="average")(h)
    return keras.Model(inputs, logits, name="allcnn_bn")
