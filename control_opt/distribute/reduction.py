"""One batched all-reduce of per-replica tensors, and a cross-device op that counts what it reduces.

See the package docstring and docs/distributed.md.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from control_opt._internal.tf_internals import cross_device_ops as _cross_device_ops
from control_opt._internal.tf_internals import ds_values as _ds_values



def _regroup(per_replica):
    return per_replica[0] if len(per_replica) == 1 else _ds_values.PerReplica(tuple(per_replica))


def all_reduce_mean(distribution, per_replica):
    """Mean over the replicas: one `batch_reduce_to` call, one tensor per dtype.

    Cross-replica context (a merge function). `per_replica[r]` is replica r's
    list of tensors (same shapes and dtypes on every replica); they are
    flattened and concatenated per dtype, so the strategy sees one reduction
    (of one flat vector per dtype) whatever the number of variables. Returns
    `out[r][i]`, the mean of tensor i, on replica r's device (r over this
    worker's replicas). One replica in sync: no communication.
    """
    n = len(per_replica)  # the replicas of this worker
    if distribution.num_replicas_in_sync == 1:
        return [list(per_replica[0])]
    # Static shapes (variables have them): a shape tensor made here and captured
    # by Keras' `steps_per_execution` loop would be left unfed.
    shapes = [tensor.shape.as_list() for tensor in per_replica[0]]
    sizes = [tensor.shape.num_elements() for tensor in per_replica[0]]
    dtypes = sorted({tensor.dtype.name for tensor in per_replica[0]})
    devices = distribution.extended.worker_devices
    groups, pairs = [], []
    for dtype in dtypes:
        chosen = [i for i, tensor in enumerate(per_replica[0]) if tensor.dtype.name == dtype]
        flat = []
        for r in range(n):
            with tf.device(devices[r]):
                flat.append(tf.concat([tf.reshape(per_replica[r][i], [-1]) for i in chosen], axis=0))
        groups.append(chosen)
        value = _ds_values.PerReplica(tuple(flat))
        pairs.append((value, value))
    # `batch_reduce_to`, not `reduce_to`: MirroredStrategy sends CPU reductions of
    # `reduce_to` to a fresh ReductionToOneDevice, bypassing its cross-device ops.
    reduced = distribution.extended.batch_reduce_to(tf.distribute.ReduceOp.MEAN, pairs)
    out = [[None] * len(per_replica[0]) for _ in range(n)]
    for chosen, mean in zip(groups, reduced):
        means = distribution.experimental_local_results(mean)
        for r in range(n):
            with tf.device(devices[r]):
                parts = tf.split(means[r], [sizes[i] for i in chosen], axis=0)
                for i, part in zip(chosen, parts):
                    out[r][i] = tf.reshape(part, shapes[i])
    return out


class CountingReduction(_cross_device_ops.ReductionToOneDevice):
    """`tf.distribute.ReductionToOneDevice` that counts its reductions.

    Only what goes through the strategy's cross-device ops is seen:
    `batch_reduce_to` (Keras' gradient all-reduce, `all_reduce_mean`), not
    the `reduce_to` that metrics' reads use on CPU.

    `traced`: one `(reduce_op, [element counts])` per call traced (a call
    inside a `tf.cond` branch counts once per trace, whether or not it runs).
    `reductions` and `bytes_reduced`: runtime counters (`tf.Variable`, int64)
    of the tensors actually reduced and of their bytes (one replica's input). For tests and
    benchmarks: `MirroredStrategy(devices, cross_device_ops=CountingReduction())`.
    """

    def __init__(self):
        super().__init__()
        with tf.init_scope():
            self.reductions = tf.Variable(0, dtype=tf.int64, trainable=False, name="reductions")
            self.bytes_reduced = tf.Variable(0, dtype=tf.int64, trainable=False, name="bytes_reduced")
        self.traced = []
        self._depth = 0  # ReductionToOneDevice's batch reduce calls its own reduce: count once

    def _count(self, reduce_op, values):
        first = [v.values[0] if isinstance(v, _ds_values.DistributedValues) else v for v in values]
        self.traced.append((reduce_op, [int(np.prod(t.shape)) for t in first]))
        nbytes = sum(int(np.prod(t.shape)) * t.dtype.size for t in first)
        self.reductions.assign_add(len(values))
        self.bytes_reduced.assign_add(nbytes)

    def reduce_implementation(self, reduce_op, per_replica_value, destinations, options):
        if not self._depth:
            self._count(reduce_op, [per_replica_value])
        self._depth += 1
        try:
            return super().reduce_implementation(reduce_op, per_replica_value, destinations, options)
        finally:
            self._depth -= 1

    def batch_reduce_implementation(self, reduce_op, value_destination_pairs, options):
        if not self._depth:
            self._count(reduce_op, [value for value, _ in value_destination_pairs])
        self._depth += 1
        try:
            return super().batch_reduce_implementation(reduce_op, value_destination_pairs, options)
        finally:
            self._depth -= 1

    def reset(self):
        self.traced.clear()
        self.reductions.assign(0)
        self.bytes_reduced.assign(0)
