"""`graph_modes.step_cond`: the branch runs exactly when asked, and the `If` stays a function call."""

import numpy as np
import tensorflow as tf

from control_opt._internal import graph_modes


def _lowering(op):
    """The op's `_lower_using_switch_merge` attribute, None where it has none."""
    try:
        return op.get_attr("_lower_using_switch_merge")
    except ValueError:
        return None


def _if_ops(concrete):
    return [op for op in concrete.graph.get_operations() if op.type in ("If", "StatelessIf")]


def test_branch_runs_only_when_the_predicate_holds_eagerly_and_traced():
    counter = tf.Variable(0)

    def bump():
        counter.assign_add(1)

    graph_fn = tf.function(lambda pred: graph_modes.step_cond(pred, bump))
    for fn in (lambda pred: graph_modes.step_cond(pred, bump), graph_fn):
        counter.assign(0)
        for pred in (True, False, True, False, False):
            fn(tf.constant(pred))
        assert int(counter) == 2


def test_the_if_is_not_lowered_in_a_graph_and_left_alone_under_xla():
    counter = tf.Variable(0.0)

    def bump():
        counter.assign_add(1.0)

    def step(pred):
        graph_modes.step_cond(pred, bump)
        return counter.read_value()

    plain = tf.function(step).get_concrete_function(tf.TensorSpec([], tf.bool))
    (op,) = _if_ops(plain)
    assert _lowering(op) is False
    # The control: a plain tf.cond is marked for lowering.
    lowered = tf.function(lambda pred: tf.cond(pred, bump, lambda: None))
    (op,) = _if_ops(lowered.get_concrete_function(tf.TensorSpec([], tf.bool)))
    assert _lowering(op) is True
    xla = tf.function(step, jit_compile=True)
    counter.assign(0.0)
    assert float(xla(tf.constant(True))) == 1.0 and float(xla(tf.constant(False))) == 1.0
    (op,) = _if_ops(xla.get_concrete_function(tf.TensorSpec([], tf.bool)))
    assert _lowering(op) is not False


def test_tracing_for_xla_tells_the_two_apart():
    seen = []

    def probe(x):
        seen.append(graph_modes.tracing_for_xla())
        return x + 1

    tf.function(probe)(tf.constant(1.0))
    tf.function(probe, jit_compile=True)(tf.constant(1.0))
    assert seen == [False, True]
    np.testing.assert_equal(graph_modes.tracing_for_xla(), False)  # eagerly
