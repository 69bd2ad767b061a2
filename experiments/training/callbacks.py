"""Callbacks of the runner: the per-epoch recorder and its TensorBoard writer.

Both loops run the same `keras.callbacks.CallbackList` (`per_epoch_callbacks`):
`fit` calls it itself; the multi-worker loop (`distributed_loop.py`) calls its
hooks at the same points. In order: the anchor swap, the `Recorder` (NaN/inf
check, test evaluation, metrics.csv, TensorBoard, checkpoint) and, with
`snapshot_every`, the weight snapshots.

TensorBoard. `keras.callbacks.TensorBoard` calls `tf.summary.scalar`, which
lives in the `tensorboard` package; TF 2.21 no longer installs it, and this
project does not need it to *write* logs: `tf.summary.write` with the "scalars"
plugin metadata (core TF) puts the same event on disk, readable by any
TensorBoard the user installs to *view* them. Writing the events ourselves also
lets a resumed run cut them back to the checkpoint (`truncate_events`), which
Keras' callback cannot do: without that, the epochs between the last
checkpoint and an interruption would appear twice.
"""

from __future__ import annotations

import glob
import os
import time

import keras
import numpy as np
import tensorflow as tf

from control_opt import distribute
from control_opt._internal.atomic import atomic_path
from control_opt.optimizers import find_anchored_optimizer
from control_opt.optimizers.callbacks import AnchorSwap
from experiments.training.phases import PhaseTimer
from experiments.training.rundir import RunDir
from experiments.training.schedules import learning_rate_at
from experiments.training.snapshots import SNAPSHOTS_FILE, WeightSnapshots

__all__ = ["TensorBoardScalars", "truncate_events", "read_scalar_events", "Recorder", "TimedAnchorSwap", "SPLITS",
           "mean_metrics", "per_epoch_callbacks"]

SPLITS = ("train", "validation")


class TensorBoardScalars:
    """Per-epoch scalars in TensorBoard's event format, one writer per split (train/, validation/)."""

    def __init__(self, logdir: str):
        from tensorflow.core.framework import summary_pb2  # pylint: disable=import-outside-toplevel

        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        self._writers = {split: tf.summary.create_file_writer(os.path.join(logdir, split)) for split in SPLITS}

    def write(self, split: str, step: int, scalars) -> None:
        with self._writers[split].as_default():
            for tag, value in scalars.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=self._metadata)
        self._writers[split].flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def _event_files(logdir):
    return sorted(glob.glob(os.path.join(logdir, "*", "events.out.tfevents.*")))


def _read_events(path):
    """The Event protos of one file; a torn last record (killed mid-write) ends the file."""
    events = []
    try:
        for event in tf.compat.v1.train.summary_iterator(path):
            events.append(event)
    except tf.errors.DataLossError:
        pass
    return events


def truncate_events(logdir: str, last_step: int) -> int:
    """Drops every summary with step > `last_step` from the event files under `logdir`/<split>/.

    Called on resume with the checkpoint's epoch: epochs written after it (the
    run was interrupted between the TensorBoard write and the checkpoint) are
    recomputed and written again, so their old points must go. Each file is
    rewritten atomically and only if it changes; the operation is idempotent, so
    an interruption here is repaired by the next resume.

    Returns:
      The number of summaries dropped.
    """
    dropped = 0
    for path in _event_files(logdir):
        events = _read_events(path)
        kept = [e for e in events if not (e.HasField("summary") and e.step > last_step)]
        if len(kept) == len(events) and os.path.getsize(path) == sum(_record_size(e) for e in events):
            continue
        dropped += len(events) - len(kept)
        with atomic_path(path) as tmp:
            with tf.io.TFRecordWriter(tmp) as writer:
                for event in kept:
                    writer.write(event.SerializeToString())
    return dropped


def _record_size(event):
    # A TFRecord is length (8) + its CRC (4) + data + data CRC (4).
    return 16 + event.ByteSize()


