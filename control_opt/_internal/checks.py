"""Argument checks, one signature for the whole library: `check_*(name, value, ...)`.

Each raises `ValueError` naming the argument and what it must be, and returns
the checked value (a Python float or int where the argument is a number), so a
constructor reads `self.rate = check_positive("rate", rate)`.
"""

from __future__ import annotations

import numbers
import random

import numpy as np
import tensorflow as tf

__all__ = [
    "check_callable",
    "check_int",
    "check_nesterov",
    "check_non_negative",
    "check_positive",
    "check_unit_interval",
    "resolve_seed",
]


_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float64


def _is_schedule(value):
    import keras  # pylint: disable=import-outside-toplevel

    return callable(value) or isinstance(value, keras.optimizers.schedules.LearningRateSchedule)


def _real(name, value, what):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray, np.generic)) or np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    return float(value)


def check_positive(name, value, *, schedule=False, tensor=False, normal=False):
    """A finite number > 0, returned as a float.

    normal: also reject subnormal numbers, below `np.finfo(np.float64).tiny`
      (about 2.2e-308): they carry fewer significant bits and their reciprocal
      overflows (`1 / 1e-310 = inf`), so a formula dividing by the argument
      (`h^2 / (2 t)`, `beta / (2 t)`) would turn into `inf * 0 = NaN`. Applies
      to numbers only (not to schedules or tensors).
    schedule: also accept a callable or a Keras `LearningRateSchedule` (returned as is).
    tensor: also accept tensors (returned as is): a value known at trace time is
      checked now, a symbolic one gets a run-time assertion (returned instead);
      callables are then accepted too (functions of the time or the step).
    """
    if value is None:
        raise ValueError(f"`{name}` must be a finite number > 0, got None.")
    if (schedule or tensor) and callable(value) and not tf.is_tensor(value):
        return value if tensor else _checked_schedule(name, value)
    if tensor and tf.is_tensor(value):
        static = tf.get_static_value(value)
        if static is None:
            return tf.debugging.assert_positive(value, message=f"`{name}` must be positive")
        array = np.asarray(static, dtype=np.float64)
        if not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise ValueError(f"`{name}` must be a positive finite number, got {static!r}.")
        return value
    number = _real(name, value, "a finite number > 0")
    if not (np.isfinite(number) and number > 0.0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    if normal and number < _TINY:
        raise ValueError(f"`{name}` must be a normal float > 0, at least {_TINY!r} (np.finfo(np.float64).tiny) "
                         f"so that 1/{name} is finite; got the subnormal {value!r}.")
    return number


def _checked_schedule(name, value):
    if not _is_schedule(value):
        raise ValueError(f"`{name}` must be a positive float or a schedule, got {value!r}.")
    return value


def check_non_negative(name, value):
    """A finite number >= 0, returned as a float."""
    number = _real(name, value, "a finite number >= 0")
    if not (np.isfinite(number) and number >= 0.0):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return number


def check_unit_interval(name, value):
    """A number in [0, 1) (a momentum, a decay), returned as a float."""
    number = _real(name, value, "a float in [0, 1)")
    if not 0.0 <= number < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1), got {value!r}.")
    return number


def check_int(name, value, minimum=1):
    """An integer >= `minimum` (not a bool), returned as an int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_nesterov(name, nesterov, momentum_name, momentum):
    """`nesterov=True` needs a positive momentum; returns a bool."""
    if nesterov and not momentum:
        raise ValueError(f"`{name}=True` needs a positive `{momentum_name}`, got {momentum_name}={momentum!r}.")
    return bool(nesterov)


def check_callable(name, value, signature):
    """`value` if it is callable (or None); `signature` says what it must look like."""
    if value is not None and not callable(value):
        raise ValueError(f"`{name}` must be a callable `{signature}`, got {type(value).__name__}.")
    return value


def resolve_seed(seed):
    """An explicit integer seed; `None` draws one from Python's `random`, which
    `keras.utils.set_random_seed` seeds, so seeded programs stay reproducible."""
    if seed is None:
        return random.randint(1, 2**31 - 1)
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise ValueError(f"`seed` must be an integer or None, got {seed!r}.")
    return int(seed)
