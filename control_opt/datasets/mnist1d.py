"""MNIST-1D (Greydanus, "Scaling down deep learning", 2020), generated locally.

The `mnist1d` package's own generator builds the data with its default
arguments; nothing is downloaded. Arrays are cached in memory and on disk.
"""

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import random

import numpy as np

from control_opt._internal.atomic import atomic_write
from control_opt.datasets import registry
from control_opt.datasets.registry import Dataset, _frozen, cache_dir, register

__all__ = []



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
    with registry._LOCK:
        if key in registry._MEMORY_CACHE:
            return registry._MEMORY_CACHE[key]
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
        registry._MEMORY_CACHE[key] = data
        return data
