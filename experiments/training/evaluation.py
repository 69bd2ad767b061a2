"""The per-epoch test evaluation in one traced call: `TestSetEvaluator`.

`model.evaluate` (and the validation inside `fit`, which calls it) pays per
call for things that do not change between epochs: a `tf.data` iterator over
the test arrays, a Python loop over its batches with a callback round-trip per
`steps_per_execution` batches, and a read-back of every metric. On the default
experiment (1,000 test examples, one batch) that is several times the cost of
the forward pass itself (BENCHMARKS.md, default_run).

`TestSetEvaluator(model, x, y, batch_size)()` runs the same computation as
`model.evaluate(x, y, batch_size=batch_size)` (the model's own `test_step` on
the same batches, in the same order, updating the model's own metric objects
after `reset_metrics`), but the whole test set is one `tf.function` call on
tensors made once, so it returns the same numbers (bit for bit on this
machine and build; tested) at a fraction of the cost. One replica only: under
a `tf.distribute` strategy the runner keeps Keras' validation, which splits
each batch over the replicas.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

__all__ = ["TestSetEvaluator"]


class TestSetEvaluator:
    """`{"loss": ..., "accuracy": ...}` (the model's metrics) on a fixed test set, one traced call.

    Args:
      model: a compiled Keras model (its `test_step` and metrics are used).
      x, y: the test inputs and labels (arrays).
      batch_size: as `model.evaluate`'s: full batches, then the remainder.
    """

    def __init__(self, model: keras.Model, x, y, batch_size: int):
        n = len(x)
        if n < 1 or batch_size < 1:
            raise ValueError(f"need at least one test example and a positive batch size, got {n}, {batch_size}")
        self._model = model
        self._x, self._y = tf.constant(np.asarray(x)), tf.constant(np.asarray(y))
        self._full, self._rest = divmod(n, batch_size)
        self._batch_size = batch_size
        step = model.test_step
        if model.jit_compile:  # as Keras compiles its test step
            step = tf.function(step, reduce_retracing=True, jit_compile=True)
        self._step = step
        self._function = tf.function(self._evaluate, autograph=True)

    def _evaluate(self):
        for metric in self._model.metrics:
            metric.reset_state()
        b = self._batch_size
        logs = None
        if self._full == 1:
            logs = self._step((self._x[:b], self._y[:b]))
        elif self._full > 1:
            logs = self._step((self._x[:b], self._y[:b]))  # the first outside the loop: its structure
            for i in tf.range(1, self._full):
                logs = self._step((self._x[i * b:(i + 1) * b], self._y[i * b:(i + 1) * b]))
        if self._rest:
            logs = self._step((self._x[self._full * b:], self._y[self._full * b:]))
        return logs

    def __call__(self) -> dict[str, float]:
        """The model's metrics (Keras' names: `loss`, `accuracy`, ...) on the test set, as floats."""
        return {name: float(value) for name, value in self._function().items()}
