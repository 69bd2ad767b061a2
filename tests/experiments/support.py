"""What the runner's tests share: tiny data files in the real formats, and a run's own test loss.

The writers give random images in the standard layouts (IDX for MNIST, the binary
version for CIFAR-10/100), as tests/datasets/test_image_loaders.py checks them.
"""

import json
import struct

import numpy as np

from experiments import analysis_run
from experiments.training import inputs
from experiments.training.config import config_from_json

N_TRAIN, N_TEST = 40, 16

CIFAR10_BIN = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def idx_bytes(array):
    array = np.asarray(array, np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def write_tree(root, folder, contents):
    (root / folder).mkdir()
    for name, raw in contents.items():
        (root / folder / name).write_bytes(raw)


def write_mnist(folder, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for name, array in arrays.items():
        (folder / name).write_bytes(idx_bytes(array))
    return folder


def write_cifar10(folder, n_per_file=N_TRAIN // 5, n_test=N_TEST, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {}
    for name in CIFAR10_BIN:
        n = n_test if name.startswith("test") else n_per_file
        records = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1)
        contents[name] = records.astype(np.uint8).tobytes()
    write_tree(folder, "cifar-10-batches-bin", contents)
    return folder


def write_cifar100(folder, n_train=N_TRAIN, n_test=N_TEST, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {}
    for name, n in (("train.bin", n_train), ("test.bin", n_test)):
        records = np.concatenate([rng.integers(0, 20, (n, 1)), rng.integers(0, 100, (n, 1)),
                                  rng.integers(0, 256, (n, 3072))], axis=1)
        contents[name] = records.astype(np.uint8).tobytes()
    write_tree(folder, "cifar-100-binary", contents)
    return folder


def run_test_loss(model, workdir):
    """The mean test loss of `model` on the test examples of the run in `workdir` (its config.json)."""
    config = config_from_json(json.loads((workdir / "config.json").read_text()))
    _, _, x_test, y_test = inputs.examples(config, inputs.load_data(config))
    return analysis_run.loss_and_accuracy(model, x_test, y_test)[0]
