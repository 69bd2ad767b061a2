"""`--strategy=multi_worker`: the runner's own training loop for several hosts.

Keras 3's `fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585,
tensorflow/tensorflow#72388), so this path runs its own loop: `strategy.run` of the
model's Keras `train_step` (the same loss, 1/n scaling, metrics and
`apply_gradients` as `fit`) inside a `tf.function`, one call per step. Everything
else is shared with the single-host runner: the resolved config, the data order
(`train_batches`: every worker makes the same global batch of (seed, epoch) and
replica r takes its r-th slice, as `fit` splits a batch under `MirroredStrategy`),
the model and optimizer registries, the workdir's files (`RunDir`) and the
anchor swap (`AnchorSwap`'s order: the probe in for training, the anchor, i.e.
the center for Elastic-SGD/Parle, for evaluation and the checkpoint).

The cluster comes from `TF_CONFIG` (one JSON per host, `task.index` its place);
`replicas` must equal the cluster's replicas (one per worker on CPU) and every
worker must see the same `workdir` (a shared file system, or the same path on
one host).

Checkpoints. A replica-local optimizer keeps each replica's weights on its own
worker, and reading them from elsewhere would be a collective every worker has
to join; so after each effective epoch every worker writes *its own* devices'
copies of every model and optimizer variable to
`workdir/worker_checkpoints/epoch-E.worker-I.npz` (atomic: temporary file, then
rename), and keeps its two latest. The chief (worker 0) also writes metrics.csv,
TensorBoard, checkpoint.json and, at the end, summary.json and curves.png. A run
resumes (all workers restarted with the same command) at the latest epoch for
which *every* worker's file exists; metric rows and TensorBoard points after it
are dropped. So a fault (a worker killed; the others then fail or hang in their
next collective and must be stopped) loses at most the epoch in progress.

Single process. `train_loop(config, workdir, strategy)` runs the same loop under
any strategy (the tests use `MirroredStrategy` on 2 logical CPUs as the reference
for 2 workers).
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
from control_opt.optimizers import find_anchored_optimizer
from experiments import figures
from experiments.training import inputs, registry
from experiments.training.callbacks import TensorBoardScalars, _mean_metrics, truncate_events
from experiments.training.config import default_workdir, resolve_config
from experiments.training.data import train_batches
from experiments.training.rundir import RunDir, write_json
from experiments.training.schedules import learning_rate_at, learning_rate_schedule

__all__ = ["train_multi_worker", "train_loop", "multi_worker_strategy", "checkpointed_epochs"]

_CHECKPOINTS = "worker_checkpoints"
_NAME = re.compile(r"epoch-(\d+)\.worker-(\d+)\.npz$")


@registry.register_strategy("multi_worker")
def multi_worker_strategy(replicas=None):
    """`tf.distribute.MultiWorkerMirroredStrategy` of the cluster in `TF_CONFIG` (ValueError
    when it has another number of replicas than `replicas`)."""
    if "TF_CONFIG" not in os.environ:
        raise ValueError("--strategy=multi_worker needs TF_CONFIG (the cluster and this worker's task), "
                         "see README 'Several devices and hosts'")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if strategy.num_replicas_in_sync != (replicas or 1):
        raise ValueError(f"replicas={replicas or 1}, but the cluster in TF_CONFIG has "
                         f"{strategy.num_replicas_in_sync} replicas; pass --replicas={strategy.num_replicas_in_sync}")
    return strategy


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


def _state(model, optimizer):
    return list(model.variables) + list(optimizer.variables)


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


def _compile(model, optimizer, jit_compile=False):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=jit_compile)


def train_multi_worker(config, workdir: str | None = None) -> dict:
    """`train_and_evaluate` for `--strategy=multi_worker`: the cluster of `TF_CONFIG`, this loop."""
    config = resolve_config(config)
    rundir = RunDir(default_workdir(config) if workdir is None else workdir)
    rundir.check_config(config)
    return train_loop(config, rundir.path, registry.make_strategy(config.strategy, config.replicas))


def train_loop(config, workdir: str, strategy) -> dict:
    """Trains `config` under `strategy` with this module's loop; writes the workdir (the chief);
    returns the summary (on every worker)."""
    # run.py imports this module (its dispatch to here): its helpers are imported late.
    from experiments.training.run import _op_determinism, _report, _summary  # pylint: disable=import-outside-toplevel

    config = resolve_config(config)
    rundir = RunDir(workdir)
    rundir.check_config(config)
    worker, workers = _worker(strategy)
    chief = worker == 0
    replicas = strategy.num_replicas_in_sync
    data = inputs.load_data(config)
    x_train, y_train = data.x_train[:config.max_train_examples], data.y_train[:config.max_train_examples]
    x_test, y_test = data.x_test[:config.max_test_examples], data.y_test[:config.max_test_examples]
    steps_per_epoch = len(x_train) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(x_train)} training examples")
    schedule = learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch)
    keras.utils.set_random_seed(config.seed)
    with _op_determinism(not config.jit_compile):
        spec = registry.OPTIMIZERS[config.optimizer]
        with (distribute.replica_local(strategy) if spec.replica_local else strategy.scope()):
            model = inputs.build_model(config, data)
            optimizer = spec.build(config, schedule)
            _compile(model, optimizer)
            optimizer.build(model.trainable_variables)
        # The evaluation model: plain variables, given this worker's copy of the weights.
        evaluator = keras.models.clone_model(model)
        _compile(evaluator, keras.optimizers.SGD())

        checkpoints = os.path.join(rundir.path, _CHECKPOINTS)
        done = checkpointed_epochs(checkpoints, workers)
        initial_epoch = done[-1] if done else 0
        if initial_epoch > config.epochs:
            raise ValueError(f"workdir {rundir.path} already holds {initial_epoch} effective epochs; "
                             f"epochs={config.epochs} is smaller")
        if initial_epoch:
            _load_local(checkpoints, initial_epoch, worker, _state(model, optimizer))
            print(f"worker {worker}/{workers}: resuming {rundir.path} at effective epoch {initial_epoch}/"
                  f"{config.epochs}", flush=True)
        rows = rundir.metrics_until(initial_epoch) if chief else []
        if chief:
            rundir.write_config(config)
            truncate_events(rundir.tensorboard, initial_epoch)

        anchored = find_anchored_optimizer(model)
        swap = (lambda to_anchor: (optimizer.swap_in_anchor(model.trainable_variables) if to_anchor
                                   else optimizer.swap_in_probe(model.trainable_variables))) if anchored else None
        per_replica = config.batch_size // replicas

        @tf.function
        def step(x, y):
            def replica_step(x, y):  # replica r trains on the r-th slice of the global batch, as in `fit`
                r = tf.distribute.get_replica_context().replica_id_in_sync_group
                model.train_step((x[r * per_replica:(r + 1) * per_replica], y[r * per_replica:(r + 1) * per_replica]))
            strategy.run(replica_step, args=(x, y))

        metric_variables = None

        @tf.function
        def gathered_metrics():
            """Each replica's [loss total, loss count, accuracy total, accuracy count], on every worker."""
            def local():
                values = [tf.reshape(tf.cast(v, tf.float32), [1]) for v in metric_variables]
                return tf.concat(values, 0)[tf.newaxis]
            return strategy.gather(strategy.run(local), axis=0)

        tensorboard = TensorBoardScalars(rundir.tensorboard) if chief else None
        t_start = time.perf_counter()
        wall_before = rows[-1]["wall_time_s"] if rows else 0.0
        batches = iter(train_batches(x_train, y_train, seed=config.seed, batch_size=config.batch_size,
                                     initial_epoch=initial_epoch, epochs=config.epochs, augment=config.augment))
        try:
            for epoch in range(initial_epoch, config.epochs):
                if swap:
                    swap(False)
                model.reset_metrics()
                for _ in range(steps_per_epoch):
                    x, y = next(batches)
                    step(x, y)
                if metric_variables is None:  # Keras builds the compiled metrics in the first step
                    metric_variables = [v for _, metric in _mean_metrics(model) for v in metric.variables[:2]]
                stats = gathered_metrics().numpy()  # [replicas, 4]
                if not np.isfinite(stats).all():
                    raise RuntimeError(f"the loss became NaN or infinite during effective epoch {epoch + 1}; "
                                       f"the checkpoint of epoch {epoch} is kept")
                if swap:
                    swap(True)  # the anchor (the center) for evaluation and the checkpoint
                for target, source in zip(evaluator.variables, model.variables):
                    target.assign(distribute.components(source)[0].numpy())
                test_loss, test_accuracy = evaluator.evaluate(x_test, y_test, batch_size=min(len(x_test), 1000),
                                                              verbose=0)
                steps = (epoch + 1) * steps_per_epoch
                row = dict(epoch=epoch + 1, gradient_evaluations=steps,
                           wall_time_s=round(wall_before + time.perf_counter() - t_start, 3),
                           learning_rate=learning_rate_at(schedule, steps - 1),
                           train_loss=float(stats[:, 0].sum() / stats[:, 1].sum()),
                           train_accuracy=float(stats[:, 2].sum() / stats[:, 3].sum()),
                           test_loss=float(test_loss), test_accuracy=float(test_accuracy))
                if replicas > 1:
                    for r in range(replicas):
                        row[f"train_loss_r{r}"] = float(stats[r, 0] / max(stats[r, 1], 1.0))
                        row[f"train_accuracy_r{r}"] = float(stats[r, 2] / max(stats[r, 3], 1.0))
                rows.append(row)
                if chief:
                    rundir.write_metrics(rows)
                    tensorboard.write("train", epoch + 1, {"epoch_loss": row["train_loss"],
                                                           "epoch_accuracy": row["train_accuracy"],
                                                           "epoch_learning_rate": row["learning_rate"]})
                    tensorboard.write("validation", epoch + 1, {"epoch_loss": row["test_loss"],
                                                                "epoch_accuracy": row["test_accuracy"]})
                _save_local(checkpoints, epoch + 1, worker, _state(model, optimizer))
                if chief:
                    write_json(rundir.checkpoint_info, dict(epoch=epoch + 1, gradient_evaluations=steps,
                                                            wall_time_s=row["wall_time_s"], workers=workers))
        finally:
            if tensorboard is not None:
                tensorboard.close()

    if not rows:  # a non-chief worker resuming a finished run
        rows = RunDir(rundir.path).read_metrics()
    summary = _summary(config, rows, steps_per_epoch=steps_per_epoch, steps_per_execution=1,
                       jit_compile=False, ms_per_gradient_evaluation=None)
    summary.update(workers=workers, replicas=replicas)
    if chief:
        rundir.write_summary(summary)
        figures.save_png(figures.training_curves(rows, f"{config.optimizer} / {config.model} / {config.dataset}"
                                                 f" / {workers} workers"), rundir.curves, dpi=100)
        _report(summary)
    return summary

