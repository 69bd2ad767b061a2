"""The papers' rows (`experiments/paper_configs.py`) as runner configs: `--config=NAME`.

`base_config(name)` turns a `PaperConfig` into a `TrainConfig` (unresolved: the
optimizer's defaults are filled in later by `resolve_config`, and the command
line's explicit flags are applied on top by `config_from_dict`):

* the row's "0:LR,E:LR,..." schedule becomes `learning_rate` (its first piece)
  and `lr_schedule` (the drops);
* `model_kwargs` / `dataset_kwargs` become the "KEY=VALUE,..." text of
  `experiments.training.options`;
* each of the row's `hyperparameters` goes to the field of the same name when
  the runner's optimizer takes it (`registry.OPTIMIZERS[name].defaults`), or
  when it is a field of the run rather than a hyper-parameter (`replicas`: more
  than one also selects `strategy="mirrored"`, and the row's batch, which the
  papers give per replica, is multiplied by it: the runner's `batch_size` is the
  global batch split over the replicas); None means the runner's default. One
  the optimizer does not take is dropped when it is neutral (0, False or None:
  e.g. `l2=0` or `momentum=0` on Adam) and refused otherwise, naming it (the run
  would not be the paper's);
* a row whose optimizer is not registered *when the run starts* (Elastic-SGD
  and Parle until they land in `registry.py`) is refused with a message saying
  so; the registry is read at call time, not import time.

`list_text()` is what `--config=list` prints: the table with the paper's error
next to each row and whether the runner can run it now.
"""

from __future__ import annotations

import dataclasses

from experiments import paper_configs
from experiments.training import registry
from experiments.training.config import TrainConfig
from experiments.training.options import format_options

__all__ = ["base_config", "available_optimizers", "runnable", "list_text", "UnavailableOptimizerError"]


class UnavailableOptimizerError(ValueError):
    """The paper row needs an optimizer the runner does not have (yet)."""


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def available_optimizers() -> list[str]:
    """The optimizers registered with the runner right now."""
    return list(registry.OPTIMIZERS)


def _neutral(value) -> bool:
    return value is None or value is False or (not isinstance(value, bool) and value == 0)


def base_config(name: str) -> TrainConfig:
    """The `TrainConfig` of paper row `name` (not yet resolved).

    Raises:
      ValueError: unknown name (the message lists the names), or the row sets a
        hyper-parameter the runner's optimizer does not take to a non-neutral value.
      UnavailableOptimizerError (a ValueError): the row's optimizer is not registered.
    """
    row = paper_configs.resolve(name)
    if row.optimizer not in registry.OPTIMIZERS:
        raise UnavailableOptimizerError(
            f"config {name!r} trains with optimizer {row.optimizer!r}, which is not available yet in the runner "
            f"(experiments/training/registry.py registers: {', '.join(registry.OPTIMIZERS)})")
    takes = registry.OPTIMIZERS[row.optimizer].defaults
    pieces = paper_configs.parse_schedule(row.lr_schedule)
    values = dict(
        config=name, optimizer=row.optimizer, model=row.model, dataset=row.dataset, batch_size=row.batch_size,
        epochs=row.epochs, learning_rate=pieces[0][1],
        lr_schedule=",".join(f"{epoch:g}:{rate!r}" for epoch, rate in pieces[1:]),
        model_kwargs=format_options(row.model_kwargs), dataset_kwargs=format_options(row.dataset_kwargs),
        augment=row.augment,
        checkpoint_every=1)  # the papers' epochs are long: a checkpoint each costs little, losing one much
    refused = []
    for key, value in row.hyperparameters.items():
        if key in takes and key in _FIELDS:
            if value is not None:  # None: the runner's default for that optimizer
                values[key] = value
        elif key in _FIELDS and key not in registry.HYPERPARAMETERS and value is not None:
            values[key] = value  # a field of the run itself, e.g. replicas
        elif not _neutral(value):
            refused.append(f"{key}={value!r}")
    if values.get("replicas", 1) > 1:
        values["strategy"] = "mirrored"  # the strategy that places several replicas
        values["batch_size"] = row.batch_size * values["replicas"]  # the row's batch is per replica
    if refused:
        raise ValueError(f"config {name!r} sets {', '.join(refused)}, which optimizer {row.optimizer!r} does not "
                         f"take in the runner (it takes: {', '.join(takes)}); the run would not be the paper's")
    return TrainConfig(**values)


def runnable(row) -> str:
    """"yes" if `base_config(row.name)` works now, else what is missing (the optimizer, a hyper-parameter)."""
    try:
        base_config(row.name)
    except UnavailableOptimizerError:
        return f"no ({row.optimizer} not yet)"
    except ValueError as e:
        return "no (" + str(e).split(" sets ", 1)[-1].split(", which", 1)[0] + f" not taken by {row.optimizer})"
    return "yes"


def list_text() -> str:
    """The table `--config=list` prints: every row, the paper's error, runnable now or not."""
    lines = [paper_configs.table(available=runnable), "",
             "paper error %: the test error the paper reports ('?' = not checked against the paper yet). "
             "available: yes = the runner can run the row now; otherwise what is missing.",
             "Run one: python -m experiments.train --config=NAME --data_dir=DIR [--FLAG=VALUE overrides]"]
    return "\n".join(lines)
