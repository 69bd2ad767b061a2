"""CIFAR-10 and CIFAR-100 (Krizhevsky, "Learning multiple layers of features from tiny images",
2009) from the standard distributions, read locally; nothing is downloaded.

Accepted layouts in `data_dir`, tried in this order (the binary version first):

  CIFAR-10   cifar-10-batches-bin/ (data_batch_1.bin .. data_batch_5.bin, test_batch.bin)
             cifar-10-binary.tar.gz (the same folder inside)
             cifar-10-batches-py/ (data_batch_1 .. data_batch_5, test_batch)
             cifar-10-python.tar.gz
  CIFAR-100  cifar-100-binary/ (train.bin, test.bin)
             cifar-100-binary.tar.gz
             cifar-100-python/ (train, test)
             cifar-100-python.tar.gz

or `data_dir` may itself be one of those folders. Binary records are one label
byte (CIFAR-100: coarse then fine label bytes) and 3072 pixel bytes (1024 red,
1024 green, 1024 blue, row-major 32x32). The python version's pickles are read
with a restricted unpickler that admits only numpy arrays (`_files`).

Images are returned channels-last, (32, 32, 3) float32, preprocessed by
`preprocess`: "zca" (the Entropy-SGD paper's: per-image standardization then ZCA
whitening with the training statistics, `whitening`), "standardize" (per channel,
with the training set's mean and std: the Wide-ResNet convention) or "none"
(pixels / 255).
"""

from __future__ import annotations

import os

import numpy as np

from control_opt.datasets import whitening
from control_opt.datasets._files import DataFileError, MissingDataError, read_members, restricted_unpickle
from control_opt.datasets._local import cached, resolve_data_dir
from control_opt.datasets.registry import Dataset, _frozen, register

__all__ = []

PIXELS = 3 * 32 * 32
PREPROCESSING = ("zca", "standardize", "none")

