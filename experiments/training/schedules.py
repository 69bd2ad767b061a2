"""The outer learning rate: the papers' "EPOCH:VALUE" drops, parsed once into a Keras schedule.

`--lr_schedule="75:0.1"` with `--learning_rate=1` means: 1 until effective epoch
75, 0.1 from then on. `learning_rate_schedule` turns that into the object the
optimizer uses (a float when nothing drops, else a `PiecewiseConstantDecay`
over optimizer iterations = gradient evaluations), and `learning_rate_at`
reads the rate of a given step back *from that object*: what is logged is what
the optimizer applied, with no second implementation of the schedule to drift.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["parse_lr_schedule", "format_lr_schedule", "learning_rate_schedule", "learning_rate_at",
           "first_step_of_epoch"]

_SCHEDULE_FORM = ('expected "EPOCH:VALUE,EPOCH:VALUE,...", e.g. "2:0.1,4:0.01": from effective epoch '
                  "EPOCH on, the outer learning rate is VALUE; epochs non-negative and increasing, values positive")


def parse_lr_schedule(text: str | None) -> list[tuple[float, float]]:
    """Parses "E1:v1,E2:v2" into [(E1, v1), (E2, v2)]; "" or None -> [].

    From effective epoch E_i on (E may be fractional), the outer learning rate is
    v_i; before E_1 it is `learning_rate`.

    Raises:
      ValueError: the string is not of that form; the message shows the form.
    """
    if text is None or not str(text).strip():
        return []
    pieces = []
    for piece in str(text).split(","):
        parts = piece.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            epoch, value = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"bad lr_schedule {text!r}: cannot read {piece.strip()!r}; {_SCHEDULE_FORM}") from None
        if not (math.isfinite(epoch) and epoch >= 0):
            raise ValueError(f"bad lr_schedule {text!r}: epoch {parts[0].strip()} is not >= 0; {_SCHEDULE_FORM}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"bad lr_schedule {text!r}: value {parts[1].strip()} is not > 0; {_SCHEDULE_FORM}")
        if pieces and epoch <= pieces[-1][0]:
            raise ValueError(f"bad lr_schedule {text!r}: epochs must increase; {_SCHEDULE_FORM}")
        pieces.append((epoch, value))
    return pieces


def format_lr_schedule(pieces) -> str:
    """The canonical text of parsed drops (what config.json stores): "75:0.1", not " 75.0 : 1e-1"."""
    def fmt(x):
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))

    return ",".join(f"{fmt(e)}:{fmt(v)}" for e, v in pieces)


def first_step_of_epoch(epoch: float, steps_per_epoch: int) -> int:
    """The 0-based index of the first gradient evaluation of (possibly fractional) effective epoch `epoch`."""
    return int(math.ceil(epoch * steps_per_epoch - 1e-9))


def learning_rate_schedule(learning_rate: float, lr_schedule: str | None, steps_per_epoch: int):
    """The optimizer's `learning_rate`: a float, or a PiecewiseConstantDecay over gradient evaluations.

    Keras evaluates the schedule at `iterations`, the 0-based index of the step
    being applied, and uses values[i+1] when step > boundaries[i]; a drop at
    effective epoch E therefore has boundary first_step(E) - 1. A drop at step 0
    replaces the initial rate; of two drops inside one step the later wins.
    """
    values, boundaries = [learning_rate], []
    for epoch, value in parse_lr_schedule(lr_schedule):
        first = first_step_of_epoch(epoch, steps_per_epoch)
        if first <= 0:
            values[-1] = value
        elif boundaries and first - 1 <= boundaries[-1]:
            values[-1] = value
        else:
            boundaries.append(first - 1)
            values.append(value)
    if not boundaries:
        return values[0]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def learning_rate_at(schedule, step: int) -> float:
    """The outer learning rate that `schedule` gives gradient evaluation `step` (0-based).

    Evaluates the schedule object itself (a float is constant). The value is
    the float32 the optimizer computes with, written as its shortest decimal
    (0.1, not 0.10000000149011612).
    """
    value = schedule(step) if callable(schedule) else schedule
    return float(str(np.float32(keras.ops.convert_to_numpy(value))))
