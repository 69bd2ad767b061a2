"""What kind of graph is being traced, and a `tf.cond` that stays a function call.

Two private TensorFlow APIs, each behind a fallback that is correct everywhere
(only slower):

* `tracing_for_xla()`: the check TensorFlow's own `pfor` makes to pick an
  XLA-friendly formulation.
* `step_cond(pred, true_fn)`: `tf.cond(pred, true_fn, no-op)` whose `If` op
  keeps `_lower_using_switch_merge = False`. By default TensorFlow lowers an
  `If` in a `tf.function` to Switch/Merge: the ops of *both* branches join the
  graph, and on every run the executor walks the untaken branch's ops as dead
  tensors. For a branch that runs once every L steps (an optimizer's outer
  step: a few ops per variable) that walk costs on every step; kept as a
  function call, the untaken branch costs one `If` op. XLA compiles either
  form to the same conditional, so under XLA nothing is changed.
"""

from __future__ import annotations

import tensorflow as tf


def tracing_for_xla():
    """True while tracing a function that XLA will compile (`jit_compile=True`).
    A private API: if it moves, False (the non-XLA form is correct everywhere)."""
    try:
        from control_opt._internal.tf_internals import control_flow_util
        from control_opt._internal.tf_internals import framework_ops as ops
        return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))
    except (ImportError, AttributeError):
        return False


def step_cond(pred, true_fn):
    """`true_fn()` (no outputs) when `pred`, else nothing; in a graph, one unlowered `If`.

    Eagerly this is `tf.cond` (a Python branch). While tracing, the `If` ops the
    call creates are marked as not to be lowered (see the module docstring);
    if the private attribute API moves, the `If` stays lowered: same results.
    """
    if tf.executing_eagerly():
        return tf.cond(pred, true_fn, lambda: None)
    graph = tf.compat.v1.get_default_graph()
    first_new = len(graph.get_operations())
    result = tf.cond(pred, true_fn, lambda: None)
    if not tracing_for_xla():
        for op in graph.get_operations()[first_new:]:
            if op.type in ("If", "StatelessIf"):
                try:
                    op._set_attr("_lower_using_switch_merge", tf.compat.v1.AttrValue(b=False))
                except (AttributeError, TypeError, ValueError):  # pragma: no cover - private API moved
                    pass
    return result
