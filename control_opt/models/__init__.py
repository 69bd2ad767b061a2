"""Networks, by name: `control_opt.models.build("mnist1d_cnn")`.

  registry   `register(name)`, `names()`, `build(name, ...)`
  mnist1d    the MNIST-1D authors' CNN and MLP

Importing this package registers every network defined in it.
"""

from control_opt.models import mnist1d
from control_opt.models.registry import MNIST1D_INPUT_SHAPE, MNIST1D_NUM_CLASSES, build, names, register

__all__ = ["MNIST1D_INPUT_SHAPE", "MNIST1D_NUM_CLASSES", "build", "names", "register"]
