"""Networks, by name: `control_opt.models.build("lenet")`.

  registry          `register(name)`, `names()`, `options(name)`, `build(name, ...)`
  mnist1d           the MNIST-1D authors' CNN and MLP
  entropy_sgd_nets  the Entropy-SGD paper's mnistfc, lenet, allcnn_bn
  wide_resnet       Zagoruyko and Komodakis' WRN-depth-width

Importing this package registers every network defined in it.
`trainable_count(model)` counts what the papers count (not BN running statistics).
"""

from control_opt.models import entropy_sgd_nets, mnist1d, wide_resnet
from control_opt.models._layers import trainable_count
from control_opt.models.registry import (MNIST1D_INPUT_SHAPE, MNIST1D_NUM_CLASSES, build, names, options,
                                         register)

__all__ = ["MNIST1D_INPUT_SHAPE", "MNIST1D_NUM_CLASSES", "build", "names", "options", "register",
           "trainable_count"]
