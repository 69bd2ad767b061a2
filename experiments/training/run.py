"""`train_and_evaluate(config, workdir)`: the default experiment's runner as a library call.

Counting. One Keras training step is one minibatch gradient evaluation for every
optimizer (Entropy-SGD's inner Langevin steps are successive Keras steps; docs/math.md
section 1), so an *effective epoch* is one pass over the training set,
`steps_per_epoch = n_train // batch_size` gradient evaluations, whatever
`langevin_steps` is. `epochs` and the epochs of `lr_schedule` count effective
epochs, as the papers do.

Anchor and probe. With Entropy-SGD/Entropy-Adam the model's variables hold the
probe w' during an epoch and the optimizer holds the anchor w, the weights to
report. `control_opt.AnchorSwap` comes first in the callback list, so
the test evaluation, the per-epoch metrics and the checkpoint all see the
anchor, and after `fit` the model holds the anchor. The *train* loss/accuracy are
Keras's running averages over the epoch's minibatches, i.e. measured at the probe
for those optimizers (at the current weights for SGD/Adam).

Resuming. Calling again with the same workdir continues from checkpoint.keras
(the optimizer state, including the position in the inner loop, is in it),
written every `checkpoint_every` effective epochs and after the last; the
data order is a function of (seed, epoch) only, so an interrupted and resumed
run equals the same run done straight. Metric rows and TensorBoard points past
the checkpoint (at most checkpoint_every - 1 epochs, or the epoch an
interruption cut short) are dropped and recomputed. A workdir holding a run with another config
is refused (`rundir.py`); `epochs` may grow to extend a finished run. A finished
run just reports its summary.

Several replicas. `--strategy=mirrored --replicas=N` runs N synchronous replicas (N GPUs, or N
logical CPU devices); the global batch `batch_size` is split over them. `sgd` and the others are
data parallel (one gradient all-reduce per step); `elastic_sgd` and `parle` give each replica its
own weights and all-reduce the parameters once per communication (docs/distributed.md), and the
anchor the runner reports is their center. Each replica's train loss (`replica_R_loss`) and, for
those two, the replicas' spread (`replica_spread`) go to TensorBoard's train/ scalars; metrics.csv
gains each replica's train loss and accuracy (`train_loss_rR`, `train_accuracy_rR`; none with one
replica) and its test columns are the center's; curves.png draws the replicas and the center. A workdir written with another strategy or number of
replicas is refused (config mismatch), and so is a checkpoint holding another number of replicas.
`--strategy=multi_worker` (several hosts, `TF_CONFIG`) goes to the runner's own loop instead of `fit`
(`distributed_loop.py`: Keras' `fit` fails under `MultiWorkerMirroredStrategy`).

Per-epoch cost. The test set is evaluated at the end of every effective epoch
in one traced call (`evaluation.TestSetEvaluator`: the model's own test step
and metrics, the same numbers as Keras' validation) instead of Keras'
`evaluate`, except under a `tf.distribute` strategy (Keras' validation splits
the batches over the replicas); metrics.csv gets one appended row per epoch.
Each phase of the run is timed (`phases.PhaseTimer`: training steps,
evaluation, anchor swaps, metrics.csv, TensorBoard, checkpoint, Keras' loop)
and the totals are summary.json's `time_breakdown`.

Reproducibility. `keras.utils.set_random_seed(seed)` and TensorFlow's op
determinism (switched on for the run only) make a fixed seed reproduce a run bit
for bit on the same machine and build, whatever `steps_per_execution` is (it is
rounded down to a divisor of the steps per epoch so that executions never
straddle epochs). Keras turns XLA off under op determinism, so `jit_compile`
runs go without it: faster steps, no bit-for-bit guarantee.
"""

from __future__ import annotations

import time

import keras

from control_opt import distribute
from experiments.training import distributed_loop, inputs, registry, session
from experiments.training.callbacks import Recorder, per_epoch_callbacks, truncate_events
from experiments.training.config import TrainConfig, default_workdir, resolve_config
from experiments.training.data import train_batches
from experiments.training.evaluation import TestSetEvaluator
from experiments.training.phases import PhaseTimer
from experiments.training.rundir import RunDir
from experiments.training.schedules import learning_rate_schedule
from experiments.training.session import TrainingDiverged, effective_steps_per_execution

__all__ = ["train_and_evaluate", "train_only", "TrainingDiverged", "effective_steps_per_execution"]


