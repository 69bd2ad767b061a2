"""Networks, by name: `build("mnist1d_cnn")`, `build("wide_resnet", depth=16, width=4)`.

Every builder returns an *uncompiled* `keras.Model` that emits logits (no softmax):
compile it with `SparseCategoricalCrossentropy(from_logits=True)`.

Registered families (one module each): `mnist1d` (the MNIST-1D baselines),
`entropy_sgd_nets` (the Entropy-SGD paper's `mnistfc`, `lenet`, `allcnn_bn`) and
`wide_resnet` (Zagoruyko and Komodakis' WRN-d-k). docs/models_and_data.md
lists them with their parameter counts.

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


import keras

from control_opt._internal.registry import Registry

__all__ = ["build", "names", "options", "register", "MNIST1D_INPUT_SHAPE", "MNIST1D_NUM_CLASSES"]

MNIST1D_INPUT_SHAPE = (40, 1)
MNIST1D_NUM_CLASSES = 10

_REGISTRY = Registry("model", fixed=("input_shape", "num_classes", "seed"))
_BUILDERS = _REGISTRY.entries  # name -> builder


def register(name: str):
    """Decorator adding `builder(*, input_shape, num_classes, seed, **options) -> keras.Model`.

    The builder's own keyword-only options (e.g. `depth`, `width`) become
    keywords of `build`; `build` refuses any other keyword by name.
    """
    return _REGISTRY.register(name)


def names() -> list[str]:
    """The registered model names, sorted."""
    return _REGISTRY.names()


def build(name: str, *, input_shape=None, num_classes=None, seed: int | None = None, **kwargs) -> keras.Model:
    """Builds the network registered as `name`, uncompiled, emitting logits.

    Args:
      name: a registry name; see `names()`.
      input_shape: shape of one example without the batch axis; defaults to
        the network's own (MNIST-1D's (40, 1) for the MNIST-1D networks,
        (28, 28, 1) for the MNIST networks, (32, 32, 3) for the CIFAR ones).
      num_classes: width of the logit layer; defaults to 10.
      seed: seeds every initializer and dropout layer (layer i gets a seed
        derived from `seed` and i), so the initial weights do not depend on
        global RNG state. None draws from Keras's global generator
        (`keras.utils.set_random_seed`).
      **kwargs: the network's own options, e.g. `depth=16, width=4` for
        "wide_resnet"; `options(name)` lists them with their defaults.

    Raises:
      ValueError: `name` is not registered (the message lists the known names),
        or a keyword is not one of the network's options (the message names it
        and lists the accepted ones).
    """
    builder = _REGISTRY.get(name)
    _REGISTRY.check_options(name, kwargs)
    default_shape = getattr(builder, "default_input_shape", MNIST1D_INPUT_SHAPE)
    input_shape = tuple(default_shape if input_shape is None else input_shape)
    num_classes = MNIST1D_NUM_CLASSES if num_classes is None else int(num_classes)
    return builder(input_shape=input_shape, num_classes=num_classes, seed=seed, **kwargs)


def options(name: str) -> dict:
    """The options `build(name, ...)` takes besides input_shape/num_classes/seed, with their defaults."""
    return _REGISTRY.options(name)
