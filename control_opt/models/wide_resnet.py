"""Wide residual networks, `wide_resnet` with `depth` and `width` (WRN-depth-width).

Zagoruyko and Komodakis, "Wide residual networks", BMVC 2016, for CIFAR: a
3x3 convolution of 16 channels, three groups of n = (depth - 4) / 6 residual
blocks with 16*width, 32*width and 64*width channels (the first block of the
second and third group strides 2), then BatchNorm -> ReLU -> global average ->
dense logits. Each block is the paper's pre-activation B(3,3):
BatchNorm -> ReLU -> Conv 3x3 -> BatchNorm -> ReLU -> Dropout -> Conv 3x3, plus
the identity, or a 1x1 convolution of the pre-activated input where the shape
changes. Convolutions have no bias. The paper's dropout between the two
convolutions is 0.3 where used (its "WRN-28-10-dropout"); the default here is 0
(the plain WRN-28-10). Weight decay (5e-4 in the paper) belongs to the
optimizer. Convolutions start He-normal over the fan-out (the authors'
MSRinit), the dense layer with Torch's default.

Published sizes (the paper's Table 1 counts trainable parameters): WRN-28-10
36.5M, WRN-16-4 2.7M, WRN-16-8 11.0M, WRN-40-4 8.9M.
"""

import keras

from control_opt.models import _layers
from control_opt.models._layers import Seeds, apply, default_input_shape, torch_default_kernel
from control_opt.models.registry import register

__all__ = []


def _conv(filters, size, stride, seeds, name):
    init = keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal",
                                              seed=seeds())
    return keras.layers.Conv2D(filters, size, strides=stride, padding="valid", use_bias=False,
                               kernel_initializer=init, name=name)


def _conv3x3(h, filters, stride, seeds, name):
    h = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(h)  # Torch's padding=1 on both sides
    return _conv(filters, 3, stride, seeds, name)(h)


def _block(x, filters, stride, dropout, seeds, name):
    pre = _layers.batch_norm(f"{name}_bn1")(x)
    pre = keras.layers.ReLU(name=f"{name}_relu1")(pre)
    h = _conv3x3(pre, filters, stride, seeds, f"{name}_conv1")
    h = _layers.batch_norm(f"{name}_bn2")(h)
    h = keras.layers.ReLU(name=f"{name}_relu2")(h)
    h = apply(_layers.dropout(dropout, seeds, f"{name}_dropout"), h)
    h = _conv3x3(h, filters, 1, seeds, f"{name}_conv2")
    if x.shape[-1] == filters and stride == 1:
        shortcut = x
    else:
        shortcut = _conv(filters, 1, stride, seeds, f"{name}_shortcut")(pre)
    return keras.layers.Add(name=f"{name}_add")([shortcut, h])


@register("wide_resnet")
@default_input_shape((32, 32, 3))
def _wide_resnet(*, input_shape, num_classes, seed, depth=28, width=10, dropout=0.0):
    """WRN-depth-width of Zagoruyko and Komodakis (2016); see the module docstring.

    Args:
      depth: total depth, 6n + 4 (16, 22, 28, 40, ...).
      width: the widening factor k.
      dropout: the rate between the two convolutions of each block (the paper
        uses 0.3 in its dropout experiments).
    """
    depth, width = int(depth), int(width)
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"wide_resnet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
    if width < 1:
        raise ValueError(f"wide_resnet width must be a positive integer, got {width}")
    if len(input_shape) != 3:
        raise ValueError(f"wide_resnet takes images shaped (height, width, channels); got input_shape={input_shape}")
    blocks = (depth - 4) // 6
    seeds = Seeds(seed)
    inputs = keras.Input(shape=input_shape, name="image")
    h = _conv3x3(inputs, 16, 1, seeds, "conv0")
    for group, (filters, stride) in enumerate(((16 * width, 1), (32 * width, 2), (64 * width, 2)), start=1):
        for b in range(blocks):
            h = _block(h, filters, stride if b == 0 else 1, dropout, seeds, f"group{group}_block{b + 1}")
    h = _layers.batch_norm("bn_final")(h)
    h = keras.layers.ReLU(name="relu_final")(h)
    h = keras.layers.GlobalAveragePooling2D(name="average")(h)
    logits = keras.layers.Dense(num_classes, kernel_initializer=torch_default_kernel(seeds), name="logits")(h)
    return keras.Model(inputs, logits, name=f"wrn_{depth}_{width}")
