"""The default experiment's runner as a library, one concept per module.

  hyperparameters.py  an optimizer's hyper-parameters, read from its constructor (the one declaration)
  config.py     TrainConfig (each field's help is its flag's help; the optimizer's arguments in one
                block), validation, defaults
  schedules.py  the "EPOCH:VALUE" learning-rate drops, parsed once into a Keras schedule
  registry.py   optimizers (class + the experiment's values) and tf.distribute strategies by name;
                models and data sets come from control_opt.models / control_opt.datasets
  multi_worker.py  the multi_worker strategy: TF_CONFIG checked, the cluster joined with a bounded wait
  data.py       epoch permutation, batching and augmentation, a function of (seed, epoch, batch)
  inputs.py     the data set and network of a config (data_dir, dataset_kwargs, model_kwargs)
  options.py    "KEY=VALUE,..." option strings (model_kwargs / dataset_kwargs), canonical form
  paper_runs.py the papers' rows (experiments/paper_configs.py) as configs: --config=NAME / list
  rundir.py     the workdir's files, resume checks, atomic writes
  callbacks.py  the per-epoch callbacks both loops run: anchor swap, recorder (TensorBoard), snapshots
  evaluation.py the per-epoch test evaluation in one traced call
  phases.py     PhaseTimer: where a run's time goes (summary.json's time_breakdown)
  session.py    what both loops share: steps, op determinism, compile, summary, the divergence error
  run.py        train_and_evaluate(config, workdir) (validate, then write; fit); train_only, the baseline
  distributed_loop.py  the multi-worker loop (Keras' fit fails there), driving the same callbacks

Importing any of these defines no command-line flags; `experiments.train` does,
when run as a program.
"""

from experiments.training.config import (RESUMABLE_CHANGES, TrainConfig, config_from_dict, default_config,
                                         default_workdir, resolve_config)
from experiments.training.data import epoch_permutation, train_batches
from experiments.training.registry import (OPTIMIZERS, STRATEGIES, OptimizerSpec, hyperparameter_names,
                                           register_optimizer, register_strategy)
from experiments.training.rundir import METRICS_COLUMNS, ConfigMismatchError, RunDir
from experiments.training.run import train_and_evaluate
from experiments.training.schedules import learning_rate_at, learning_rate_schedule, parse_lr_schedule
from experiments.training.session import TrainingDiverged

__all__ = [
    "TrainConfig", "default_config", "config_from_dict", "resolve_config", "default_workdir",
    "train_and_evaluate", "parse_lr_schedule", "learning_rate_schedule", "learning_rate_at",
    "epoch_permutation", "train_batches", "register_optimizer", "register_strategy", "OPTIMIZERS",
    "STRATEGIES", "OptimizerSpec", "hyperparameter_names", "RESUMABLE_CHANGES", "ConfigMismatchError",
    "TrainingDiverged", "METRICS_COLUMNS", "RunDir",
]
