"""What a run trains on and with: the data set and the network of a resolved `TrainConfig`.

`load_data` passes `data_dir` (only when given: MNIST-1D is generated and takes
none) and the parsed `dataset_kwargs` to `control_opt.datasets.load`; a missing
or damaged file raises the loader's own error, which names the file, before the
run directory is touched. `build_model` passes the parsed `model_kwargs` to
`control_opt.models.build`. The training batches (order and augmentation, both
functions of (seed, epoch, batch)) are `data.train_batches`.
"""

from __future__ import annotations

import os

import keras

from control_opt import datasets, models
from experiments.training.options import parse_options

__all__ = ["load_data", "build_model", "validation_data", "examples"]


def load_data(config) -> datasets.Dataset:
    """The data set of `config` (resolved).

    Raises:
      FileNotFoundError (control_opt.datasets.MissingDataError): a file is missing (named).
      ValueError: a damaged file (named), or a keyword the loader does not take.
    """
    kwargs = parse_options(config.dataset_kwargs)
    if config.data_dir is not None:
        kwargs["data_dir"] = os.path.expanduser(config.data_dir)
    data = datasets.load(config.dataset, seed=None, **kwargs)
    if config.augment and len(data.input_shape) != 3:
        raise ValueError(f"augment needs image data [H, W, C]; {config.dataset} examples are {data.input_shape}")
    return data


def build_model(config, data: datasets.Dataset) -> keras.Model:
    """The network of `config` (resolved) for `data`'s input shape and classes, seeded by `config.seed`."""
    return models.build(config.model, input_shape=data.input_shape, num_classes=data.num_classes,
                        seed=config.seed, **parse_options(config.model_kwargs))


def validation_data(x_test, y_test, replicas: int, cap: int = 1000):
    """`(x, y, batch_size)` for evaluation inside `fit`, every batch divisible by `replicas`.

    With replica-local weights each replica must get an equal share of every
    evaluation batch, so with several replicas the batch is a multiple of
    `replicas` and the test set is cut to one (at most `replicas - 1` examples
    dropped, said on stdout). One replica: the whole set, batches of `cap`.
    """
    n = len(x_test)
    if replicas > 1 and n % replicas:
        n -= n % replicas
        print(f"evaluating on the first {n} of {len(x_test)} test examples (a multiple of the "
              f"{replicas} replicas)", flush=True)
    batch = min(n, cap)
    batch -= batch % replicas
    return x_test[:n], y_test[:n], batch


def examples(config, data: datasets.Dataset):
    """`(x_train, y_train, x_test, y_test)`: the data set cut to `max_train_examples` / `max_test_examples`
    (the one place the runner slices the data; every loop and baseline calls it)."""
    return (data.x_train[:config.max_train_examples], data.y_train[:config.max_train_examples],
            data.x_test[:config.max_test_examples], data.y_test[:config.max_test_examples])
