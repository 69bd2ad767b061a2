"""Timing helpers shared by the benchmarks, built so that a table cannot lie.

* `interleave` runs the contenders in rounds, every contender once per round,
  the order rotated from round to round, so a slow minute of a shared machine
  hits every contender alike;
* `Spread` keeps every sample and prints min / median / max;
* `paired_ratio` divides each round's time by the baseline's time in the same
  round and reports the median of those ratios with their range; it refuses
  (ValueError) to form a ratio from a single run;
* `require_repeats` refuses to write a table to BENCHMARKS.md from fewer than
  `MIN_REPEATS` (9) repeats.

`StepTimer`, `synthetic_batches` and `timed_fit` time the steps of a Keras `fit`;
`timed_steps` times the train function that `fit` calls, without `fit` around it.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

__all__ = ["MIN_REPEATS", "Spread", "StepTimer", "interleave", "paired_ratio", "require_repeats",
           "synthetic_batches", "timed_fit", "timed_steps"]

MIN_REPEATS = 9


@dataclasses.dataclass(frozen=True)
class Spread:
    """All samples of one contender; `text()` prints `median [min - max]`."""

    samples: tuple

    @property
    def n(self):
        return len(self.samples)

    @property
    def min(self):
        return min(self.samples)

    @property
    def median(self):
        return statistics.median(self.samples)

    @property
    def max(self):
        return max(self.samples)

    def text(self, scale=1.0, digits=3):
        return f"{self.median * scale:.{digits}f} [{self.min * scale:.{digits}f} - {self.max * scale:.{digits}f}]"


def timed(fn):
    """(fn(), its wall seconds): one call, timed once."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def interleave(contenders, repeats):
    """`{name: Spread}`: `repeats` rounds, each calling every contender (a
    no-argument callable returning a time in seconds) once, the order rotated
    by one every round."""
    names = list(contenders)
    samples = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(float(contenders[name]()))
    return {name: Spread(tuple(values)) for name, values in samples.items()}


@dataclasses.dataclass(frozen=True)
class Ratio:
    """Median, min and max over rounds of `time / baseline time in the same round`,
    and the quartiles `q1`, `q3` (`statistics.quantiles`, exclusive method)."""

    median: float
    min: float
    max: float
    n: int
    q1: float = float("nan")
    q3: float = float("nan")

    def text(self, digits=3):
        return f"{self.median:.{digits}f} [{self.min:.{digits}f} - {self.max:.{digits}f}]"

    def quartiles_text(self, digits=3):
        """`median [q1 - q3]`: where the middle half of the rounds lie."""
        return f"{self.median:.{digits}f} [{self.q1:.{digits}f} - {self.q3:.{digits}f}]"


def paired_ratio(spread, baseline):
    """The per-round ratios of two `Spread`s timed by the same `interleave`.

    Raises:
      ValueError: fewer than 2 rounds (a ratio of single runs says nothing of
        its noise), or the two were not timed in the same rounds.
    """
    if spread.n != baseline.n:
        raise ValueError(f"paired_ratio needs samples from the same rounds, got {spread.n} and {baseline.n}.")
    if spread.n < 2:
        raise ValueError(f"refusing a ratio from {spread.n} run: time at least 2 (tables need {MIN_REPEATS}).")
    ratios = [a / b for a, b in zip(spread.samples, baseline.samples)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return Ratio(statistics.median(ratios), min(ratios), max(ratios), len(ratios), q1, q3)


def require_repeats(repeats, writing):
    """Exit with a message when a table would be written from fewer than `MIN_REPEATS` repeats."""
    if writing and repeats < MIN_REPEATS:
        raise SystemExit(f"--repeats={repeats}: a table in BENCHMARKS.md needs at least {MIN_REPEATS} "
                         "repeats; pass --no-write to try fewer.")


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


def timed_steps(model, data, steps, warmup=25):
    """Traces and builds `model` on `data` once, then returns `timed()`: seconds per
    step of `steps` back-to-back calls of the model's train function, the
    compiled step that `fit` calls once per batch (`make_train_function`), on an
    iterator of `data`, without `fit`'s callbacks and progress logic (the same
    for every optimizer, so leaving them out can only raise a ratio to SGD).
    The `warmup` calls run first, once."""
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace and build
    train = model.make_train_function()
    iterator = iter(data)
    for _ in range(warmup):
        train(iterator)

    def timed():
        start = time.perf_counter()
        for _ in range(steps):
            train(iterator)
        return (time.perf_counter() - start) / steps

    return timed
