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

import contextlib
import os
import time

import keras
import tensorflow as tf

from control_opt import distribute
from experiments import figures
from experiments.training import distributed_loop, inputs, registry
from experiments.training.callbacks import Recorder, TimedAnchorSwap, truncate_events
from experiments.training.config import TrainConfig, default_workdir, resolve_config
from experiments.training.data import train_batches
from experiments.training.evaluation import TestSetEvaluator
from experiments.training.phases import PhaseTimer
from experiments.training.rundir import RunDir
from experiments.training.schedules import learning_rate_at, learning_rate_schedule
from experiments.training.snapshots import SNAPSHOTS_FILE, WeightSnapshots

__all__ = ["train_and_evaluate", "train_only", "TrainingDiverged", "effective_steps_per_execution"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def effective_steps_per_execution(requested: int, steps_per_epoch: int) -> int:
    """The largest divisor of steps_per_epoch not above `requested`.

    Keras runs `steps_per_execution` steps per call whatever the epoch boundary, so
    a value that does not divide the epoch would shift every later epoch's data.
    """
    return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


@contextlib.contextmanager
def _op_determinism(enabled):
    """TF op determinism on for the run when `enabled`; the process's setting is restored after.

    Left on, it would silently turn XLA off for later jit_compile work in the same
    process (Keras checks it). TF has no public getter or switch-off, hence the
    private module, used only if present.
    """
    from tensorflow.python.framework import config as tf_config  # pylint: disable=import-outside-toplevel

    restore = (enabled and hasattr(tf_config, "is_op_determinism_enabled")
               and hasattr(tf_config, "disable_op_determinism") and not tf_config.is_op_determinism_enabled())
    if enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if restore:
            tf_config.disable_op_determinism()


def _summary(config, rows, *, steps_per_epoch, steps_per_execution, jit_compile, ms_per_gradient_evaluation,
             time_breakdown=None):
    last = rows[-1]
    return dict(
        optimizer=config.optimizer, model=config.model, dataset=config.dataset,
        epochs=last["epoch"], gradient_evaluations=last["gradient_evaluations"],
        steps_per_epoch=steps_per_epoch, batch_size=config.batch_size,
        final_test_accuracy=last["test_accuracy"], final_test_loss=last["test_loss"],
        final_train_accuracy=last["train_accuracy"], final_train_loss=last["train_loss"],
        best_test_accuracy=max(r["test_accuracy"] for r in rows),
        wall_time_s=last["wall_time_s"], ms_per_gradient_evaluation=ms_per_gradient_evaluation,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution,
        time_breakdown=time_breakdown,
    )


def _report(summary):
    ms = summary.get("ms_per_gradient_evaluation")
    ms_text = f", {ms:.2f} ms per gradient evaluation" if ms is not None else ""
    print(f"final test accuracy (anchor): {summary['final_test_accuracy']:.4f}  "
          f"(test loss {summary['final_test_loss']:.4f}, train accuracy {summary['final_train_accuracy']:.4f}; "
          f"{summary['gradient_evaluations']} gradient evaluations, {summary['wall_time_s']:.1f} s{ms_text})",
          flush=True)


def _steps(config, data):
    """(steps per effective epoch, steps per execution) of `config` on `data`."""
    n_train = len(data.x_train[:config.max_train_examples])
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n_train} training examples")
    steps_per_execution = effective_steps_per_execution(config.steps_per_execution, steps_per_epoch)
    if config.replicas > 1:
        # Keras 3.15 under a MirroredStrategy of several replicas fails with steps_per_execution > 1
        # (even with plain SGD: "You must feed a value for placeholder tensor ... while/cond").
        steps_per_execution = 1
    return steps_per_epoch, steps_per_execution


def _compile(model, optimizer, config, steps_per_execution):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=config.jit_compile, steps_per_execution=steps_per_execution)


def train_and_evaluate(config, workdir: str | None = None) -> dict:
    """Trains, evaluates at the anchor every effective epoch, and writes the workdir.

    Args:
      config: a `TrainConfig`, or a dict of overrides of `default_config()`.
      workdir: where files go (`rundir.py`); None means `default_workdir(config)`.
        An existing run there is resumed.

    Returns:
      The summary dict also written to summary.json.

    Raises:
      ValueError: bad config (see `resolve_config`).
      ConfigMismatchError: the workdir holds a run with another config.
      TrainingDiverged: the loss became NaN/inf; the last good checkpoint is kept.
    """
    timer = PhaseTimer()
    timer.start("startup")
    config = resolve_config(config)
    if config.strategy == "multi_worker":  # Keras' fit fails there: the runner's own loop
        return distributed_loop.train_multi_worker(config, workdir)
    rundir = RunDir(default_workdir(config) if workdir is None else workdir)
    rundir.check_config(config)  # refuse a foreign run before touching anything
    # Before anything initializes TensorFlow's devices: --replicas=N may add N logical CPU devices.
    strategy = registry.make_strategy(config.strategy, config.replicas)

    data = inputs.load_data(config)  # the loader's errors (missing files named) before anything is written
    steps_per_epoch, steps_per_execution = _steps(config, data)

    keras.utils.set_random_seed(config.seed)
    # Bit-for-bit reproducible runs. Keras refuses XLA under op determinism (not
    # every op has a deterministic XLA kernel), so jit_compile runs go without it.
    with _op_determinism(not config.jit_compile):
        # Elastic-SGD / Parle: each replica its own weights (control_opt.replica_local).
        replica_local = registry.OPTIMIZERS[config.optimizer].replica_local
        with (distribute.replica_local(strategy) if replica_local else strategy.scope()):
            return _train(config, rundir, data, steps_per_epoch, steps_per_execution, timer)


