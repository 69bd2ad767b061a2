r"""Tune one optimizer by the protocol: an Optuna study whose trials are runner runs.

    python -m experiments.sweep --optimizer=sgd --trials=16 --workdir=sweeps/sgd
    python -m experiments.sweep --optimizer=parle --trials=16 --workdir=sweeps/parle   # 2 replicas
    python -m experiments.sweep --optimizer=entropy_sgd --trials=8 --epochs=50 --heldout_seeds=0,1,2 \
        --workdir=sweeps/esgd_short

Each trial is drawn from the optimizer's search space (experiments/training/search_spaces.py), run
for --epochs effective epochs on every --tuning_seeds seed, each in its own runner workdir
(W/trials/NNNN/seed_S), and valued by its worst seed's final test accuracy; the best trial is then
rerun on the --heldout_seeds (W/heldout/seed_S) and W/sweep.json gets mean, standard error and worst.
Running the same command again resumes: finished trials are never rerun, an interrupted one resumes
from its runner checkpoint (experiments/training/sweeps.py). Needs Optuna (pip install optuna).

Exit status: 0 on success, 2 for bad settings or a directory holding another sweep.
"""

import sys

from absl import app, flags

from experiments.training import registry, search_spaces
from experiments.training.sweeps import SweepConfig, run_sweep

FLAGS = flags.FLAGS


def _seeds(text):
    return tuple(int(s) for s in text.split(",") if s.strip())


def define_flags():
    flags.DEFINE_string("optimizer", None, f"one of: {', '.join(search_spaces.SEARCH_SPACES)}")
    flags.DEFINE_integer("trials", None, "Trials to complete (a resumed sweep may ask for more).")
    flags.DEFINE_string("workdir", None, "The sweep's directory (study.db, trials/, heldout/, sweep.json).")
    flags.DEFINE_integer("epochs", 150, "Effective epochs of every run (the same budget for every optimizer).")
    flags.DEFINE_string("tuning_seeds", "1000", "Seeds every trial trains on (comma-separated); value: the worst.")
    flags.DEFINE_string("heldout_seeds", "0,1,2,3,4", "Seeds the best trial is rerun on; \"\" = none.")
    flags.DEFINE_integer("replicas", None, "Replicas of every run; default 2 for replica-local optimizers "
                         "(elastic_sgd, parle), else 1.")
    flags.DEFINE_integer("sampler_seed", 0, "Seed of the scrambled Sobol sequence.")
    flags.DEFINE_integer("max_train_examples", None, "Runner's max_train_examples (quick looks); None = all.")
    flags.DEFINE_integer("max_test_examples", None, "Runner's max_test_examples; None = all.")
    flags.mark_flags_as_required(["optimizer", "trials", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        spec = registry.OPTIMIZERS.get(FLAGS.optimizer)
        replicas = FLAGS.replicas or (2 if spec is not None and spec.replica_local else 1)
        overrides = {k: getattr(FLAGS, k) for k in ("max_train_examples", "max_test_examples")
                     if getattr(FLAGS, k) is not None}
        sweep = SweepConfig(optimizer=FLAGS.optimizer, trials=FLAGS.trials, epochs=FLAGS.epochs,
                            tuning_seeds=_seeds(FLAGS.tuning_seeds), heldout_seeds=_seeds(FLAGS.heldout_seeds),
                            replicas=replicas, sampler_seed=FLAGS.sampler_seed, run_overrides=overrides)
        run_sweep(sweep, FLAGS.workdir)
    except (ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
