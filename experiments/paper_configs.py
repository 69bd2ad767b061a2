"""The papers' reported runs as data: one named config per row the papers report.

Each `PaperConfig` holds only primitives (str, int, float, bool, None and dicts
of them); the runner turns a row into its settings
(`experiments.training.paper_runs`, which also parses the schedule: nothing here
parses or imports the runner). `resolve(name)` returns a row, `names()` lists
them and `table(available)` renders them for `--config=list`.

Conventions:

* `epochs` are *effective* epochs (passes over the data = gradient
  evaluations / batches per epoch, docs/math.md section 1). The authors' Lua code
  counts an Entropy-SGD epoch as one pass of *outer* steps, each of L = 20
  gradient evaluations, so its "5 epochs" are 100 effective epochs here.
* `lr_schedule` is "EPOCH:LR,EPOCH:LR,...": from effective epoch EPOCH on, the
  (outer) learning rate is LR; the first piece is at epoch 0, so the string
  also gives the initial rate (`initial_learning_rate`). This is the runner's
  `--lr_schedule` form with the initial rate as its first piece.
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
from typing import Any, Callable

__all__ = ["PaperConfig", "CONFIGS", "OPTIMIZERS", "names", "resolve", "table"]

# Every optimizer a paper row may name.
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


def _schedule(initial, drops_every, factor, epochs):
    """"0:initial,E:initial*factor,..." dropping every `drops_every` effective epochs before `epochs`."""
    pieces, rate, epoch = [f"0:{initial:g}"], initial, drops_every
    while epoch < epochs:
        rate *= factor
        pieces.append(f"{epoch}:{rate:.6g}")
        epoch += drops_every
    return ",".join(pieces)


_L = 20  # inner Langevin steps per outer step: 1 Lua "epoch" of Entropy-SGD = 20 effective epochs

_ENTROPY_INNER = dict(langevin_steps=_L, langevin_learning_rate=0.1, langevin_momentum=0.9, langevin_nesterov=True,
                      noise=1e-4, mean_decay=0.75, scoping=1e-3, momentum=0.0, nesterov=False)
_ENTROPY_MNIST = dict(_ENTROPY_INNER, gamma=1e-4, l2=0.0)
_ENTROPY_CIFAR = dict(_ENTROPY_INNER, gamma=0.03, l2=1e-3)
_SGD_MNIST = dict(momentum=0.9, nesterov=True, l2=0.0)
_SGD_CIFAR = dict(momentum=0.9, nesterov=True, l2=1e-3)
_ADAM = dict(beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=0.0)
_HJ = dict(inner_steps=_L, mean_decay=0.75, scoping=1e-3, momentum=0.9, nesterov=True)

_MNIST_SGD_SCHEDULE = "0:0.1,60:0.02"  # authors' train.lua: 0.1, x0.2 at epoch 60, 100 epochs
_CIFAR_SGD_SCHEDULE = _schedule(0.1, 60, 0.2, 200)  # paper: 0.1, /5 every 60 epochs, 200 epochs
_CIFAR_ENTROPY_SCHEDULE = _schedule(1.0, 4 * _L, 0.2, 10 * _L)  # paper: 1, /5 every 4 (outer) epochs, 10

_DR_UNCHECKED = ("the Deep Relaxation paper's number has not been checked against the paper here "
                 "(reported_error None); its Table 1 reports error @ effective epochs for Entropy-SGD, HEAT, "
                 "HJ and SGD on the same three networks")
_ELASTIC_UNCHECKED = ("the reported number and Elastic-SGD's hyper-parameters (replicas, rho, communication "
                      "period; None: the runner's defaults) have not been checked against the paper here")

_ROWS = [
    # ----------------------------------------------------------------- Entropy-SGD paper, Table 1
    PaperConfig(
        name="esgd_mnistfc", model="mnistfc", dataset="mnist", optimizer="entropy_adam", batch_size=128,
        epochs=5 * _L, lr_schedule="0:1,40:0.1", reference=ENTROPY_SGD_PAPER, reported_error=1.37,
        hyperparameters=dict(_ENTROPY_MNIST, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
        notes="Adam in the outer loop (Entropy-Adam), against Adam; schedule and epochs from the authors' "
              "train.lua for mnistfc (lr 1 for 2 outer epochs, then 0.1; 5 outer epochs). The outer-loop "
              "choice (Adam vs SGD) is from the paper's text as recalled, not re-checked here."),
    PaperConfig(
        name="adam_mnistfc", model="mnistfc", dataset="mnist", optimizer="adam", batch_size=128, epochs=100,
        lr_schedule="0:0.001", reference=ENTROPY_SGD_PAPER, reported_error=1.39, hyperparameters=_ADAM,
        notes="the baseline of esgd_mnistfc; Adam's defaults (lr 1e-3): the authors' code does not state them."),
    PaperConfig(
        name="esgd_lenet", model="lenet", dataset="mnist", optimizer="entropy_sgd", batch_size=128,
        epochs=5 * _L, lr_schedule="0:1,40:0.1", reference=ENTROPY_SGD_PAPER, reported_error=0.50,
        model_kwargs=dict(authors_code=True), hyperparameters=_ENTROPY_MNIST,
        notes="the authors' README command (-L 20 --gamma 1e-4 --scoping 1e-3 --noise 1e-4) and train.lua "
              "schedule (lr 1, x0.1 after 2 outer epochs; 5 outer epochs); the authors' LeNet geometry "
              "(3x3 first pooling)."),
    PaperConfig(
        name="sgd_lenet", model="lenet", dataset="mnist", optimizer="sgd", batch_size=128, epochs=100,
        lr_schedule=_MNIST_SGD_SCHEDULE, reference=ENTROPY_SGD_PAPER, reported_error=0.51,
        model_kwargs=dict(authors_code=True), hyperparameters=_SGD_MNIST,
        notes="authors' train.lua with L = 0: Nesterov 0.9, lr 0.1, x0.2 at epoch 60, 100 epochs."),
    PaperConfig(
        name="esgd_allcnn", model="allcnn_bn", dataset="cifar10", optimizer="entropy_sgd", batch_size=128,
        epochs=10 * _L, lr_schedule=_CIFAR_ENTROPY_SCHEDULE, reference=ENTROPY_SGD_PAPER, reported_error=7.81,
        model_kwargs=dict(authors_code=True), dataset_kwargs=dict(preprocess="zca"),
        hyperparameters=_ENTROPY_CIFAR,
        notes="paper: L = 20 for 10 outer epochs, outer lr 1 dropping by 5 every 4 epochs, eta' = 0.1, "
              "noise 1e-4, gamma 0.03 growing by 1.001 per update; ZCA-whitened CIFAR-10, no augmentation. "
              "(The authors' train.lua drops every 3 outer epochs instead.)"),
    PaperConfig(
        name="sgd_allcnn", model="allcnn_bn", dataset="cifar10", optimizer="sgd", batch_size=128, epochs=200,
        lr_schedule=_CIFAR_SGD_SCHEDULE, reference=ENTROPY_SGD_PAPER, reported_error=7.71,
        model_kwargs=dict(authors_code=True), dataset_kwargs=dict(preprocess="zca"), hyperparameters=_SGD_CIFAR,
        notes="paper: 200 epochs of SGD with Nesterov momentum, lr 0.1 divided by 5 every 60 epochs; L2 1e-3 "
              "(authors' README)."),
    # ----------------------------------------------------------------- Deep Relaxation paper: HJ
    *[PaperConfig(
        name=f"hj_{short}", model=model, dataset=dataset, optimizer="hopf_lax", batch_size=128, epochs=epochs,
        lr_schedule=schedule, reference=DEEP_RELAXATION_PAPER, reported_error=None,
        model_kwargs=model_kwargs, dataset_kwargs=dataset_kwargs,
        hyperparameters=dict(_HJ, gamma=gamma, l2=l2),
        notes="HJ (fixed-point proximal, docs/math.md section 4) with the Entropy-SGD row's scope and schedule; "
              + _DR_UNCHECKED)
      for short, model, dataset, epochs, schedule, model_kwargs, dataset_kwargs, gamma, l2 in [
          ("mnistfc", "mnistfc", "mnist", 5 * _L, "0:1,40:0.1", {}, {}, 1e-4, 0.0),
          ("lenet", "lenet", "mnist", 5 * _L, "0:1,40:0.1", dict(authors_code=True), {}, 1e-4, 0.0),
          ("allcnn", "allcnn_bn", "cifar10", 10 * _L, _CIFAR_ENTROPY_SCHEDULE, dict(authors_code=True),
           dict(preprocess="zca"), 0.03, 1e-3),
      ]],
    # ----------------------------------------------------------------- Elastic-SGD on the same networks
    *[PaperConfig(
        name=f"elastic_{short}", model=model, dataset=dataset, optimizer="elastic_sgd", batch_size=128,
        epochs=epochs, lr_schedule=schedule, reference=DEEP_RELAXATION_PAPER, reported_error=None,
        model_kwargs=model_kwargs, dataset_kwargs=dataset_kwargs,
        hyperparameters=dict(momentum=0.9, nesterov=True, l2=l2, replicas=3, rho=None, communication_period=None),
        notes=_ELASTIC_UNCHECKED)
      for short, model, dataset, epochs, schedule, model_kwargs, dataset_kwargs, l2 in [
          ("mnistfc", "mnistfc", "mnist", 100, _MNIST_SGD_SCHEDULE, {}, {}, 0.0),
          ("lenet", "lenet", "mnist", 100, _MNIST_SGD_SCHEDULE, dict(authors_code=True), {}, 0.0),
          ("allcnn", "allcnn_bn", "cifar10", 200, _CIFAR_SGD_SCHEDULE, dict(authors_code=True),
           dict(preprocess="zca"), 1e-3),
      ]],
    # ----------------------------------------------------------------- Parle with WRN-28-10
    *[PaperConfig(
        name=f"parle_wrn28_10_{dataset}", model="wide_resnet", dataset=dataset, optimizer="parle", batch_size=128,
        epochs=10, lr_schedule="0:0.1", reference=PARLE_PAPER, reported_error=None,
        model_kwargs=dict(depth=28, width=10), dataset_kwargs=dict(preprocess="standardize"),
        augment=True,
        hyperparameters=dict(langevin_steps=25, gamma=0.01, rho=0.01, replicas=3, momentum=0.9, nesterov=True,
                             l2=5e-4),
        notes="WRN-28-10 with the standard augmentation "
              "(reflect pad 4, random 32x32 crop, horizontal flip) on per-channel standardized data. "
              "Epochs, L, gamma, rho and the reported error are placeholders to be taken from the Parle paper "
              "(its README: 5-10 epochs suffice; lr as for SGD; gamma and rho scoped and capped, docs/distributed.md).")
      for dataset in ("cifar10", "cifar100")],
]

CONFIGS: dict[str, PaperConfig] = {row.name: row for row in _ROWS}
assert len(CONFIGS) == len(_ROWS), "duplicate config names"


def names() -> list[str]:
    """The config names, in table order."""
    return list(CONFIGS)


def resolve(name: str) -> PaperConfig:
    """The config called `name`.

    Raises:
      ValueError: no such config; the message lists the names.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown paper config {name!r}; known configs: {', '.join(CONFIGS)}")
    return CONFIGS[name]


def table(available: Callable[[PaperConfig], str]) -> str:
    """A plain-text table of every config, for `--config=list`.

    Args:
      available: the last column's text for a row (the runner passes `paper_runs.runnable`,
        which asks its registry).
    """
    header = ("name", "optimizer", "model", "dataset", "batch", "epochs", "lr schedule", "paper error %",
              "available")
    rows = []
    for c in CONFIGS.values():
        model = c.model + ("(" + ",".join(f"{k}={v}" for k, v in c.model_kwargs.items()) + ")"
                           if c.model_kwargs else "")
        error = "?" if c.reported_error is None else f"{c.reported_error:g}"
        rows.append((c.name, c.optimizer, model, c.dataset + (" +aug" if c.augment else ""), str(c.batch_size),
                     str(c.epochs), c.lr_schedule, error, available(c)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
