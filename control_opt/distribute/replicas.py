"""Replica-local weights: the scopes that create them, and per-device access to their copies.

See the package docstring and docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from control_opt._internal.tf_internals import distribute_lib as _distribute_lib
from control_opt._internal.tf_internals import ds_values as _ds_values


def _tf_variable(variable):
    """The `tf.Variable` behind a Keras variable (a `tf.Variable` is already one)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


# strategy -> weak references to the model statistics created under `replica_local(strategy)`.
_STATISTICS = weakref.WeakKeyDictionary()


def _is_statistic(kwargs):
    """A non-trainable floating-point variable that its layer writes per replica (Keras' default
    aggregation): batch-norm moving mean / variance. Not optimizer counters or flags (another
    aggregation), not metrics (`SUM`, `ON_READ`), not seed states (integers)."""
    dtype = kwargs.get("dtype")
    aggregation = kwargs.get("aggregation")
    synchronization = kwargs.get("synchronization")
    return (not kwargs.get("trainable", True) and dtype is not None and tf.as_dtype(dtype).is_floating
            and aggregation in (None, tf.VariableAggregation.NONE)
            and synchronization in (None, tf.VariableSynchronization.AUTO, tf.VariableSynchronization.ON_WRITE))


def _root(name):
    return name.split("/", 1)[0].split(":", 1)[0]


def replica_statistics(strategy, variables):
    """The model statistics (batch-norm moving mean and variance: non-trainable floating-point
    variables that each replica writes from its own batches) created under
    `replica_local(strategy)` in the model of `variables`: those whose path starts like one of
    `variables`' (the model's name for a Sequential or subclassed model, the layer's name in a
    functional one). Replica-local optimizers average them across replicas at each
    communication and before the center is put in the model (docs/distributed.md 5.6)."""
    if not _in_a_strategy(strategy):
        return ()
    roots = {_root(getattr(v, "path", None) or _tf_variable(v).name) for v in variables}
    live = [ref() for ref in _STATISTICS.get(strategy, ())]
    return tuple(v for v in live if v is not None and _root(v.name) in roots)


def _in_a_strategy(strategy):
    """True for a strategy other than TensorFlow's default (no-op) one."""
    return strategy is not None and strategy is not _distribute_lib._get_default_strategy()