def _train(config: TrainConfig, rundir: RunDir, data, steps_per_epoch: int, steps_per_execution: int,
           timer: PhaseTimer):
    """train_and_evaluate after validation: resume or start, fit, write the summary."""
    x_train, y_train = data.x_train[:config.max_train_examples], data.y_train[:config.max_train_examples]
    x_test, y_test = data.x_test[:config.max_test_examples], data.y_test[:config.max_test_examples]
    schedule = learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch)

    model, initial_epoch = None, 0
    if rundir.has_checkpoint():
        model = rundir.load_checkpoint()
        initial_epoch = rundir.resume_epoch(model, steps_per_epoch, config.epochs)
    rundir.write_config(config)
    rows = rundir.metrics_until(initial_epoch)

    if initial_epoch == config.epochs:
        summary = rundir.read_summary()
        if summary is None or summary.get("epochs") != initial_epoch:
            summary = _summary(config, rows, steps_per_epoch=steps_per_epoch,
                               steps_per_execution=steps_per_execution, jit_compile=config.jit_compile,
                               ms_per_gradient_evaluation=None)
            rundir.write_summary(summary)
        print(f"run in {rundir.path} is complete ({initial_epoch} effective epochs); nothing to do.")
        _report(summary)
        return summary

    # Points written after the checkpoint (an interruption between the TensorBoard
    # write and the checkpoint) are recomputed below: drop the old ones.
    truncate_events(rundir.tensorboard, initial_epoch)
    if model is not None:
        optimizer = model.optimizer  # restored state, including the position in the inner loop
        print(f"resuming {rundir.path} at effective epoch {initial_epoch}/{config.epochs}", flush=True)
    else:
        model = inputs.build_model(config, data)
        optimizer = registry.OPTIMIZERS[config.optimizer].build(config, schedule)
    _compile(model, optimizer, config, steps_per_execution)

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
    callbacks = [TimedAnchorSwap(timer), recorder]  # AnchorSwap first: the recorder sees the anchor
    if config.snapshot_every:
        callbacks.append(WeightSnapshots(os.path.join(rundir.path, SNAPSHOTS_FILE), config.snapshot_every))
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
            callbacks=callbacks,
            verbose=config.verbose)
    finally:
        recorder.close()
        timer.stop_all()

    if recorder.diverged_epoch is not None:
        kept = (f"the checkpoint of effective epoch {recorder.checkpoint_epoch} in {rundir.path} is kept"
                if recorder.checkpoint_epoch else f"no checkpoint was written in {rundir.path}")
        lr = learning_rate_at(schedule, recorder.diverged_epoch * steps_per_epoch)
        raise TrainingDiverged(
            f"the loss became NaN or infinite during effective epoch {recorder.diverged_epoch + 1} "
            f"(optimizer {config.optimizer}, outer learning rate {lr:g}); training stopped and {kept}. "
            f"Try a smaller learning rate.")

    with timer.phase("finish"):  # curves.png before summary.json: a run with a summary is complete
        figures.save_png(figures.training_curves(recorder.rows,
                                                 f"{config.optimizer} / {config.model} / {config.dataset}"),
                         rundir.curves, dpi=100)
    summary = _summary(config, recorder.rows, steps_per_epoch=steps_per_epoch,
                       steps_per_execution=steps_per_execution,
                       jit_compile=bool(model.jit_compile),  # Keras may have turned XLA off
                       ms_per_gradient_evaluation=recorder.ms_per_gradient_evaluation(),
                       time_breakdown=timer.breakdown(len(recorder.epoch_timings)))
    rundir.write_summary(summary)
    _report(summary)
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
    steps_per_epoch, steps_per_execution = _steps(config, data)
    x_train, y_train = data.x_train[:config.max_train_examples], data.y_train[:config.max_train_examples]
    x_test, y_test = data.x_test[:config.max_test_examples], data.y_test[:config.max_test_examples]
    keras.utils.set_random_seed(config.seed)
    with _op_determinism(not config.jit_compile):
        model = inputs.build_model(config, data)
        schedule = learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch)
        _compile(model, registry.OPTIMIZERS[config.optimizer].build(config, schedule), config, steps_per_execution)
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
