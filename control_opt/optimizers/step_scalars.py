"""The per-step scalars of an anchored optimizer, handed to every phase as an argument."""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

__all__ = ["StepScalars"]


class StepScalars(NamedTuple):
    """The scalars shared by every variable's update in one step.

    Built once per step by `AnchoredOptimizer._step_scalars`, in replica
    context (so under a `tf.distribute` strategy each replica has its own, and
    `merge_call` / `extended.update` hand each device its own copy), and passed
    down as an argument, never stored on the optimizer.

    Fields:
      step: the optimizer's `iterations` before this step (int64).
      outer: k = step // L, the number of completed outer steps.
      position: l = step % L, the position in the inner loop.
      anchor_in_model: bool, the model's variables hold the anchor (the probe
        is swapped back before anything else happens).
      chain: `{dtype name: subclass scalars}` from `_chain_scalars(k, dtype, position=l)`
        (e.g. `{"gamma": gamma_k}`), one entry per dtype of the updated
        variables, so a float64 model gets float64 scalars.
      noise: `{variable index: tensor}`, this step's noise for the chain,
        drawn once per step (`AnchoredOptimizer.draw_step_noise`), or None
        when the chain draws none.
    """

    step: tf.Tensor
    outer: tf.Tensor
    position: tf.Tensor
    anchor_in_model: tf.Tensor
    chain: dict
    noise: dict | None = None