_LAYOUTS = {
    "cifar10": dict(
        binary=("cifar-10-batches-bin", "cifar-10-binary.tar.gz",
                [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"]),
        python=("cifar-10-batches-py", "cifar-10-python.tar.gz",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
        label_bytes=1, num_classes={"fine": 10}),
    "cifar100": dict(
        binary=("cifar-100-binary", "cifar-100-binary.tar.gz", ["train.bin"], ["test.bin"]),
        python=("cifar-100-python", "cifar-100-python.tar.gz", ["train"], ["test"]),
        label_bytes=2, num_classes={"fine": 100, "coarse": 20}),
}


def _expected(name):
    layout = _LAYOUTS[name]
    parts = []
    for version in ("binary", "python"):
        folder, archive, train, test = layout[version]
        parts.append(f"{folder}/ with {', '.join(train + test)} or {archive}")
    return f"{name} expects in data_dir (binary version preferred) " + "; or ".join(parts)


def _locate(data_dir, name):
    """(version, source, prefix): the first layout present in `data_dir`."""
    layout = _LAYOUTS[name]
    for version in ("binary", "python"):
        folder, archive, train, _ = layout[version]
        if os.path.isdir(os.path.join(data_dir, folder)):
            return version, os.path.join(data_dir, folder), ""
        if os.path.isfile(os.path.join(data_dir, archive)):
            return version, os.path.join(data_dir, archive), folder
        if os.path.basename(data_dir.rstrip(os.sep)) == folder or os.path.isfile(os.path.join(data_dir, train[0])):
            return version, data_dir, ""
    raise MissingDataError(f"{name}: found none of its files in {data_dir}; {_expected(name)}")


def _where(source, prefix, member):
    return f"{source}:{prefix}/{member}" if prefix else os.path.join(source, member)


def _parse_binary(raw, where, name, label_mode):
    label_bytes = _LAYOUTS[name]["label_bytes"]
    record = label_bytes + PIXELS
    if not raw or len(raw) % record:
        raise DataFileError(f"{where}: truncated or malformed: {len(raw)} bytes is not a positive multiple of the "
                            f"{record}-byte record ({label_bytes} label byte(s) + {PIXELS} pixels); {_expected(name)}")
    rows = np.frombuffer(raw, np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1] if label_mode == "fine" else rows[:, 0]
    return rows[:, label_bytes:], labels


def _parse_python(raw, where, name, label_mode):
    batch = restricted_unpickle(raw, where, _expected(name))
    if not isinstance(batch, dict):
        raise DataFileError(f"{where}: not a CIFAR batch (a {type(batch).__name__}, not a dict); {_expected(name)}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    label_key = "labels" if name == "cifar10" else f"{label_mode}_labels"
    if "data" not in batch or label_key not in batch:
        raise DataFileError(f"{where}: a CIFAR batch needs the keys 'data' and {label_key!r}, found "
                            f"{sorted(map(str, batch))}; {_expected(name)}")
    images = batch["data"]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == PIXELS):
        desc = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataFileError(f"{where}: 'data' must be a uint8 array (N, {PIXELS}), found {desc}; {_expected(name)}")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataFileError(f"{where}: {label_key!r} is not a list of integers; {_expected(name)}") from None
    if labels.shape != (len(images),):
        raise DataFileError(f"{where}: {labels.size} labels for {len(images)} images; {_expected(name)}")
    return images, labels


def _read_split(source, prefix, members, version, name, label_mode):
    raws = read_members(source, members, prefix=prefix, expected=_expected(name))
    parse = _parse_binary if version == "binary" else _parse_python
    images, labels = [], []
    num_classes = _LAYOUTS[name]["num_classes"][label_mode]
    for member in members:
        where = _where(source, prefix, member)
        x, y = parse(raws[member], where, name, label_mode)
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DataFileError(f"{where}: label {int(y.max()) if y.max() >= num_classes else int(y.min())} is "
                                f"outside 0..{num_classes - 1}; {_expected(name)}")
        images.append(x)
        labels.append(y)
    x = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels last
    return np.ascontiguousarray(x), np.concatenate(labels).astype(np.int64)


def _preprocess(x_train, x_test, preprocess, use_disk_cache):
    if preprocess == "none":
        return x_train / np.float32(255), x_test / np.float32(255)
    if preprocess == "standardize":
        mean = x_train.mean(axis=(0, 1, 2), dtype=np.float64)
        std = x_train.std(axis=(0, 1, 2), dtype=np.float64)
        return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)
    mean, matrix = whitening.cached_zca(x_train, standardize=True, use_disk_cache=use_disk_cache)
    return (whitening.zca_apply(x_train, mean, matrix, standardize=True),
            whitening.zca_apply(x_test, mean, matrix, standardize=True))


def _load(name, data_dir, preprocess, label_mode, use_disk_cache):
    expected = _expected(name)
    if preprocess not in PREPROCESSING:
        raise ValueError(f"{name}: preprocess must be one of {', '.join(PREPROCESSING)}, got {preprocess!r}")
    if label_mode not in _LAYOUTS[name]["num_classes"]:
        raise ValueError(f"{name}: label_mode must be one of {', '.join(_LAYOUTS[name]['num_classes'])}, "
                         f"got {label_mode!r}")
    data_dir = resolve_data_dir(data_dir, name, expected)

    def make():
        version, source, prefix = _locate(data_dir, name)
        _, _, train_members, test_members = _LAYOUTS[name][version]
        x, y = _read_split(source, prefix, train_members, version, name, label_mode)
        x_test, y_test = _read_split(source, prefix, test_members, version, name, label_mode)
        x, x_test = _preprocess(x, x_test, preprocess, use_disk_cache)
        return Dataset(x_train=_frozen(x, np.float32), y_train=_frozen(y, np.int64),
                       x_test=_frozen(x_test, np.float32), y_test=_frozen(y_test, np.int64),
                       num_classes=_LAYOUTS[name]["num_classes"][label_mode], input_shape=(32, 32, 3), name=name)

    return cached((name, data_dir, preprocess, label_mode), make)


@register("cifar10")
def _load_cifar10(*, seed=None, data_dir=None, preprocess="zca",  # pylint: disable=unused-argument
                  use_disk_cache=True):
    """CIFAR-10: 50,000 training and 10,000 test images, (32, 32, 3) float32, 10 classes.

    Args:
      seed: unused (the data set is fixed).
      data_dir: the folder with the files (module docstring); default `$CONTROL_OPT_DATA_DIR`.
      preprocess: "zca" (default, the Entropy-SGD paper's), "standardize" or "none".
      use_disk_cache: keep the ZCA statistics in `cache_dir()`.

    Raises:
      MissingDataError (a FileNotFoundError): no layout found, or a file missing.
      DataFileError (a ValueError): a file is truncated or malformed, or a pickle
        references anything but numpy arrays.
    """
    return _load("cifar10", data_dir, preprocess, "fine", use_disk_cache)


@register("cifar100")
def _load_cifar100(*, seed=None, data_dir=None, preprocess="zca", label_mode="fine",  # pylint: disable=unused-argument
                   use_disk_cache=True):
    """CIFAR-100: 50,000 training and 10,000 test images, 100 fine classes (or 20 coarse ones).

    As `cifar10`, plus `label_mode`: "fine" (100 classes, default) or "coarse" (20 superclasses).
    """
    return _load("cifar100", data_dir, preprocess, label_mode, use_disk_cache)
