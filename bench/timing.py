"""Timing helpers shared by the benchmarks: per-step wall time of a Keras `fit`."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

__all__ = ["StepTimer", "synthetic_batches", "timed_fit"]


class StepTimer(keras.callbacks.Callback):
    """Wall time from the start of step `skip` to the end of the last step of one fit."""

    def __init__(self, skip):
        super().__init__()
        self.skip, self.start, self.end = skip, None, None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.skip:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()


def synthetic_batches(shape, num_classes, batch, num_batches, seed=0):
    """A repeating `tf.data` pipeline of `num_batches` random batches (normal inputs, uniform labels)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_batches * batch,) + tuple(shape)).astype("float32")
    y = rng.integers(0, num_classes, size=(num_batches * batch,)).astype("int64")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat().prefetch(2)


def timed_fit(model, data, steps, skip):
    """Traces and builds `model` on `data` once, then returns `timed()`: seconds per step of one
    `fit` of `steps` steps, the first `skip` untimed."""
    model.fit(data, steps_per_epoch=skip + 2, epochs=1, verbose=0)  # trace and build

    def timed():
        timer = StepTimer(skip)
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
        return (timer.end - timer.start) / (steps - skip)

    return timed
