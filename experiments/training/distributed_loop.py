"""`--strategy=multi_worker`: the runner's own training loop for several hosts.

Keras 3's `fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585,
tensorflow/tensorflow#72388), so this path runs its own loop: `strategy.run` of the
model's Keras `train_step` (the same loss, 1/n scaling, metrics and
`apply_gradients` as `fit`) inside a `tf.function`, one call per step. Everything
else is shared with `fit`: the validation and setup (`run.train_and_evaluate`
calls this loop), the data order (`train_batches`: every worker makes the same
global batch of (seed, epoch) and replica r takes its r-th slice, as `fit`
splits a batch under `MirroredStrategy`), and the per-epoch work: the same
`keras.callbacks.CallbackList` (`callbacks.per_epoch_callbacks`: anchor swap,
`Recorder` with its NaN/inf check, metrics.csv, TensorBoard and checkpoint,
weight snapshots), whose hooks this loop calls where `fit` would. So it writes
the same files (metrics.csv, tensorboard/, snapshots.npz, checkpoint.keras,
summary.json, curves.png) and a diverging run ends with the same one-line error.

The cluster comes from `TF_CONFIG` (one JSON per host, `task.index` its place);
`replicas` must equal the cluster's replicas (one per worker on CPU) and every
worker must see the same `workdir` (a shared file system, or the same path on
one host).

Checkpoints (every `checkpoint_every` effective epochs and after the last, as
with `fit`). A replica-local optimizer keeps each replica's weights on its own
worker, and reading them from elsewhere would be a collective every worker has
to join; so every worker writes *its own* devices' copies of every model and
optimizer variable to `workdir/worker_checkpoints/epoch-E.worker-I.npz`
(atomic: temporary file, then rename), and keeps its two latest: that is what a
run resumes from (all workers restarted with the same command), at the latest
epoch for which *every* worker's file exists; metric rows and TensorBoard
points after it are dropped. The chief (worker 0) also writes checkpoint.keras
through the same writer as `fit` (`RunDir.save_checkpoint`): the network at the
anchor (the center for Elastic-SGD/Parle), which `experiments.analyze` reads.
So a fault (a worker killed; the others then fail or hang in their next
collective and must be stopped) loses at most the epochs since the checkpoint.

Single process. `train_loop` runs the same loop under any strategy (the tests use
`MirroredStrategy` on 2 logical CPUs as the reference for 2 workers).
"""

from __future__ import annotations

import glob
import os
import re
import time

import keras
import numpy as np
import tensorflow as tf

from control_opt import distribute
from control_opt._internal.atomic import atomic_path
from experiments.training import inputs, session
from experiments.training.callbacks import Recorder, mean_metrics, per_epoch_callbacks, truncate_events
from experiments.training.data import train_batches
from experiments.training.rundir import RunDir

__all__ = ["train_loop", "checkpointed_epochs"]

_CHECKPOINTS = "worker_checkpoints"
_NAME = re.compile(r"epoch-(\d+)\.worker-(\d+)\.npz$")


