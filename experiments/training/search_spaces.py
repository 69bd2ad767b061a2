"""The search space of every registered optimizer, declared once: what a sweep may change, and over which range.

A space is a tuple of `Dimension`s, each a constructor argument of the optimizer (its schema,
`registry.py` / `hyperparameters.py`) or the outer `learning_rate`, sampled on a log scale between
the bounds below. Everything not in the space keeps this experiment's default (`registry.py`).
The outer rate's schedule is not searched: every trial of every optimizer drops it by 10x at half
the effective epochs, the experiment's convention (SGD 0.1 -> 0.01 and Entropy-SGD 1 -> 0.1 at
75 of 150), so that the schedule is the same protocol for all (`lr_schedule_for`).

The ranges bracket the values the papers used, by a factor of about 3-10 on each side:

  sgd           SGD with Nesterov momentum 0.9 (the papers' baselines: lr 0.1 on MNIST and CIFAR [1, 2]).
  adam          Adam [5]: its 1e-3 and the MNIST-1D authors' 1e-2 [6]; beta_1 around its 0.9 (Keras'
                Adam takes no coupled L2, so it has no l2 dimension).
  entropy_sgd   [1]: outer eta 1 (MNIST), inner eta' 0.1, scope gamma0 1e-4 (MNIST) to 0.03 (CIFAR),
                scoping gamma1 1e-3, coupled L2 5e-4 on CIFAR.
  entropy_adam  the same inner loop; Adam's outer step around its 1e-3..1e-2.
  hopf_lax      [3]: the proximal (Hopf-Lax) step, outer rate around the class's 2 and scope 1.
  elastic_sgd   [4]: lr 0.01-0.1; the coupling rho around the moving rate beta = p eta rho = 0.9.
  parle         [2]: lr 0.1, gamma0 0.01 (growing to gamma_max), rho around 0.01 L n; coupled L2 5e-4.

References:
  [1] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide valleys. ICLR 2017.
  [2] P. Chaudhari, C. Baldassi, R. Zecchina, S. Soatto, A. Talwalkar, A. Oberman. Parle:
      parallelizing stochastic gradient descent. SysML 2018.
  [3] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep relaxation: partial
      differential equations for optimizing deep neural networks. Res. Math. Sci. 2018.
  [4] S. Zhang, A. Choromanska, Y. LeCun. Deep learning with elastic averaging SGD. NeurIPS 2015.
  [5] D. P. Kingma, J. Ba. Adam: a method for stochastic optimization. ICLR 2015.
  [6] S. Greydanus. Scaling down deep learning (MNIST-1D). 2020.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from experiments.training import registry

__all__ = ["Dimension", "SEARCH_SPACES", "search_space", "lr_schedule_for", "as_overrides", "LR_DROP"]

# Every trial's outer rate: x LR_DROP from half the effective epochs on.
LR_DROP = 0.1


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched value: `name` (a constructor argument or `learning_rate`), log-uniform on [low, high]."""

    name: str
    low: float
    high: float

    def __post_init__(self):
        if not (0 < self.low < self.high and math.isfinite(self.high)):
            raise ValueError(f"dimension {self.name}: need 0 < low < high, got [{self.low}, {self.high}]")


def _space(*dimensions):
    return tuple(Dimension(*d) for d in dimensions)


SEARCH_SPACES: dict[str, tuple[Dimension, ...]] = {
    "sgd": _space(("learning_rate", 0.01, 0.5), ("l2", 1e-5, 1e-3)),
    "adam": _space(("learning_rate", 1e-4, 3e-2), ("beta_1", 0.5, 0.95)),
    "entropy_sgd": _space(("learning_rate", 0.1, 1.0), ("langevin_learning_rate", 0.01, 0.2),
                          ("gamma", 1e-4, 3e-2), ("scoping", 1e-4, 1e-2), ("l2", 1e-5, 1e-3)),
    "entropy_adam": _space(("learning_rate", 1e-3, 0.1), ("langevin_learning_rate", 0.01, 0.2),
                           ("gamma", 1e-4, 3e-2), ("scoping", 1e-4, 1e-2), ("l2", 1e-5, 1e-3)),
    "hopf_lax": _space(("learning_rate", 0.3, 4.0), ("gamma", 0.1, 10.0), ("scoping", 1e-4, 1e-2),
                       ("l2", 1e-5, 1e-3)),
    "elastic_sgd": _space(("learning_rate", 0.01, 0.5), ("rho", 0.01, 10.0), ("l2", 1e-5, 1e-3)),
    "parle": _space(("learning_rate", 0.01, 0.5), ("rho", 0.01, 10.0), ("gamma", 1e-3, 0.1), ("l2", 1e-5, 1e-3)),
}


def search_space(optimizer: str) -> tuple[Dimension, ...]:
    """The space of `optimizer`, checked against its schema.

    Raises:
      ValueError: no space is declared for `optimizer` (naming those that have one), or a dimension is
        not an argument the optimizer takes.
    """
    if optimizer not in SEARCH_SPACES:
        raise ValueError(f"no search space for optimizer {optimizer!r}; declared for: {', '.join(SEARCH_SPACES)}")
    takes = set(registry.OPTIMIZERS[optimizer].hyperparameters) | {"learning_rate"}
    space = SEARCH_SPACES[optimizer]
    foreign = [d.name for d in space if d.name not in takes]
    if foreign:
        raise ValueError(f"search space of {optimizer!r} names {', '.join(foreign)}, which it does not take")
    return space


def lr_schedule_for(learning_rate: float, epochs: int) -> str:
    """The protocol's schedule: x LR_DROP from effective epoch epochs // 2 on ("" when that is epoch 0)."""
    drop = epochs // 2
    return f"{drop}:{learning_rate * LR_DROP!r}" if drop > 0 else ""


def as_overrides(params: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """A trial's sampled values as runner overrides, with the protocol's schedule."""
    overrides = dict(params)
    overrides["lr_schedule"] = lr_schedule_for(float(params["learning_rate"]), epochs)
    return overrides
