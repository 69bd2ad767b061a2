"""The workdir of a run: its files, the resume checks, and atomic writes.

    config.json       the resolved config (every field concrete; the optimizer's arguments in its
                      `hyperparameters` block)
    metrics.csv       one row per effective epoch (METRICS_COLUMNS; with several replicas
                      also each replica's train loss and accuracy, `replica_columns`)
    tensorboard/      train/ and validation/ scalars per effective epoch
    checkpoint.keras  model + optimizer state after the latest checkpointed epoch (`model.save`;
                      every `checkpoint_every` effective epochs and after the last)
    checkpoint.json   {"epoch", "gradient_evaluations", "wall_time_s"} of that checkpoint
    summary.json      final test/train metrics at the anchor, cost, timing
    curves.png        loss and accuracy against effective epoch, train and test

Every file is written atomically (`control_opt._internal.atomic`: a temporary
file in the same directory, then `os.replace`), so an interrupted run leaves
each file either as it was or complete. The exception is metrics.csv after a
process's first epoch: each further row is appended (one short write; not the
whole file again), and a last line without its line end, torn by a kill, is
ignored when the file is read; rows past the checkpoint are dropped on resume
anyway.

Why not `keras.callbacks.BackupAndRestore`: it writes its backup in place
(a kill during the write leaves a torn backup), deletes the backup when `fit`
ends (a finished run cannot be extended with more epochs), knows nothing of the
config (a workdir would silently continue a run made with other settings), and
does not cover the metrics, TensorBoard and summary files, which must be cut
back to the checkpoint together. The checkpoint here is the model's own
`.keras` file, written atomically after each epoch and kept.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import Any, Mapping

import keras

from control_opt._internal.atomic import atomic_path, atomic_write
from control_opt.optimizers import find_anchored_optimizer
from experiments.training import registry
from experiments.training.config import RESUMABLE_CHANGES, TrainConfig, config_from_json, flat_config

__all__ = ["RunDir", "ConfigMismatchError", "METRICS_COLUMNS", "replica_columns", "write_json", "read_json"]

METRICS_COLUMNS = ("epoch", "gradient_evaluations", "wall_time_s", "learning_rate",
                   "train_loss", "train_accuracy", "test_loss", "test_accuracy")
_INTEGER_COLUMNS = ("epoch", "gradient_evaluations")


def replica_columns(replicas: int) -> tuple[str, ...]:
    """metrics.csv's per-replica columns, after METRICS_COLUMNS: none with one replica (the
    columns stay METRICS_COLUMNS exactly); with several, each replica's running-mean train loss
    and accuracy over the epoch, `train_loss_r0, train_accuracy_r0, train_loss_r1, ...`
    (Keras' `train_loss` is their mean: equal shards). The test columns are at the center
    (the anchor every replica holds during evaluation)."""
    if replicas <= 1:
        return ()
    return tuple(f"train_{key}_r{r}" for r in range(replicas) for key in ("loss", "accuracy"))


class ConfigMismatchError(ValueError):
    """The workdir holds a run whose config differs from the requested one."""


def write_json(path: str, obj) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


class RunDir:
    """The files of one run in `path` (created on the first write)."""

    def __init__(self, path: str):
        self.path = path
        self.config = os.path.join(path, "config.json")
        self.metrics = os.path.join(path, "metrics.csv")
        self.checkpoint = os.path.join(path, "checkpoint.keras")
        self.checkpoint_info = os.path.join(path, "checkpoint.json")
        self.summary = os.path.join(path, "summary.json")
        self.curves = os.path.join(path, "curves.png")
        self.tensorboard = os.path.join(path, "tensorboard")

    # ------------------------------------------------------------------ config

    def read_config(self) -> TrainConfig | None:
        """The config.json of this workdir as a config (older flat files included), or None."""
        return config_from_json(read_json(self.config)) if os.path.exists(self.config) else None

    def config_differences(self, config: TrainConfig) -> list[str]:
        """"key: workdir has X, requested Y" for each key outside RESUMABLE_CHANGES that differs.

        The optimizer's arguments compare key by key like the fields. A key missing from an
        older config.json counts as its default (fields and constructor arguments added
        later do not orphan existing runs).
        """
        if not os.path.exists(self.config):
            return []
        stored_config = self.read_config()
        stored, requested = flat_config(stored_config), flat_config(config)
        defaults = flat_config(TrainConfig())
        defaults["strategy"] = "default" if stored_config.replicas == 1 else "mirrored"  # before the key existed
        spec = registry.OPTIMIZERS.get(stored_config.optimizer)
        if spec is not None:  # arguments the optimizer gained since: their defaults
            defaults.update(spec.resolved(stored_config.optimizer, {}))
        raw = read_json(self.config)
        stored = {k: v for k, v in stored.items() if k in raw or k in raw.get("hyperparameters", {})
                  or ("hyperparameters" not in raw and v is not None)}
        keys = sorted((set(stored) | set(requested)) - set(RESUMABLE_CHANGES))
        return [f"{k}: workdir has {stored.get(k, defaults.get(k))!r}, requested {requested.get(k)!r}"
                for k in keys if stored.get(k, defaults.get(k)) != requested.get(k)]

    def check_config(self, config: TrainConfig) -> None:
        """Refuses a workdir holding a run with another config, before anything is touched.

        Raises:
          ConfigMismatchError: naming every key that differs.
        """
        differences = self.config_differences(config)
        if differences:
            raise ConfigMismatchError(
                f"workdir {self.path} holds a run with a different config; use another --workdir or the "
                f"same settings. Differences: " + "; ".join(differences))

    def write_config(self, config: TrainConfig) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.config, dataclasses.asdict(config))  # the hyper-parameters as one block

    # ------------------------------------------------------------------ checkpoint and resume

    def has_checkpoint(self) -> bool:
        return os.path.exists(self.checkpoint)

    def load_checkpoint(self) -> keras.Model:
        return keras.models.load_model(self.checkpoint)

    def load_evaluated_model(self) -> tuple[keras.Model, str]:
        """The checkpointed model at the weights the run evaluated at, and what they are.

        The runner saves at epoch ends with the anchor swapped in (`AnchorSwap`), so the file's
        model weights are those of metrics.csv's test columns: the anchor of an anchored
        optimizer, and for Elastic-SGD / Parle on n > 1 replicas (mirrored or multi-worker) the
        center `xbar` that every replica holds then (`mean_a x_a`, or EASGD's center variable:
        the optimizer's `_report`). Such a run's optimizer state is each replica's, stacked, and
        loads only under a strategy of n replicas; the center needs no optimizer, so it is
        loaded without one (`compile=False`, `model.optimizer` is None).

        Returns:
          (model, "weights" | "anchor" | "center of n replicas").

        Raises:
          FileNotFoundError: no config.json or checkpoint.keras (named).
        """
        for path in (self.config, self.checkpoint):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} is missing: {self.path} is not a finished run of experiments.train")
        config = self.read_config()
        spec = registry.OPTIMIZERS.get(config.optimizer)
        if spec is not None and spec.replica_local and config.replicas > 1:
            return keras.models.load_model(self.checkpoint, compile=False), f"center of {config.replicas} replicas"
        model = keras.models.load_model(self.checkpoint)
        return model, "anchor" if find_anchored_optimizer(model) is not None else "weights"

    def checkpoint_step(self) -> int:
        """The optimizer steps (gradient evaluations) of the checkpoint, from checkpoint.json."""
        return int(read_json(self.checkpoint_info)["gradient_evaluations"])

    def resume_epoch(self, model: keras.Model, steps_per_epoch: int, epochs: int) -> int:
        """The effective epochs done by the checkpointed `model` (its optimizer counts gradient evaluations).

        Raises:
          RuntimeError: the checkpoint is not at an epoch boundary (inconsistent workdir).
          ConfigMismatchError: it holds more epochs than `epochs` (epochs may only grow).
        """
        done, partial = divmod(int(model.optimizer.iterations.numpy()), steps_per_epoch)
        if partial:
            raise RuntimeError(f"{self.checkpoint} is not at the end of an effective epoch of "
                               f"{steps_per_epoch} steps; the workdir is inconsistent")
        if done > epochs:
            raise ConfigMismatchError(
                f"workdir {self.path} already holds {done} effective epochs; epochs={epochs} "
                f"is smaller (epochs may only be increased to extend a run)")
        return done

    def save_checkpoint(self, model: keras.Model, *, epoch: int, gradient_evaluations: int,
                        wall_time_s: float) -> None:
        """`model.save` to a temporary .keras file beside the checkpoint, renamed onto it; then checkpoint.json."""
        with atomic_path(self.checkpoint, suffix=".keras") as tmp:
            model.save(tmp)
        write_json(self.checkpoint_info, dict(epoch=epoch, gradient_evaluations=gradient_evaluations,
                                              wall_time_s=wall_time_s))

    # ------------------------------------------------------------------ metrics and summary

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.csv; a last line without its line end (a kill during an append) is left out."""
        if not os.path.exists(self.metrics):
            return []
        with open(self.metrics, newline="") as f:
            text = f.read()
        complete = text[:text.rfind("\n") + 1]
        return [{k: (int(v) if k in _INTEGER_COLUMNS else float(v)) for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(complete, newline=""))]

    def metrics_until(self, epoch: int) -> list[dict[str, Any]]:
        """The metric rows of epochs 1..`epoch` (rows past the checkpoint are dropped).

        Raises:
          RuntimeError: the row of `epoch` is missing (inconsistent workdir).
        """
        rows = [r for r in self.read_metrics() if r["epoch"] <= epoch]
        if epoch and (not rows or rows[-1]["epoch"] != epoch):
            raise RuntimeError(f"{self.metrics} lacks the row of effective epoch {epoch}; "
                               "the workdir is inconsistent")
        return rows

    @staticmethod
    def _metrics_columns(row):
        return METRICS_COLUMNS + replica_columns(sum(1 for column in (row or {}) if column.startswith("train_loss_r")))

    def write_metrics(self, rows) -> None:
        """metrics.csv holding exactly `rows` (header included), atomically."""
        def write(f):
            writer = csv.DictWriter(f, fieldnames=self._metrics_columns(rows[0] if rows else None))
            writer.writeheader()
            writer.writerows(rows)

        atomic_write(self.metrics, write)

    def append_metrics(self, row) -> None:
        """Appends `row` to metrics.csv, which must hold the rows before it (`write_metrics` first).

        One short write, not the whole file: a kill during it can leave only a
        torn last line, which `read_metrics` ignores."""
        buffer = io.StringIO(newline="")
        csv.DictWriter(buffer, fieldnames=self._metrics_columns(row)).writerow(row)
        with open(self.metrics, "a", newline="") as f:
            f.write(buffer.getvalue())

    def read_summary(self) -> Mapping[str, Any] | None:
        return read_json(self.summary) if os.path.exists(self.summary) else None

    def write_summary(self, summary) -> None:
        write_json(self.summary, summary)
