"""Data sets, by name: `control_opt.datasets.load("mnist1d")`, `load("cifar10", data_dir)`.

  registry    `Dataset`, `register(name)`, `names()`, `load(name, ...)`, `cache_dir()`
  mnist1d     MNIST-1D, generated locally by the authors' package
  mnist       MNIST from the four standard IDX files
  cifar       CIFAR-10 / CIFAR-100 from the standard binary or python archives
  whitening   ZCA whitening (the Entropy-SGD paper's CIFAR preprocessing), cached
  pipeline    `make_pipeline`: a reproducible tf.data pipeline with augmentation

Importing this package registers every data set defined in it. Nothing is
ever downloaded.
"""

from control_opt.datasets import cifar, mnist, mnist1d, whitening
from control_opt.datasets._files import DataFileError, MissingDataError
from control_opt.datasets.pipeline import make_pipeline, random_crop_flip
from control_opt.datasets.registry import Dataset, cache_dir, load, names, register

__all__ = ["DataFileError", "Dataset", "MissingDataError", "cache_dir", "load", "make_pipeline", "names",
           "random_crop_flip", "register"]
