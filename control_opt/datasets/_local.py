"""What the file-based loaders share: where the files are, and the in-memory cache."""

from __future__ import annotations

import os

from control_opt.datasets import registry
from control_opt.datasets._files import MissingDataError

__all__ = []

DATA_DIR_ENV = "CONTROL_OPT_DATA_DIR"


def resolve_data_dir(data_dir, name, expected):
    """`data_dir`, else `$CONTROL_OPT_DATA_DIR`; an error naming the expected files if neither is a folder."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV)
        if not data_dir:
            raise MissingDataError(f"{name}: no data_dir given and ${DATA_DIR_ENV} is not set; nothing is "
                                   f"downloaded: put the files in a folder and pass it as data_dir; {expected}")
    data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    if not os.path.isdir(data_dir):
        raise MissingDataError(f"{name}: data_dir {data_dir} is not a folder; {expected}")
    return data_dir


def cached(key, make):
    """`make()` once per process for `key` (loads are shared and read-only)."""
    with registry._LOCK:
        if key in registry._MEMORY_CACHE:
            return registry._MEMORY_CACHE[key]
    data = make()
    with registry._LOCK:
        return registry._MEMORY_CACHE.setdefault(key, data)
