"""Data sets, by name: `load("mnist1d")` and a registry that later issues extend.

Every loader returns a `Dataset`: float32 inputs, int64 labels, and the shape of
one example. Nothing is downloaded at run time: MNIST-1D is generated locally by
the `mnist1d` package's own generator; the papers' image data sets ("mnist",
"cifar10", "cifar100") will be read from standard local files when a later issue
registers them here with `@register(name)`.

Example:

    >>> from control_opt import datasets
    >>> data = datasets.load("mnist1d")
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((4000, 40, 1), (1000, 40, 1), 10)
"""

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import random
import threading
from typing import Callable

import numpy as np

from control_opt.atomic import atomic_write

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


_LOADERS: dict[str, Callable[..., Dataset]] = {}
_MEMORY_CACHE: dict[tuple, Dataset] = {}
_LOCK = threading.Lock()


def register(name: str):
    """Decorator adding `loader(*, seed=None, **kwargs) -> Dataset` to the registry.

    Later issues add the papers' data sets this way, e.g.

        @register("cifar10")
        def _load_cifar10(*, seed=None, data_dir=None): ...
    """

    def decorator(loader):
        if name in _LOADERS:
            raise ValueError(f"data set {name!r} is already registered")
        _LOADERS[name] = loader
        return loader

    return decorator


def names() -> list[str]:
    """The registered data set names, sorted."""
    return sorted(_LOADERS)


def load(name: str, *, seed: int | None = None, **kwargs) -> Dataset:
    """Loads the data set registered as `name`.

    Args:
      name: a registry name; see `names()`.
      seed: for generated data sets, the generator's seed; None gives the
        canonical data set (for MNIST-1D, the generator's default seed 42, i.e.
        the data the MNIST-1D authors' published accuracies refer to).
      **kwargs: passed to the loader (for "mnist1d": `use_disk_cache`).

    Raises:
      ValueError: `name` is not registered; the message lists the known names.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(names())}")
    return _LOADERS[name](seed=seed, **kwargs)


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


# --------------------------------------------------------------------------- #
# MNIST-1D (Greydanus, "Scaling down deep learning", 2020)
# --------------------------------------------------------------------------- #


def _generate_mnist1d(args):
    """Runs the mnist1d package's generator without disturbing global state.

    The generator seeds Python's and NumPy's global RNGs (`set_seed`); both are
    restored afterwards so that loading data never changes a caller's random
    stream. Anything it prints is swallowed.
    """
    from mnist1d.data import make_dataset  # pylint: disable=import-outside-toplevel

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return raw["x"], raw["y"], raw["x_test"], raw["y_test"]


def _mnist1d_args(seed):
    from mnist1d.data import get_dataset_args  # pylint: disable=import-outside-toplevel

    args = get_dataset_args()  # the package's defaults: 4000 train / 1000 test, length 40
    if seed is not None:
        args.seed = int(seed)
    return args


def _disk_cache_path(args):
    # Key on every generator argument and on the package version: a different
    # generator must never be served stale arrays.
    fields = {k: v for k, v in sorted(vars(args).items()) if k != "url"}
    fields["mnist1d_version"] = _package_version("mnist1d")
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"mnist1d-{digest}.npz")


def _package_version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["x"], f["y"], f["x_test"], f["y_test"]
    except (OSError, KeyError, ValueError, EOFError):
        return None  # missing or damaged: regenerate


def _write_npz_atomically(path, **arrays):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, **arrays), mode="wb")
    except OSError:
        pass  # the disk cache is an optimization only (e.g. read-only home)


@register("mnist1d")
def _load_mnist1d(*, seed=None, use_disk_cache=True) -> Dataset:
    """MNIST-1D with the generator's default arguments: 4000 train, 1000 test.

    Each example is a length-40 signal, shaped (40, 1) (length, channels) so that
    1-D convolutions read it directly; dense models flatten it. The generator
    standardizes the whole set to mean 0 and standard deviation 1.

    Generation takes about a second, so arrays are cached in memory per process
    and, with `use_disk_cache`, in `cache_dir()` (written atomically).
    """
    key = ("mnist1d", seed)
    with _LOCK:
        if key in _MEMORY_CACHE:
            return _MEMORY_CACHE[key]
        args = _mnist1d_args(seed)
        path = _disk_cache_path(args)
        arrays = _read_npz(path) if use_disk_cache and os.path.exists(path) else None
        if arrays is None:
            arrays = _generate_mnist1d(args)
            if use_disk_cache:
                _write_npz_atomically(path, x=arrays[0], y=arrays[1], x_test=arrays[2], y_test=arrays[3])
        x, y, x_test, y_test = arrays
        data = Dataset(
            x_train=_frozen(np.asarray(x)[..., None], np.float32),
            y_train=_frozen(y, np.int64),
            x_test=_frozen(np.asarray(x_test)[..., None], np.float32),
            y_test=_frozen(y_test, np.int64),
            num_classes=10,
            input_shape=tuple(np.shape(x)[1:]) + (1,),
            name="mnist1d",
        )
        _MEMORY_CACHE[key] = data
        return data