@contextlib.contextmanager
def replica_local(strategy=None):
    """Scope under which a model gets replica-local trainable weights.

    Inside it (it also enters `strategy.scope()`), every trainable variable
    created is `synchronization=ON_READ, aggregation=MEAN`: each replica holds
    and updates its own copy, and a read outside the replicas (`get_weights`,
    `save`) returns the mean over the replicas. Build *and compile* the model,
    and make the optimizer, inside it:

    >>> strategy = tf.distribute.MirroredStrategy()
    >>> with control_opt.replica_local(strategy):
    ...     model = build_model()
    ...     model.compile(optimizer=control_opt.Parle(), loss=...)
    >>> model.fit(dataset)  # the strategy's ordinary input distribution

    Without a strategy (`strategy=None` and none in scope) it changes nothing:
    one replica, plain variables. Non-trainable model variables (e.g. batch
    norm statistics) are made as the strategy makes them, and each replica
    updates its own copy from its own batches; they are recorded here
    (`replica_statistics`) so that Elastic-SGD and Parle average them at each
    communication and before evaluation or saving (docs/distributed.md 5.6).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with contextlib.ExitStack() as stack:
        stack.enter_context(strategy.scope())
        if _in_a_strategy(strategy):
            statistics = _STATISTICS.setdefault(strategy, [])

            def creator(next_creator, **kwargs):
                if kwargs.get("trainable", True):
                    kwargs["synchronization"] = tf.VariableSynchronization.ON_READ
                    kwargs["aggregation"] = tf.VariableAggregation.MEAN
                elif _is_statistic(kwargs):
                    variable = next_creator(**kwargs)
                    statistics[:] = [ref for ref in statistics if ref() is not None] + [weakref.ref(variable)]
                    return variable
                return next_creator(**kwargs)
            stack.enter_context(tf.variable_creator_scope(creator))
        yield strategy


@contextlib.contextmanager
def per_replica_slots(strategy):
    """Scope under which an optimizer's slots become per-replica.

    Non-trainable variables created with `aggregation=NONE` (Keras' default for
    optimizer slots) become `ON_READ, MEAN`; variables asking for another
    aggregation (`iterations`, flags with `only_first_replica`) stay mirrored.
    No effect without a strategy.
    """
    if not _in_a_strategy(strategy):
        yield
        return

    def creator(next_creator, **kwargs):
        aggregation = kwargs.get("aggregation")
        if not kwargs.get("trainable", False) and aggregation in (None, tf.VariableAggregation.NONE):
            kwargs["synchronization"] = tf.VariableSynchronization.ON_READ
            kwargs["aggregation"] = tf.VariableAggregation.MEAN
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def local_devices(n):
    """Names of `n` local devices for a `MirroredStrategy`: the first n GPUs if there
    are that many, else n logical CPU devices, configured here when TensorFlow has
    not initialized its devices yet (later it cannot change them).

    Raises:
      ValueError: fewer than n devices, and they can no longer be configured.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of replicas must be >= 1, got {n}.")
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= n:
        return [f"/gpu:{i}" for i in range(n)]
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu)
    if configured is None or len(configured) < n:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:
            pass  # TensorFlow has already initialized its devices
    available = len(tf.config.list_logical_devices("CPU"))
    if available < n:
        raise ValueError(
            f"{n} replicas need {n} devices, but there are {len(gpus)} GPU(s) and {available} CPU device(s); "
            "logical CPU devices can only be added before TensorFlow initializes its devices (start a fresh "
            "process, or configure them first with tf.config.set_logical_device_configuration).")
    return [f"/cpu:{i}" for i in range(n)]


def is_replica_local(variable):
    """True for a replica-local (`ON_READ`) variable of a strategy."""
    variable = _tf_variable(variable)
    return isinstance(variable, _ds_values.DistributedVariable) and \
        variable.synchronization == tf.VariableSynchronization.ON_READ


def replica_id():
    """This replica's index in its sync group: a tensor in a replica function of
    a strategy (also inside `extended.update`, the device's index), 0 elsewhere."""
    update_id = _distribute_lib.get_update_replica_id()
    if update_id is not None:
        return tf.constant(update_id, tf.int32)
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def components(variable):
    """The per-device copies of `variable`, in replica order (one for a plain variable).

    Reading a copy gives that replica's value whatever the context (reading a
    replica-local variable itself in cross-replica context gives the mean)."""
    variable = _tf_variable(variable)
    if isinstance(variable, _ds_values.DistributedValues):
        return tuple(variable.values)
    return (variable,)


def read_components(variables):
    """`out[r][i]`: replica r's value of `variables[i]`, read on its device (in any context;
    a read of a replica-local variable itself in cross-replica context gives the mean)."""
    copies = [components(variable) for variable in variables]
    out = []
    for r in range(len(copies[0])):
        row = []
        for c in copies:
            with tf.device(c[r].device):
                row.append(tf.identity(c[r]))
        out.append(row)
    return out


def stack_components(variable):
    """Numpy `[n, ...]`: the n replicas' values of `variable` (eager)."""
    return np.stack([np.asarray(copy.numpy()) for copy in components(variable)])


def assign_components(variable, stacked):
    """Inverse of `stack_components`: copy i gets `stacked[i]` (eager).

    Raises:
      ValueError: `stacked` holds another number of replicas.
    """
    copies = components(variable)
    stacked = np.asarray(stacked)
    if stacked.shape[0] != len(copies):
        raise ValueError(f"per-replica state of {getattr(variable, 'name', variable)!r} was saved with "
                         f"{stacked.shape[0]} replicas; this model has {len(copies)}.")
    for copy, value in zip(copies, stacked):
        copy.assign(value)