def _scope(spec, strategy):
    # Elastic-SGD / Parle: each replica its own weights (control_opt.replica_local).
    return distribute.replica_local(strategy) if spec.replica_local else strategy.scope()


def train_and_evaluate(config, workdir: str | None = None) -> dict:
    """Trains, evaluates at the anchor every effective epoch, and writes the workdir.

    Validate, then write: the config, the workdir's config, the strategy, the data files and the
    optimizer's arguments (its constructor is called) are all checked before anything is written.

    Args:
      config: a `TrainConfig`, or a dict of overrides of `default_config()`.
      workdir: where files go (`rundir.py`); None means `default_workdir(config)`.
        An existing run there is resumed.

    Returns:
      The summary dict also written to summary.json.

    Raises:
      ValueError: bad config (see `resolve_config`), or an argument the optimizer refuses.
      ConfigMismatchError: the workdir holds a run with another config.
      TrainingDiverged: the loss became NaN/inf; the last good checkpoint is kept.
    """
    timer = PhaseTimer()
    timer.start("startup")
    config = resolve_config(config)
    rundir = RunDir(default_workdir(config) if workdir is None else workdir)
    rundir.check_config(config)  # refuse a foreign run before touching anything
    # Before anything initializes TensorFlow's devices: --replicas=N may add N logical CPU devices.
    strategy = registry.make_strategy(config.strategy, config.replicas, startup_timeout_s=config.startup_timeout_s)
    data = inputs.load_data(config)  # the loader's errors (missing files named) before anything is written
    steps_per_epoch, steps_per_execution = session.steps(config, len(inputs.examples(config, data)[0]))
    schedule = learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch)
    spec = registry.OPTIMIZERS[config.optimizer]

    keras.utils.set_random_seed(config.seed)
    # Bit-for-bit reproducible runs. Keras refuses XLA under op determinism (not
    # every op has a deterministic XLA kernel), so jit_compile runs go without it.
    with session.op_determinism(not config.jit_compile):
        with _scope(spec, strategy):
            # The optimizer's constructor checks its arguments (named errors): before any write.
            optimizer = spec.build(config.hyperparameters, schedule, config.seed)
            if config.strategy != "multi_worker":
                return _train(config, rundir, data, optimizer, schedule, steps_per_epoch, steps_per_execution,
                              timer)
        # Keras' fit fails under MultiWorkerMirroredStrategy: the runner's own loop, the same callbacks.
        return distributed_loop.train_loop(config, rundir, strategy, data, optimizer, schedule, timer,
                                           scope=lambda: _scope(spec, strategy))


def _train(config: TrainConfig, rundir: RunDir, data, optimizer, schedule, steps_per_epoch: int,
           steps_per_execution: int, timer: PhaseTimer):
    """train_and_evaluate after validation: resume or start, fit, write the summary."""
    x_train, y_train, x_test, y_test = inputs.examples(config, data)

    model, initial_epoch = None, 0
    if rundir.has_checkpoint():
        model = rundir.load_checkpoint()
        initial_epoch = rundir.resume_epoch(model, steps_per_epoch, config.epochs)
    rundir.write_config(config)
    rows = rundir.metrics_until(initial_epoch)

    if initial_epoch == config.epochs:
        return _finished(config, rundir, rows, steps_per_epoch, steps_per_execution)

    # Points written after the checkpoint (an interruption between the TensorBoard
    # write and the checkpoint) are recomputed below: drop the old ones.
    truncate_events(rundir.tensorboard, initial_epoch)
    if model is not None:
        optimizer = model.optimizer  # restored state, including the position in the inner loop
        print(f"resuming {rundir.path} at effective epoch {initial_epoch}/{config.epochs}", flush=True)
    else:
        model = inputs.build_model(config, data)
    session.compile_model(model, optimizer, jit_compile=config.jit_compile, steps_per_execution=steps_per_execution)

    print(f"training {config.model} on {config.dataset} ({len(x_train)} examples) with {config.optimizer}: "
          f"{config.epochs} effective epochs x {steps_per_epoch} steps of batch {config.batch_size} = "
          f"{config.epochs * steps_per_epoch} gradient evaluations; workdir {rundir.path}", flush=True)
    x_val, y_val, val_batch_size = inputs.validation_data(x_test, y_test, config.replicas)
    # One replica: the test set in one traced call at each epoch end. Under a strategy, Keras'
    # validation, which splits every batch over the replicas.
    evaluator = (TestSetEvaluator(model, x_val, y_val, val_batch_size) if config.strategy == "default" else None)
    recorder = Recorder(rundir=rundir, schedule=schedule, steps_per_epoch=steps_per_epoch, rows=rows,
                        wall_time_before=rows[-1]["wall_time_s"] if rows else 0.0, timer=timer,
                        evaluator=evaluator, checkpoint_every=config.checkpoint_every, final_epoch=config.epochs)
    timer.stop("startup")
    timer.start("fit_loop")  # what the phases inside fit leave: Keras' loop, callback dispatch
    try:
        model.fit(
            train_batches(x_train, y_train, seed=config.seed, batch_size=config.batch_size,
                          initial_epoch=initial_epoch, epochs=config.epochs, augment=config.augment),
            epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
            validation_data=None if evaluator is not None else (x_val, y_val),
            validation_batch_size=None if evaluator is not None else val_batch_size,
            shuffle=False,  # the order is already (seed, epoch)-determined
            callbacks=per_epoch_callbacks(config, recorder, timer),
            verbose=config.verbose)
    finally:
        recorder.close()
        timer.stop_all()

    session.raise_if_diverged(config, recorder, schedule=schedule, steps_per_epoch=steps_per_epoch, path=rundir.path)
    return session.finish(config, rundir, recorder, timer, steps_per_epoch=steps_per_epoch,
                          steps_per_execution=steps_per_execution, jit_compile=bool(model.jit_compile))


