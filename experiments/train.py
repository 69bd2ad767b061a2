r"""The default experiment: train a network with one of control_opt's optimizers.

    python -m experiments.train                                 # Entropy-SGD on MNIST-1D
    python -m experiments.train --optimizer=sgd --epochs=150 --workdir=runs/sgd
    python -m experiments.train --optimizer=entropy_sgd --lr_schedule=2:0.1
    python -m experiments.train --config=list                    # the papers' rows
    python -m experiments.train --config=esgd_lenet --data_dir=data/mnist --epochs=10

This module only declares the flags (one per `TrainConfig` field, derived by
`experiments.config_flags`; one per constructor argument of the registered
optimizers, --rho, --langevin_steps, --gamma_max, ..., derived from the classes
themselves by `experiments.training.hyperparameters`; and --workdir) and calls
`train_and_evaluate(config, workdir)` from `experiments.training`, which
notebooks, tests and benchmarks call directly (re-exported here) with a
`TrainConfig` or a dict of overrides of `default_config()`. Importing it defines
no flags; they are defined on the `__main__` path only.

--config=NAME runs one row of the papers' tables (experiments/configs/NAME.py,
resolved by experiments/training/paper_runs.py): the row's values are the base
and only the flags given on the command line override them; config.json records
the resolved config and the row's name. --config=list prints the rows with the
paper's test error and exits. --data_dir is the folder of the data set's files
(default $CONTROL_OPT_DATA_DIR); nothing is downloaded. --replicas=N alone
selects --strategy=mirrored.

The workdir (default `runs/<optimizer>_<dataset>`, `runs/<config>` with --config) receives config.json,
metrics.csv, tensorboard/, checkpoint.keras and checkpoint.json (every --checkpoint_every
effective epochs and after the last), summary.json and curves.png
(`experiments/training/rundir.py`); running the same command again resumes the run
there from its latest checkpoint, and a larger --epochs extends a finished one.

Exit status: 0 on success, 1 if the loss became NaN/inf (the last good
checkpoint is kept), 2 for a bad configuration (unknown name, bad value, an
argument the optimizer refuses, config mismatch with the workdir, a malformed
TF_CONFIG, a cluster that does not join in time) or missing/damaged data files
(the loader's message names them); nothing is written then.
"""

import sys

from experiments import stop_signals

if __name__ == "__main__":  # before NumPy and TensorFlow start threads: they inherit it (stop_signals.py)
    stop_signals.hold()

from absl import app, flags  # noqa: E402

from control_opt import datasets, models  # noqa: E402
from experiments import config_flags, paper_configs  # noqa: E402
from experiments.training import paper_runs, registry  # noqa: E402
from experiments.training import (METRICS_COLUMNS, OPTIMIZERS, RESUMABLE_CHANGES, STRATEGIES,  # noqa: E402
                                  ConfigMismatchError, TrainConfig, TrainingDiverged, config_from_dict,
                                  default_config, default_workdir, epoch_permutation, hyperparameter_names,
                                  learning_rate_at, parse_lr_schedule, register_optimizer, resolve_config,
                                  train_and_evaluate)

__all__ = [
    "TrainConfig", "default_config", "config_from_dict", "resolve_config", "default_workdir",
    "train_and_evaluate", "parse_lr_schedule", "epoch_permutation", "register_optimizer",
    "learning_rate_at", "OPTIMIZERS", "hyperparameter_names", "RESUMABLE_CHANGES",
    "ConfigMismatchError", "TrainingDiverged", "METRICS_COLUMNS", "define_flags", "main",
]

FLAGS = flags.FLAGS


def hyperparameter_flags() -> list[tuple]:
    """(name, kind, help) of every registered optimizer's constructor arguments: their docstring
    entries and, per optimizer, this experiment's default."""
    specs = []
    for name in hyperparameter_names():
        takers = registry.hyperparameter(name)
        kinds = {hp.kind for _, hp in takers}
        text = next((hp.help for _, hp in takers if hp.help), f"argument {name} of the optimizer")
        found = ", ".join(f"{opt}: {OPTIMIZERS[opt].resolved(opt, {})[name]!r}" for opt, _ in takers)
        specs.append((name, kinds.pop() if len(kinds) == 1 else None, f"{text.rstrip('.')}; default per "
                      f"optimizer ({found})."))
    return specs


def define_flags(flag_values: flags.FlagValues = FLAGS) -> list[str]:
    """Defines --workdir, one flag per TrainConfig field and one per optimizer argument on
    `flag_values`; returns their names."""
    extra_help = {name: "default per optimizer (" + ", ".join(f"{o}: {s.defaults[name]!r}" for o, s in
                                                              OPTIMIZERS.items()) + ")"
                  for name in registry.RUN_LEVEL}
    extra_help.update(optimizer=f"one of: {', '.join(OPTIMIZERS)}", model=f"one of: {', '.join(models.names())}",
                      dataset=f"one of: {', '.join(datasets.names())}",
                      strategy=f"one of: {', '.join(STRATEGIES)}",
                      config=f"one of: list, {', '.join(paper_configs.names())}")
    flags.DEFINE_string("workdir", None, "Output directory; default runs/<optimizer>_<dataset> "
                        "(runs/<config> with --config). Resumes a run there.", flag_values=flag_values)
    return ["workdir", *config_flags.define_config_flags(TrainConfig, flag_values, extra_help=extra_help,
                                                         skip=("hyperparameters",)),
            *config_flags.define_value_flags(hyperparameter_flags(), flag_values)]


def overrides(flag_values: flags.FlagValues = FLAGS) -> dict:
    """The settings given on the command line: fields and optimizer arguments, by name."""
    return {**config_flags.overrides_from_flags(TrainConfig, flag_values, present_only=True,
                                                skip=("hyperparameters",)),
            **config_flags.values_from_flags(hyperparameter_flags(), flag_values)}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.strategy != "multi_worker":  # multi_worker: once the cluster has joined (multi_worker.py)
        stop_signals.release()
    if FLAGS.config == "list":
        print(paper_runs.list_text())
        return
    try:
        # With --config=NAME the paper row is the base and only the flags on the command line override it.
        train_and_evaluate(config_from_dict(overrides(FLAGS)), FLAGS.workdir)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except (ValueError, FileNotFoundError) as e:  # bad names or values, config mismatch, missing data files:
        print(f"error: {e}", file=sys.stderr, flush=True)  # nothing was written or overwritten
        sys.exit(2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
