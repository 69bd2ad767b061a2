"""Data sets, by name: `load("mnist1d")` and a registry that later issues extend.

Every loader returns a `Dataset`: float32 inputs, int64 labels, and the shape of
one example. Nothing is downloaded at run time: MNIST-1D is generated locally by
the `mnist1d` package's own generator; the papers' image data sets ("mnist",
"cifar10", "cifar100") are read from their standard local files
(`load("cifar10", data_dir)`; docs/models_and_data.md lists the layouts).

Example:

    >>> from control_opt import datasets
    >>> data = datasets.load("mnist1d")
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((4000, 40, 1), (1000, 40, 1), 10)
"""

import dataclasses
import os
import threading

import numpy as np

from control_opt._internal.registry import Registry

__all__ = ["Dataset", "load", "names", "register", "cache_dir"]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A supervised classification data set held in memory.

    Attributes:
      x_train: float32 array (N_train, *input_shape).
      y_train: int64 array (N_train,) of class indices in [0, num_classes).
      x_test: float32 array (N_test, *input_shape).
      y_test: int64 array (N_test,).
      num_classes: number of classes.
      input_shape: shape of one example, without the batch axis.
      name: the registry name the data set was loaded under.

    The arrays are read-only: loads are cached and shared within a process.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple
    name: str

    def __repr__(self):
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
                f"test={self.x_test.shape}, num_classes={self.num_classes})")


_REGISTRY = Registry("dataset", fixed=("seed",))
_LOADERS = _REGISTRY.entries  # name -> loader
_MEMORY_CACHE: dict[tuple, Dataset] = {}
_LOCK = threading.Lock()


def register(name: str):
    """Decorator adding `loader(*, seed=None, **kwargs) -> Dataset` to the registry, e.g.

        @register("cifar10")
        def _load_cifar10(*, seed=None, data_dir=None): ...
    """
    return _REGISTRY.register(name)


def names() -> list[str]:
    """The registered data set names, sorted."""
    return _REGISTRY.names()


def load(name: str, data_dir: str | None = None, *, seed: int | None = None, **kwargs) -> Dataset:
    """Loads the data set registered as `name`.

    Args:
      name: a registry name; see `names()`.
      data_dir: for the data sets read from files ("mnist", "cifar10",
        "cifar100"), the folder that holds them (default
        `$CONTROL_OPT_DATA_DIR`); the loaders' docstrings list the layouts they
        accept. Nothing is ever downloaded.
      seed: for generated data sets, the generator's seed; None gives the
        canonical data set (for MNIST-1D, the generator's default seed 42, i.e.
        the data the MNIST-1D authors' published accuracies refer to).
      **kwargs: passed to the loader (for "mnist1d": `use_disk_cache`; for
        "cifar10"/"cifar100": `preprocess`, `use_disk_cache`, and for
        "cifar100" `label_mode`).

    Raises:
      ValueError: `name` is not registered (the message lists the known names),
        or a keyword is not one the loader takes (the message names both).
    """
    loader = _REGISTRY.get(name)
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    _REGISTRY.check_options(name, kwargs)
    return loader(seed=seed, **kwargs)


def cache_dir() -> str:
    """Where generated data is cached on disk.

    `$CONTROL_OPT_CACHE_DIR` if set, else `$XDG_CACHE_HOME/control_opt`, else
    `~/.cache/control_opt`.
    """
    if os.environ.get("CONTROL_OPT_CACHE_DIR"):
        return os.environ["CONTROL_OPT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "control_opt")


def _frozen(array, dtype):
    array = np.ascontiguousarray(array, dtype=dtype)
    array.setflags(write=False)
    return array
