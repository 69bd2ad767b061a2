"""The default experiment's runner as a library, one concept per module.

  config.py     TrainConfig (each field's help is its flag's help), validation, defaults
  schedules.py  the "EPOCH:VALUE" learning-rate drops, parsed once into a Keras schedule
  registry.py   optimizers (with the experiment's defaults) and tf.distribute strategies by name;
                models and data sets come from control_opt.models / control_opt.datasets
  data.py       epoch permutation, batching and augmentation, a function of (seed, epoch, batch)
  inputs.py     the data set and network of a config (data_dir, dataset_kwargs, model_kwargs)
  options.py    "KEY=VALUE,..." option strings (model_kwargs / dataset_kwargs), canonical form
  paper_runs.py the papers' rows (experiments/paper_configs.py) as configs: --config=NAME / list
  rundir.py     the workdir's files, resume checks, atomic writes
  callbacks.py  the per-epoch recorder and its TensorBoard writer
  evaluation.py the per-epoch test evaluation in one traced call
  phases.py     PhaseTimer: where a run's time goes (summary.json's time_breakdown)
  run.py        train_and_evaluate(config, workdir); train_only, the training-only baseline

Importing any of these defines no command-line flags; `experiments.train` does,
when run as a program.
"""

from experiments.training.config import (HYPERPARAMETERS, RESUMABLE_CHANGES, TrainConfig, config_from_dict,
                                         default_config, default_workdir, resolve_config)
from experiments.training.data import epoch_permutation, train_batches
from experiments.training.registry import (OPTIMIZERS, STRATEGIES, OptimizerSpec, register_optimizer,
                                           register_strategy)
from experiments.training.rundir import METRICS_COLUMNS, ConfigMismatchError, RunDir
from experiments.training.run import TrainingDiverged, train_and_evaluate
from experiments.training.schedules import learning_rate_at, learning_rate_schedule, parse_lr_schedule

__all__ = [
    "TrainConfig", "default_config", "config_from_dict", "resolve_config", "default_workdir",
    "train_and_evaluate", "parse_lr_schedule", "learning_rate_schedule", "learning_rate_at",
    "epoch_permutation", "train_batches", "register_optimizer", "register_strategy", "OPTIMIZERS",
    "STRATEGIES", "OptimizerSpec", "HYPERPARAMETERS", "RESUMABLE_CHANGES", "ConfigMismatchError",
    "TrainingDiverged", "METRICS_COLUMNS", "RunDir",
]
