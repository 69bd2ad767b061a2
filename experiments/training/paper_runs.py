"""The papers' rows (`experiments/paper_configs.py`) as runner settings: `--config=NAME`.

`row_overrides(name)` turns a `PaperConfig` into the overrides of the default
config that `config.config_from_dict` applies before the command line's flags:

* the row's "0:LR,E:LR,..." schedule, read by the runner's one parser
  (`schedules.parse_lr_schedule`), becomes `learning_rate` (its first piece)
  and `lr_schedule` (the drops);
* `model_kwargs` / `dataset_kwargs` become the "KEY=VALUE,..." text of
  `experiments.training.options`;
* each of the row's `hyperparameters` is an argument of the optimizer's
  constructor (`hyperparameters.py`: whatever the class takes, no list here),
  or a field of the run (`replicas`); None means the runner's default. One the
  optimizer does not take is dropped when it is neutral (0, False or None:
  e.g. `l2=0` or `momentum=0` on Adam) and refused otherwise, naming it (the
  run would not be the paper's);
* a row whose optimizer keeps one set of weights per replica (Elastic-SGD,
  Parle) gives its batch per replica, as the papers do: the run's global batch
  is that times `replicas`, also when `--replicas` overrides the row's
  (returned apart, `config_from_dict` multiplies it). A data-parallel row's
  batch is the global batch.

`list_text()` is what `--config=list` prints: the table with the paper's error
next to each row and whether the runner can run it now.
"""

from __future__ import annotations

from experiments import paper_configs
from experiments.training import registry
from experiments.training.options import format_options
from experiments.training.schedules import format_lr_schedule, parse_lr_schedule

__all__ = ["row_overrides", "runnable", "list_text", "UnavailableOptimizerError"]

# Fields of the run a row's `hyperparameters` may set besides the optimizer's arguments.
_RUN_FIELDS = ("replicas",)


class UnavailableOptimizerError(ValueError):
    """The paper row needs an optimizer the runner does not have registered."""


def _neutral(value) -> bool:
    return value is None or value is False or (not isinstance(value, bool) and value == 0)


def row_overrides(name: str) -> tuple[dict, int | None]:
    """(overrides of the default config, the row's per-replica batch or None) of paper row `name`.

    Raises:
      ValueError: unknown name (the message lists the names), a malformed schedule, or the row
        sets an argument the optimizer does not take to a non-neutral value.
      UnavailableOptimizerError (a ValueError): the row's optimizer is not registered.
    """
    row = paper_configs.resolve(name)
    if row.optimizer not in registry.OPTIMIZERS:
        raise UnavailableOptimizerError(
            f"config {name!r} trains with optimizer {row.optimizer!r}, which is not registered with the runner "
            f"(experiments/training/registry.py registers: {', '.join(registry.OPTIMIZERS)})")
    spec = registry.OPTIMIZERS[row.optimizer]
    takes = spec.hyperparameters
    pieces = parse_lr_schedule(row.lr_schedule)
    if not pieces or pieces[0][0] != 0:
        raise ValueError(f"config {name!r}: its lr_schedule {row.lr_schedule!r} must start at epoch 0 "
                         "(the initial rate)")
    values = dict(
        config=name, optimizer=row.optimizer, model=row.model, dataset=row.dataset, batch_size=row.batch_size,
        epochs=row.epochs, learning_rate=pieces[0][1], lr_schedule=format_lr_schedule(pieces[1:]),
        model_kwargs=format_options(row.model_kwargs), dataset_kwargs=format_options(row.dataset_kwargs),
        augment=row.augment,
        checkpoint_every=1)  # the papers' epochs are long: a checkpoint each costs little, losing one much
    refused = []
    for key, value in row.hyperparameters.items():
        if key in takes or key in _RUN_FIELDS:
            if value is not None:  # None: the runner's default for that optimizer
                values[key] = value
        elif not _neutral(value):
            refused.append(f"{key}={value!r}")
    if refused:
        raise ValueError(f"config {name!r} sets {', '.join(refused)}, which optimizer {row.optimizer!r} does not "
                         f"take (it takes: {', '.join(takes)}); the run would not be the paper's")
    per_replica = row.batch_size if spec.replica_local else None
    if per_replica is not None:
        values["batch_size"] = per_replica * values.get("replicas", 1)
    return values, per_replica


def runnable(row) -> str:
    """"yes" if `row_overrides(row.name)` works now, else what is missing (the optimizer, an argument)."""
    try:
        row_overrides(row.name)
    except UnavailableOptimizerError:
        return f"no ({row.optimizer} not registered)"
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
