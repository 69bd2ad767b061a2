"""MNIST (LeCun, Bottou, Bengio and Haffner, 1998) from the four standard IDX files.

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

each gzipped (`.gz`, as distributed) or not, in `data_dir` (or in its `mnist/`
sub-folder). Nothing is downloaded.
"""

from __future__ import annotations

import os

import numpy as np

from control_opt.datasets._files import DataFileError, MissingDataError, read_idx
from control_opt.datasets._local import cached, resolve_data_dir
from control_opt.datasets.registry import Dataset, _frozen, register

__all__ = []

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
EXPECTED = ("mnist expects the four IDX files " + ", ".join(FILES) +
            " (each optionally gzipped, name + '.gz') in data_dir or data_dir/mnist")


def _find(data_dir, base):
    for folder in (data_dir, os.path.join(data_dir, "mnist")):
        for name in (base, base + ".gz"):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    raise MissingDataError(f"mnist: missing {os.path.join(data_dir, base)}[.gz]; {EXPECTED}")


def _split(data_dir, prefix):
    images_path = _find(data_dir, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(data_dir, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, ndim=3, expected=EXPECTED)
    labels = read_idx(labels_path, ndim=1, expected=EXPECTED)
    if images.shape[1:] != (28, 28):
        raise DataFileError(f"{images_path}: images are {images.shape[1:]}, not 28x28; {EXPECTED}")
    if len(images) != len(labels):
        raise DataFileError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}; "
                            f"{EXPECTED}")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{labels_path}: label {labels.max()} is not a digit 0-9; {EXPECTED}")
    return images, labels


@register("mnist")
def _load_mnist(*, seed=None, data_dir=None) -> Dataset:  # pylint: disable=unused-argument
    """MNIST: 60,000 training and 10,000 test digits, (28, 28, 1) float32 in [0, 1].

    Args:
      seed: unused (the data set is fixed); accepted like every loader's.
      data_dir: the folder with the IDX files; default `$CONTROL_OPT_DATA_DIR`.

    Raises:
      MissingDataError (a FileNotFoundError): a file is missing.
      DataFileError (a ValueError): a file is truncated or malformed.
    """
    data_dir = resolve_data_dir(data_dir, "mnist", EXPECTED)

    def make():
        x, y = _split(data_dir, "train")
        x_test, y_test = _split(data_dir, "t10k")
        return Dataset(
            x_train=_frozen(x[..., None] / np.float32(255), np.float32),
            y_train=_frozen(y, np.int64),
            x_test=_frozen(x_test[..., None] / np.float32(255), np.float32),
            y_test=_frozen(y_test, np.int64),
            num_classes=10, input_shape=(28, 28, 1), name="mnist")

    return cached(("mnist", data_dir), make)
