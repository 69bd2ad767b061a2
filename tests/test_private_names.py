"""Canary: every private Keras and TensorFlow name the library relies on, with the signature we use.

The optimizers override and call private methods of Keras' optimizer, the
runner reads private attributes of a compiled model, and the distribute and
PDE code import private TensorFlow modules (control_opt/_internal/tf_internals.py).
None of that is API: a new release may rename or re-sign it, and the library
would then fail oddly or, worse, train wrongly. Each check here fails with a
message naming the installed TensorFlow and Keras versions and what changed
(`tf_internals.changed_message`). requirements.txt pins the tested versions.

`test_every_private_keras_name_used_is_checked` scans control_opt/ and
experiments/ so that a new reliance cannot go unchecked.
"""

import importlib
import inspect
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from control_opt._internal import tf_internals
from control_opt._internal.tf_internals import changed_message

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Private methods of keras.optimizers.Optimizer: the parameters (after self) with
# which the optimizers override (o) or call (c) them.
KERAS_OPTIMIZER_METHODS = {
    "_backend_apply_gradients": ("grads", "trainable_variables"),  # o: anchored.py
    "_backend_update_step": ("grads", "trainable_variables", "learning_rate"),  # o, c
    "_clip_gradients": ("grads",),  # c
    "_apply_weight_decay": ("variables",),  # c; o: elastic_sgd.py (applied inside its step)
    "_use_weight_decay": ("variable",),  # c: elastic_sgd.py (exclude_from_weight_decay honoured)
    "_var_key": ("variable",),  # c
    "_all_reduce_sum_gradients": ("grads_and_vars",),  # c
    "_get_variable_index": ("variable",),  # c
}
# Private attributes of a built Keras optimizer that the optimizers read.
KERAS_OPTIMIZER_ATTRIBUTES = ("_distribution_strategy", "_trainable_variables", "_trainable_variables_indices")
# Private attributes of a compiled (and fit) Keras model that experiments/training/callbacks.py reads.
KERAS_MODEL_ATTRIBUTES = ("_loss_tracker", "_compile_metrics", "_distribute_strategy")

# Private TensorFlow callables: (object, attribute, parameters we call it with).
TF_CALLABLES = [
    (tf_internals.distribute_lib, "_get_default_strategy", ()),
    (tf_internals.distribute_lib, "get_update_replica_id", ()),
    (tf_internals.ds_values.PerReplica, "__init__", ("self", "values")),
    (tf_internals.cross_device_ops.ReductionToOneDevice, "__init__",
     ("self", "reduce_to_device", "accumulation_fn")),
    (tf_internals.cross_device_ops.ReductionToOneDevice, "reduce_implementation",
     ("self", "reduce_op", "per_replica_value", "destinations", "options")),
    (tf_internals.cross_device_ops.ReductionToOneDevice, "batch_reduce_implementation",
     ("self", "reduce_op", "value_destination_pairs", "options")),
    (tf_internals.xla, "dynamic_slice", ("input", "start_indices", "size_indices", "name")),
    (tf_internals.xla, "dynamic_update_slice", ("input", "update", "indices", "name")),
    (tf.Operation, "_set_attr", ("self", "attr_name", "attr_value")),  # graph_modes.step_cond
    (tf.__internal__.distribute.interim, "maybe_merge_call", ("fn", "strategy", "args", "kwargs")),
]


def _parameters(function):
    return tuple(inspect.signature(function).parameters)


def _check_parameters(owner_name, name, function, expected):
    got = _parameters(function)
    assert got == tuple(expected), changed_message(
        f"{owner_name}.{name} now takes {got}, control_opt calls it with {tuple(expected)}")


@pytest.mark.parametrize("name", sorted(KERAS_OPTIMIZER_METHODS))
def test_keras_optimizer_private_methods(name):
    method = getattr(keras.optimizers.Optimizer, name, None)
    assert callable(method), changed_message(f"keras.optimizers.Optimizer has no method {name}")
    _check_parameters("keras.optimizers.Optimizer", name, method, ("self",) + KERAS_OPTIMIZER_METHODS[name])


