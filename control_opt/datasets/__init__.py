"""Data sets, by name: `control_opt.datasets.load("mnist1d")`.

  registry   `Dataset`, `register(name)`, `names()`, `load(name, ...)`, `cache_dir()`
  mnist1d    MNIST-1D, generated locally by the authors' package

Importing this package registers every data set defined in it.
"""

from control_opt.datasets import mnist1d
from control_opt.datasets.registry import Dataset, cache_dir, load, names, register

__all__ = ["Dataset", "cache_dir", "load", "names", "register"]
