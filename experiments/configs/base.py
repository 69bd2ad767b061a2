"""What every named config shares: the row type `PaperConfig`, the papers, their constants.

A named config is one module of this folder, `experiments/configs/NAME.py`, whose
`get_config()` returns the `PaperConfig` called NAME (the layout of flax's
examples, `configs/*.py`). A row holds only primitives (str, int, float, bool,
None and dicts of them); the runner turns it into its settings
(`experiments.training.paper_runs`, which also parses the schedule: nothing here
parses or imports the runner).

Conventions:

* `epochs` are *effective* epochs (passes over the data = gradient
  evaluations / batches per epoch, docs/math.md section 1). The authors' Lua code
  counts an Entropy-SGD epoch as one pass of *outer* steps, each of L = 20
  gradient evaluations, so its "5 epochs" are 100 effective epochs here.
* `lr_schedule` is "EPOCH:LR,EPOCH:LR,...": from effective epoch EPOCH on, the
  (outer) learning rate is LR; the first piece is at epoch 0, so the string
  also gives the initial rate. This is the runner's `--lr_schedule` form with
  the initial rate as its first piece.
* `hyperparameters` are the optimizer's constructor arguments by their names
  (`learning_rate` is not repeated there: it is the schedule's first value),
  e.g. momentum, langevin_steps (L), langevin_learning_rate (eta'), gamma
  (gamma0), scoping (gamma1), noise (eps), mean_decay (beta1), l2, rho,
  communication_period (tau); and `replicas` (n), a setting of the run. For the
  replica-local methods (Elastic-SGD, Parle) `batch_size` is per replica.
* `reported_error` is the paper's test error in percent, or None where it has
  not been checked against the paper (`notes` says so).

The Entropy-SGD constants (docs/math.md section 3, the authors' Lua code
`train.lua` and README): L = 20, eta' = 0.1, eps = 1e-4, beta1 = 0.75,
gamma0 = 1e-4 (MNIST) or 0.03 (CIFAR), gamma1 = 1e-3, inner momentum 0.9
Nesterov, no outer momentum, batch 128, L2 1e-3 on CIFAR.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["PaperConfig", "OPTIMIZERS", "schedule", "ENTROPY_SGD_PAPER", "DEEP_RELAXATION_PAPER", "PARLE_PAPER",
           "L", "ENTROPY_MNIST", "ENTROPY_CIFAR", "SGD_MNIST", "SGD_CIFAR", "ADAM", "HJ", "MNIST_SGD_SCHEDULE",
           "CIFAR_SGD_SCHEDULE", "CIFAR_ENTROPY_SCHEDULE", "DR_UNCHECKED", "ELASTIC_UNCHECKED"]

# Every optimizer a row may name.
OPTIMIZERS = ("entropy_sgd", "entropy_adam", "sgd", "adam", "hopf_lax", "elastic_sgd", "parle")

ENTROPY_SGD_PAPER = ("Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun, Zecchina: "
                     "Entropy-SGD: biasing gradient descent into wide valleys, ICLR 2017, Table 1")
DEEP_RELAXATION_PAPER = ("Chaudhari, Oberman, Osher, Soatto, Carlier: Deep relaxation: partial differential "
                         "equations for optimizing deep neural networks, Res. Math. Sci. 2018, Table 1")
PARLE_PAPER = ("Chaudhari, Baldassi, Zecchina, Soatto, Talwalkar, Oberman: Parle: parallelizing stochastic "
               "gradient descent, SysML 2018 (arXiv:1707.00424)")


@dataclasses.dataclass(frozen=True)
class PaperConfig:
    """One reported run. See the module docstring for the conventions."""

    name: str
    model: str
    dataset: str
    optimizer: str
    batch_size: int
    epochs: int
    lr_schedule: str
    reference: str
    reported_error: float | None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    dataset_kwargs: dict = dataclasses.field(default_factory=dict)
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    augment: bool = False
    reported_std: float | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def schedule(initial, drops_every, factor, epochs):
    """"0:initial,E:initial*factor,..." dropping every `drops_every` effective epochs before `epochs`."""
    pieces, rate, epoch = [f"0:{initial:g}"], initial, drops_every
    while epoch < epochs:
        rate *= factor
        pieces.append(f"{epoch}:{rate:.6g}")
        epoch += drops_every
    return ",".join(pieces)


L = 20  # inner Langevin steps per outer step: 1 Lua "epoch" of Entropy-SGD = 20 effective epochs

_ENTROPY_INNER = dict(langevin_steps=L, langevin_learning_rate=0.1, langevin_momentum=0.9, langevin_nesterov=True,
                      noise=1e-4, mean_decay=0.75, scoping=1e-3, momentum=0.0, nesterov=False)
ENTROPY_MNIST = dict(_ENTROPY_INNER, gamma=1e-4, l2=0.0)
ENTROPY_CIFAR = dict(_ENTROPY_INNER, gamma=0.03, l2=1e-3)
SGD_MNIST = dict(momentum=0.9, nesterov=True, l2=0.0)
SGD_CIFAR = dict(momentum=0.9, nesterov=True, l2=1e-3)
ADAM = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=0.0)
HJ = dict(inner_steps=L, mean_decay=0.75, scoping=1e-3, momentum=0.9, nesterov=True)

MNIST_SGD_SCHEDULE = "0:0.1,60:0.02"  # authors' train.lua: 0.1, x0.2 at epoch 60, 100 epochs
CIFAR_SGD_SCHEDULE = schedule(0.1, 60, 0.2, 200)  # paper: 0.1, /5 every 60 epochs, 200 epochs
CIFAR_ENTROPY_SCHEDULE = schedule(1.0, 4 * L, 0.2, 10 * L)  # paper: 1, /5 every 4 (outer) epochs, 10

DR_UNCHECKED = ("the Deep Relaxation paper's number has not been checked against the paper here "
                "(reported_error None); its Table 1 reports error @ effective epochs for Entropy-SGD, HEAT, "
                "HJ and SGD on the same three networks")
ELASTIC_UNCHECKED = ("the reported number and Elastic-SGD's hyper-parameters (replicas, rho, communication "
                     "period; None: the runner's defaults) have not been checked against the paper here")