def read_scalar_events(logdir: str) -> dict[str, list[tuple[str, int, float]]]:
    """{split: [(tag, step, value), ...]} of every scalar under `logdir`, in file order (tests, inspection)."""
    out = {}
    for path in _event_files(logdir):
        split = os.path.basename(os.path.dirname(path))
        for event in _read_events(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                out.setdefault(split, []).append((value.tag, int(event.step), number))
    return out


def mean_metrics(model):
    """(name, metric) of the model's running-mean train metrics: `loss` (Keras' loss
    tracker) and each compiled metric (`accuracy`), whose first two variables are the
    running total and count."""
    tracker = getattr(model, "_loss_tracker", None)
    if tracker is not None:
        yield "loss", tracker
    compiled = getattr(model, "_compile_metrics", None)
    for metric in (compiled.metrics if compiled is not None else []):
        if len(metric.variables) >= 2:
            yield metric.name, metric


def _replica_metrics(model):
    """{name: [replica 0's running mean, replica 1's, ...]} for `loss` and the compiled
    metrics (Keras keeps one copy of their variables per replica), or None with one replica."""
    if model.distribute_strategy.num_replicas_in_sync == 1:
        return None
    out = {}
    for name, metric in mean_metrics(model):
        totals, counts = (distribute.components(variable) for variable in metric.variables[:2])
        if len(totals) > 1:
            out[name] = [float(t.numpy()) / max(float(c.numpy()), 1.0) for t, c in zip(totals, counts)]
    return out or None


class TimedAnchorSwap(AnchorSwap):
    """`control_opt.AnchorSwap` with each swap timed as the phase "anchor_swap" of `timer`."""

    def __init__(self, timer: PhaseTimer):
        super().__init__()
        self._timer = timer

    def _swap(self, to_anchor):
        with self._timer.phase("anchor_swap"):
            return super()._swap(to_anchor)


class Recorder(keras.callbacks.Callback):
    """Stops on a NaN/inf loss and, after each good epoch, evaluates the test set and writes metrics,
    TensorBoard and (every `checkpoint_every` effective epochs, and after the last) the checkpoint.

    Runs after `control_opt.AnchorSwap` in the callback list, so at
    `on_epoch_end` the model holds the anchor (checked: the checkpoint and the
    test metrics must be the anchor's). Order of writes: metrics.csv,
    tensorboard, then, when due, checkpoint.keras and checkpoint.json; on resume,
    metric rows and TensorBoard points past the checkpoint are dropped (`run.py`).

    The test set is evaluated here by `evaluator` (one traced call,
    `evaluation.py`) when given; without one (several replicas) the `val_*`
    numbers come from Keras' validation inside `fit`. metrics.csv is rewritten
    whole (atomically) at this process's first epoch, which also drops rows past
    the checkpoint, and then only appended to, one row per epoch (a row torn by
    a kill is dropped when read, `RunDir.read_metrics`).

    Args:
      rundir: the workdir's files.
      schedule: the outer learning rate object the optimizer uses (float or Keras
        schedule); the logged rate is read from it.
      steps_per_epoch: gradient evaluations per effective epoch.
      rows: the metric rows kept from before (resume), extended in place.
      wall_time_before: wall time of those epochs, seconds.
      timer: where the phases of each epoch are timed (`phases.py`); None: a private one.
      evaluator: a callable returning the test metrics {"loss", "accuracy"} of the model as it is
        (a `TestSetEvaluator`); None: they are in the `val_*` logs of Keras' validation.
      checkpoint_every: write the checkpoint after effective epochs that are multiples of this.
      final_epoch: the last effective epoch of the run (always checkpointed).
      save_checkpoint: `(model, epoch=, gradient_evaluations=, wall_time_s=)` writing the checkpoint;
        None: `rundir.save_checkpoint` (the multi-worker loop passes its own, which also keeps
        each worker's replicas).
      replica_metrics: `model -> {name: [each replica's running mean]}` or None, read at an epoch's
        last step; None: the model's own per-replica metric copies (`fit`).
      writes: this process writes the files (False on the multi-worker loop's non-chief workers,
        which still check for NaN/inf and keep the rows).
    """

    def __init__(self, *, rundir: RunDir, schedule, steps_per_epoch: int, rows, wall_time_before: float,
                 timer: PhaseTimer | None = None, evaluator=None, checkpoint_every: int = 1,
                 final_epoch: int | None = None, save_checkpoint=None, replica_metrics=None, writes: bool = True):
        super().__init__()
        self._save_checkpoint = save_checkpoint
        self._read_replica_metrics = _replica_metrics if replica_metrics is None else replica_metrics
        self.writes = writes
        self.timer = PhaseTimer() if timer is None else timer
        self.rundir, self.schedule, self.steps_per_epoch = rundir, schedule, steps_per_epoch
        self.rows = rows
        self.wall_time_before = wall_time_before
        self.evaluator, self.checkpoint_every, self.final_epoch = evaluator, checkpoint_every, final_epoch
        self.checkpoint_epoch = rows[-1]["epoch"] if rows else None  # the latest checkpoint on disk
        self.diverged_epoch = None  # 0-based Keras epoch in which the loss became non-finite
        self.epoch_timings = []  # (seconds spent in training steps, steps) per epoch of this process
        self._tensorboard = None
        self._metrics_file_current = False  # metrics.csv holds exactly self.rows[:-1]: append the new row
        self._replica_metrics = None  # each replica's train loss/accuracy at the last step of the epoch

    def on_train_begin(self, logs=None):
        self._t_start = time.perf_counter()
        self._tensorboard = TensorBoardScalars(self.rundir.tensorboard) if self.writes else None

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Closes the TensorBoard writers (also after an exception, which skips on_train_end)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t_epoch, self._t_steps_done = time.perf_counter(), None
        self.timer.start("train_steps")

    def _steps_done(self):
        if self._t_steps_done is None:
            self._t_steps_done = time.perf_counter()
        self.timer.stop("train_steps")

    def on_test_begin(self, logs=None):
        self._steps_done()
        self.timer.start("evaluation")

    def on_test_end(self, logs=None):
        self.timer.stop("evaluation")

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps_per_epoch - 1:
            self._steps_done()
            self._replica_metrics = self._read_replica_metrics(self.model)  # before validation resets them
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(np.asarray(loss)).all():
            self.diverged_epoch = int(self.model.optimizer.iterations.numpy() - 1) // self.steps_per_epoch
            self.model.stop_training = True

    def checkpoint_due(self, epoch: int) -> bool:
        """Whether effective epoch `epoch` (1-based) ends with a checkpoint."""
        return epoch % self.checkpoint_every == 0 or epoch == self.final_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        self._steps_done()  # train_steps is still running if the epoch stopped early
        t_steps_done = self._t_steps_done
        if self.diverged_epoch is not None:
            self.model.stop_training = True
            return  # nothing of this epoch is written: the previous checkpoint stays
        anchored = find_anchored_optimizer(self.model)
        if anchored is not None and not bool(anchored.anchor_in_model):
            raise RuntimeError("the model holds the probe at the end of an epoch: AnchorSwap must come "
                               "before the Recorder in the callback list")
        if self.evaluator is not None:
            with self.timer.phase("evaluation"):
                logs.update({f"val_{name}": value for name, value in self.evaluator().items()})
        now = time.perf_counter()
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        if not all(np.isfinite(float(logs.get(k, np.nan))) for k in keys):
            self.diverged_epoch = epoch
            self.model.stop_training = True
            return
        self.epoch_timings.append((t_steps_done - self._t_epoch, self.steps_per_epoch))
        steps = (epoch + 1) * self.steps_per_epoch
        row = dict(epoch=epoch + 1, gradient_evaluations=steps,
                   wall_time_s=round(self.wall_time_before + now - self._t_start, 3),
                   learning_rate=learning_rate_at(self.schedule, steps - 1),
                   train_loss=float(logs["loss"]), train_accuracy=float(logs["accuracy"]),
                   test_loss=float(logs["val_loss"]), test_accuracy=float(logs["val_accuracy"]))
        # With several replicas, each one's train loss and accuracy (`replica_columns`).
        replicas, self._replica_metrics = self._replica_metrics or {}, None
        for r, loss in enumerate(replicas.get("loss", [])):
            row[f"train_loss_r{r}"] = loss
            row[f"train_accuracy_r{r}"] = replicas["accuracy"][r] if "accuracy" in replicas else float("nan")
        self.rows.append(row)
        if self.writes:
            self._write(epoch, row)
        if self.checkpoint_due(epoch + 1) and (self.writes or self._save_checkpoint is not None):
            with self.timer.phase("checkpoint"):
                save = self.rundir.save_checkpoint if self._save_checkpoint is None else self._save_checkpoint
                save(self.model, epoch=epoch + 1, gradient_evaluations=steps, wall_time_s=row["wall_time_s"])
            self.checkpoint_epoch = epoch + 1

    def _write(self, epoch, row):
        with self.timer.phase("metrics_csv"):
            if self._metrics_file_current:
                self.rundir.append_metrics(row)
            else:  # this process's first row: the whole file, atomically (drops rows past the checkpoint)
                self.rundir.write_metrics(self.rows)
                self._metrics_file_current = True
        with self.timer.phase("tensorboard"):
            self._tensorboard.write("train", epoch + 1, {"epoch_loss": row["train_loss"],
                                                         "epoch_accuracy": row["train_accuracy"],
                                                         "epoch_learning_rate": row["learning_rate"],
                                                         **self._replica_scalars(row)})
            self._tensorboard.write("validation", epoch + 1, {"epoch_loss": row["test_loss"],
                                                              "epoch_accuracy": row["test_accuracy"]})

    def _replica_scalars(self, row):
        """With several replicas: each replica's train loss and accuracy over the epoch
        (`replica_R_loss`, `replica_R_accuracy`, as in metrics.csv's `train_loss_rR`) and,
        for replica-local optimizers (Elastic-SGD, Parle), `replica_spread`, the largest
        distance of a replica's weights from their mean."""
        scalars = {}
        for column, value in row.items():
            if column.startswith("train_") and "_r" in column:
                key, r = column[len("train_"):].rsplit("_r", 1)
                scalars[f"replica_{r}_{key}"] = value
        optimizer = find_anchored_optimizer(self.model)
        if optimizer is not None and getattr(optimizer, "num_replicas", 1) > 1:
            stacks = [distribute.stack_components(anchor) for anchor in optimizer.anchors]
            if all(len(stacked) == optimizer.num_replicas for stacked in stacks):  # every replica here (one host)
                scalars["replica_spread"] = max(float(np.abs(stacked - stacked.mean(axis=0)).max())
                                                for stacked in stacks)
        return scalars

    def ms_per_gradient_evaluation(self):
        """Time in training steps per gradient evaluation, this process; the first
        epoch (tracing, compilation) is left out when there are others."""
        timings = self.epoch_timings[1:] if len(self.epoch_timings) > 1 else self.epoch_timings
        if not timings:
            return None
        return 1000.0 * sum(t for t, _ in timings) / sum(s for _, s in timings)


def per_epoch_callbacks(config, recorder: Recorder, timer: PhaseTimer, *, writes: bool = True):
    """The callback list both loops run: the anchor swap first (everything after it sees the
    anchor), the recorder, and with `config.snapshot_every` the weight snapshots. Every worker
    of a multi-worker run records them (reading replica-local weights is a collective that all
    workers must join); only the one that `writes` (the chief) writes the file."""
    callbacks = [TimedAnchorSwap(timer), recorder]
    if config.snapshot_every:
        callbacks.append(WeightSnapshots(os.path.join(recorder.rundir.path, SNAPSHOTS_FILE), config.snapshot_every,
                                         writes=writes))
    return callbacks