def _finished(config, rundir, rows, steps_per_epoch, steps_per_execution):
    """A run already complete: its summary (rewritten if missing), reported."""
    summary = rundir.read_summary()
    if summary is None or summary.get("epochs") != rows[-1]["epoch"]:
        summary = session.summary_of(config, rows, steps_per_epoch=steps_per_epoch,
                                  steps_per_execution=steps_per_execution, jit_compile=config.jit_compile,
                                  ms_per_gradient_evaluation=None)
        rundir.write_summary(summary)
    print(f"run in {rundir.path} is complete ({rows[-1]['epoch']} effective epochs); nothing to do.")
    session.report(summary)
    return summary


class _EpochClock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epoch_s = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_s.append(time.perf_counter() - self._t)


def train_only(config) -> dict:
    """The training of `train_and_evaluate(config)` and nothing else: the training-only baseline.

    Same data order, network, optimizer, compile settings and op determinism,
    one `fit` over all the effective epochs with no per-epoch work: no test
    evaluation, no files, no anchor swaps (an epoch-timing callback only).
    Writes nothing. After `fit` (untimed) the test set is evaluated once at the
    anchor, which must give `train_and_evaluate`'s final test metrics: the check
    that the same training ran. Default strategy (one replica) only.

    Returns:
      {"fit_s": wall time of `fit`, "epoch_s": [each epoch's wall time], "gradient_evaluations",
       "final_test_accuracy", "final_test_loss"}.
    """
    config = resolve_config(config)
    if config.strategy != "default":
        raise ValueError(f"train_only runs the default strategy only, not {config.strategy!r}")
    data = inputs.load_data(config)
    x_train, y_train, x_test, y_test = inputs.examples(config, data)
    steps_per_epoch, steps_per_execution = session.steps(config, len(x_train))
    keras.utils.set_random_seed(config.seed)
    with session.op_determinism(not config.jit_compile):
        schedule = learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch)
        optimizer = registry.OPTIMIZERS[config.optimizer].build(config.hyperparameters, schedule, config.seed)
        model = inputs.build_model(config, data)
        session.compile_model(model, optimizer, jit_compile=config.jit_compile,
                              steps_per_execution=steps_per_execution)
        batches = train_batches(x_train, y_train, seed=config.seed, batch_size=config.batch_size, initial_epoch=0,
                                epochs=config.epochs, augment=config.augment)
        clock = _EpochClock()
        start = time.perf_counter()
        model.fit(batches, epochs=config.epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
                  callbacks=[clock], verbose=0)
        fit_s = time.perf_counter() - start
        x_val, y_val, val_batch_size = inputs.validation_data(x_test, y_test, 1)
        test = TestSetEvaluator(model, x_val, y_val, val_batch_size)()  # at the anchor: fit's end put it back
    return dict(fit_s=fit_s, epoch_s=clock.epoch_s, gradient_evaluations=config.epochs * steps_per_epoch,
                final_test_accuracy=test["accuracy"], final_test_loss=test["loss"])