def _worker(strategy):
    """(this worker's index, number of workers) (0, 1 for a single-host strategy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1
    return int(resolver.task_id), len(resolver.cluster_spec().as_dict().get("worker", [])) or 1


def checkpointed_epochs(path: str, workers: int) -> list[int]:
    """The epochs for which every one of `workers` workers has its checkpoint file, ascending."""
    seen = {}
    for name in os.listdir(path) if os.path.isdir(path) else []:
        match = _NAME.search(name)
        if match:
            seen.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return sorted(e for e, done in seen.items() if done >= set(range(workers)))


def _state(model):
    return list(model.variables) + list(model.optimizer.variables)


def _save_local(path, epoch, worker, variables):
    """This worker's copies of `variables` to epoch-E.worker-I.npz (atomically); the files of
    this worker older than the previous epoch are removed."""
    os.makedirs(path, exist_ok=True)
    arrays = {f"{i}/{k}": np.asarray(copy.numpy())
              for i, variable in enumerate(variables) for k, copy in enumerate(distribute.components(variable))}
    target = os.path.join(path, f"epoch-{epoch}.worker-{worker}.npz")
    with atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    for name in glob.glob(os.path.join(path, f"epoch-*.worker-{worker}.npz")):
        if int(_NAME.search(name).group(1)) < epoch - 1:
            os.remove(name)


def _load_local(path, epoch, worker, variables):
    with np.load(os.path.join(path, f"epoch-{epoch}.worker-{worker}.npz")) as arrays:
        for i, variable in enumerate(variables):
            for k, copy in enumerate(distribute.components(variable)):
                copy.assign(arrays[f"{i}/{k}"])


class _Evaluation:
    """The test set on a plain copy of the network holding this worker's copy of the weights (the
    anchor after the swap: every replica holds the center then); also what checkpoint.keras saves."""

    def __init__(self, model, x, y):
        self.model = keras.models.clone_model(model)
        session.compile_model(self.model, keras.optimizers.SGD())
        self._source, self._x, self._y = model, x, y

    def __call__(self):
        for target, source in zip(self.model.variables, self._source.variables):
            target.assign(distribute.components(source)[0].numpy())
        loss, accuracy = self.model.evaluate(self._x, self._y, batch_size=min(len(self._x), 1000), verbose=0)
        return {"loss": float(loss), "accuracy": float(accuracy)}


def train_loop(config, rundir: RunDir, strategy, data, optimizer, schedule, timer, scope) -> dict:
    """Trains resolved `config` under `strategy` with this module's loop (called by
    `run.train_and_evaluate`, inside op determinism, after validation); the chief writes the workdir.
    `scope()` is the strategy's (replica-local) scope for the model. Returns the summary (every worker).

    Raises:
      TrainingDiverged: the loss became NaN/inf (the same error as `fit`'s).
    """
    worker, workers = _worker(strategy)
    chief = worker == 0
    replicas = strategy.num_replicas_in_sync
    x_train, y_train, x_test, y_test = inputs.examples(config, data)
    steps_per_epoch, _ = session.steps(config, len(x_train))
    with scope():
        model = inputs.build_model(config, data)
        session.compile_model(model, optimizer, jit_compile=config.jit_compile)
        optimizer.build(model.trainable_variables)
    evaluation = _Evaluation(model, x_test, y_test)

    checkpoints = os.path.join(rundir.path, _CHECKPOINTS)
    done = checkpointed_epochs(checkpoints, workers)
    initial_epoch = done[-1] if done else 0
    if initial_epoch > config.epochs:
        raise ValueError(f"workdir {rundir.path} already holds {initial_epoch} effective epochs; "
                         f"epochs={config.epochs} is smaller")
    if initial_epoch:
        _load_local(checkpoints, initial_epoch, worker, _state(model))
        print(f"worker {worker}/{workers}: resuming {rundir.path} at effective epoch {initial_epoch}/"
              f"{config.epochs}", flush=True)
    rows = rundir.metrics_until(initial_epoch) if chief else []
    if chief:
        rundir.write_config(config)
        truncate_events(rundir.tensorboard, initial_epoch)

    def save_checkpoint(_, *, epoch, gradient_evaluations, wall_time_s):
        _save_local(checkpoints, epoch, worker, _state(model))
        if chief:  # the network at the anchor (evaluated just before), through fit's writer
            rundir.save_checkpoint(evaluation.model, epoch=epoch, gradient_evaluations=gradient_evaluations,
                                   wall_time_s=wall_time_s)

    per_replica = config.batch_size // replicas

    @tf.function
    def step(x, y):
        def replica_step(x, y):  # replica r trains on the r-th slice of the global batch, as in `fit`
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            model.train_step((x[r * per_replica:(r + 1) * per_replica], y[r * per_replica:(r + 1) * per_replica]))
        strategy.run(replica_step, args=(x, y))

    metric_variables = []

    @tf.function
    def gathered_metrics():
        """Each replica's [loss total, loss count, accuracy total, accuracy count], on every worker."""
        def local():
            values = [tf.reshape(tf.cast(v, tf.float32), [1]) for v in metric_variables]
            return tf.concat(values, 0)[tf.newaxis]
        return strategy.gather(strategy.run(local), axis=0)

    stats = None

    def replica_metrics(_):
        if replicas == 1:
            return None
        return {"loss": list(stats[:, 0] / np.maximum(stats[:, 1], 1.0)),
                "accuracy": list(stats[:, 2] / np.maximum(stats[:, 3], 1.0))}

    recorder = Recorder(rundir=rundir, schedule=schedule, steps_per_epoch=steps_per_epoch, rows=rows,
                        wall_time_before=rows[-1]["wall_time_s"] if rows else 0.0, timer=timer,
                        evaluator=evaluation, checkpoint_every=config.checkpoint_every, final_epoch=config.epochs,
                        save_checkpoint=save_checkpoint, replica_metrics=replica_metrics, writes=chief)
    callbacks = keras.callbacks.CallbackList(per_epoch_callbacks(config, recorder, timer, writes=chief),
                                             model=model)
    batches = iter(train_batches(x_train, y_train, seed=config.seed, batch_size=config.batch_size,
                                 initial_epoch=initial_epoch, epochs=config.epochs, augment=config.augment))
    timer.stop("startup")
    timer.start("fit_loop")
    try:
        callbacks.on_train_begin()
        for epoch in range(initial_epoch, config.epochs):
            callbacks.on_epoch_begin(epoch)
            model.reset_metrics()
            for batch in range(steps_per_epoch):
                step(*next(batches))
                logs = None
                if batch == steps_per_epoch - 1:
                    if not metric_variables:  # Keras builds the compiled metrics in the first step
                        metric_variables.extend(v for _, metric in mean_metrics(model) for v in metric.variables[:2])
                    stats = gathered_metrics().numpy()  # [replicas, 4]
                    logs = {"loss": float(stats[:, 0].sum() / stats[:, 1].sum()),
                            "accuracy": float(stats[:, 2].sum() / stats[:, 3].sum())}
                callbacks.on_train_batch_end(batch, logs)
            callbacks.on_epoch_end(epoch, dict(logs))
            if model.stop_training:
                break
        callbacks.on_train_end()
    finally:
        recorder.close()
        timer.stop_all()

    session.raise_if_diverged(config, recorder, schedule=schedule, steps_per_epoch=steps_per_epoch, path=rundir.path)
    if not chief:  # the chief writes the files; every worker returns the summary
        rows = recorder.rows or RunDir(rundir.path).read_metrics()
        return session.summary_of(config, rows, steps_per_epoch=steps_per_epoch, steps_per_execution=1,
                               jit_compile=False, ms_per_gradient_evaluation=None, workers=workers,
                               replicas=replicas)
    return session.finish(config, rundir, recorder, timer, steps_per_epoch=steps_per_epoch, steps_per_execution=1,
                      jit_compile=False, title=f" / {workers} workers", workers=workers, replicas=replicas)