class _Recording(keras.optimizers.SGD):
    """SGD that records the private hooks Keras calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def _backend_apply_gradients(self, grads, trainable_variables):
        self.calls.append("_backend_apply_gradients")
        super()._backend_apply_gradients(grads, trainable_variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self.calls.append("_backend_update_step")
        super()._backend_update_step(grads, trainable_variables, learning_rate)


def test_keras_routes_apply_gradients_through_the_overridden_hooks():
    # AnchoredOptimizer replaces `_backend_apply_gradients`: Keras must still call it
    # from `apply_gradients`, and its own version must still call `_backend_update_step`.
    variables = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.zeros((), np.float32))]
    optimizer = _Recording(learning_rate=0.25)
    optimizer.apply_gradients(zip([tf.constant([1.0, 2.0, 3.0]), tf.constant(4.0)], variables))
    assert optimizer.calls == ["_backend_apply_gradients", "_backend_update_step"], changed_message(
        f"keras.optimizers.SGD.apply_gradients called {optimizer.calls}, control_opt overrides "
        "_backend_apply_gradients and _backend_update_step")
    np.testing.assert_allclose(variables[0].numpy(), [0.75, 0.5, 0.25])
    np.testing.assert_allclose(variables[1].numpy(), -1.0)


def test_keras_optimizer_private_attributes():
    variables = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.zeros((2, 2), np.float32))]
    optimizer = keras.optimizers.SGD()
    optimizer.build(variables)
    for name in KERAS_OPTIMIZER_ATTRIBUTES:
        assert hasattr(optimizer, name), changed_message(f"a built keras.optimizers.SGD has no attribute {name}")
    assert optimizer._distribution_strategy is tf.distribute.get_strategy(), changed_message(
        "keras Optimizer._distribution_strategy is no longer the tf.distribute strategy it was built under")
    assert list(optimizer._trainable_variables) == variables, changed_message(
        "keras Optimizer._trainable_variables is no longer the list of variables it was built on")
    indices = {optimizer._var_key(v): i for i, v in enumerate(variables)}
    assert dict(optimizer._trainable_variables_indices) == indices, changed_message(
        "keras Optimizer._trainable_variables_indices no longer maps _var_key(variable) to its index")
    assert [optimizer._get_variable_index(v) for v in variables] == [0, 1], changed_message(
        "keras Optimizer._get_variable_index no longer gives the build-order index")


def test_keras_model_private_metric_attributes():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), verbose=0)
    for name in KERAS_MODEL_ATTRIBUTES:
        assert hasattr(model, name), changed_message(f"a compiled keras.Model has no attribute {name}")
    # callbacks._mean_metrics: the loss tracker and each compiled metric are running
    # means whose first two variables are the total and the count.
    metrics = [model._loss_tracker] + list(model._compile_metrics.metrics)
    assert [m.name for m in metrics] == ["loss", "mae"], changed_message(
        f"keras.Model._loss_tracker / _compile_metrics.metrics now give {[m.name for m in metrics]}")
    for metric in metrics:
        names = [v.name for v in metric.variables[:2]]
        assert names == ["total", "count"], changed_message(
            f"Keras metric {metric.name}'s first variables are now {names}, not the running total and count")
    # experiments/training/session.compile_model: a model compiled outside any strategy scope has none
    # (Keras then defers building the optimizer into the first traced step); inside one, it has it.
    assert model._distribute_strategy is None, changed_message(
        "keras.Model._distribute_strategy is no longer None for a model compiled outside a strategy scope")
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        scoped = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        scoped.compile(optimizer="sgd", loss="mse")
    assert scoped._distribute_strategy is strategy, changed_message(
        "keras.Model._distribute_strategy is no longer the strategy it was compiled under")


@pytest.mark.parametrize("owner, name, expected", TF_CALLABLES,
                         ids=[f"{getattr(o, '__name__', o)}.{n}" for o, n, _ in TF_CALLABLES])
def test_tensorflow_private_callables(owner, name, expected):
    owner_name = getattr(owner, "__name__", repr(owner))
    function = getattr(owner, name, None)
    assert callable(function), changed_message(f"{owner_name} has no {name}")
    _check_parameters(owner_name, name, function, expected)


def test_tensorflow_private_classes_and_optional_internals():
    values = tf_internals.ds_values
    assert issubclass(values.PerReplica, values.DistributedValues), changed_message(
        "tensorflow's PerReplica is no longer a DistributedValues")
    assert tf_internals.distribute_lib._get_default_strategy() is tf.distribute.get_strategy(), changed_message(
        "distribute_lib._get_default_strategy() is not the strategy outside any scope")
    assert tf_internals.distribute_lib.get_update_replica_id() is None, changed_message(
        "distribute_lib.get_update_replica_id() is not None outside an update")
    # graph_modes.tracing_for_xla: optional (a fallback exists), but losing it silently costs speed.
    from control_opt._internal.tf_internals import control_flow_util, framework_ops
    _check_parameters("control_flow_util", "GraphOrParentsInXlaContext",
                      control_flow_util.GraphOrParentsInXlaContext, ("graph",))
    assert callable(framework_ops.get_default_graph)
    # experiments/training/run.py: op determinism switched off again after a run.
    from tensorflow.python.framework import config as tf_config
    for name in ("is_op_determinism_enabled", "disable_op_determinism"):
        assert callable(getattr(tf_config, name, None)), changed_message(
            f"tensorflow.python.framework.config has no {name}")


def test_a_missing_internal_fails_with_the_versions(monkeypatch):
    """Removing a name the library imports makes `tf_internals` (hence `import control_opt`)
    fail with a message naming the versions and the missing name, not a bare ImportError."""
    monkeypatch.delattr(tf_internals.distribute_lib, "get_update_replica_id")
    try:
        with pytest.raises(ImportError) as raised:  # reload makes a new exception class
            importlib.reload(tf_internals)
    finally:
        monkeypatch.undo()
        importlib.reload(tf_internals)
    message = str(raised.value)
    for part in ("distribute_lib has no get_update_replica_id", f"TensorFlow {tf.__version__}",
                 f"Keras {keras.__version__}", "tested with TensorFlow 2.21.x, Keras 3.15.x"):
        assert part in message, message
    assert type(raised.value).__name__ == "TensorFlowInternalsChanged"


def test_a_missing_optional_internal_is_an_import_error_with_the_versions(monkeypatch):
    monkeypatch.setitem(tf_internals._OPTIONAL, "framework_ops",
                        ("tensorflow.python.framework.ops", ["no_such_function"]))
    monkeypatch.delitem(vars(tf_internals), "framework_ops", raising=False)
    with pytest.raises(ImportError, match=r"ops has no no_such_function.*TensorFlow .*Keras "):
        from control_opt._internal.tf_internals import framework_ops  # noqa: F401
    from control_opt._internal import graph_modes
    assert graph_modes.tracing_for_xla() is False  # the documented fallback


def test_the_tested_versions_are_the_installed_and_pinned_ones():
    """The versions the guard names are those pinned in requirements.txt and pyproject.toml."""
    for path in ("requirements.txt", "pyproject.toml"):
        text = open(os.path.join(ROOT, path)).read()
        assert re.search(r"keras>=%s\.\d+,<3\.16" % re.escape(tf_internals.TESTED_KERAS), text), path
        assert f"tensorflow=={tf_internals.TESTED_TENSORFLOW}." in text, path
    assert keras.__version__.startswith(tf_internals.TESTED_KERAS + "."), changed_message("Keras version")
    assert tf.__version__.startswith(tf_internals.TESTED_TENSORFLOW + "."), changed_message("TensorFlow version")


def _private_self_names(text):
    return set(re.findall(r"\bself\._([a-z]\w*)", text))


def _defined_names(text):
    """Private names our own code defines (methods, assignments, class attributes)."""
    found = set(re.findall(r"\bdef _([a-z]\w*)", text))
    found |= set(re.findall(r"\bself\._([a-z]\w*)\s*(?::[^=\n]*)?=(?!=)", text))
    found |= set(re.findall(r"^\s+_([a-z]\w*)\s*(?::[^=\n]*)?=", text, re.M))
    found |= set(re.findall(r"\bself\._([a-z]\w*)(?:\s*,\s*self\._\w+)+\s*=", text))
    found |= set(re.findall(r",\s*self\._([a-z]\w*)\s*=", text))
    return found


def test_every_private_keras_name_used_is_checked():
    """Every `self._name` the code reads that Keras (not our code) defines is in the tables above,
    and so is every private Keras optimizer method our optimizers override."""
    used, defined, overridden = set(), set(), set()
    keras_names = {name for cls in keras.optimizers.SGD.__mro__[:-1] for name in vars(cls)}
    sources = []
    for top in ("control_opt", "experiments"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            sources += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
    for path in sources:
        text = open(path).read()
        used |= _private_self_names(text)
        defined |= _defined_names(text)
        if os.sep + "optimizers" + os.sep in path:
            overridden |= {name for name in re.findall(r"\bdef (_[a-z]\w*)", text) if name in keras_names}
    optimizer = keras.optimizers.SGD()
    optimizer.build([keras.Variable(np.ones(2, np.float32))])
    from_keras = {"_" + name for name in used - defined if hasattr(optimizer, "_" + name)}
    checked = set(KERAS_OPTIMIZER_METHODS) | set(KERAS_OPTIMIZER_ATTRIBUTES)
    unchecked = sorted((from_keras | overridden) - checked)
    assert not unchecked, (f"control_opt uses the private Keras optimizer names {unchecked} ({tf_internals.installed_versions()}): "
                           "add them, with the signature used, to tests/test_private_names.py")
