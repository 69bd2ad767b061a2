"""Replica-local weights under `tf.distribute` (docs/distributed.md, "docs/math.md section 5").

Elastic-SGD and Parle give every replica of a strategy its **own** weights
`x_a`, coupled to a center `xbar`, instead of mirrored copies kept equal by a
gradient all-reduce. This package holds what that needs and what is not an
optimizer:

  replica_local(strategy)   scope under which the model is built: its trainable
                            variables become replica-local (`ON_READ`, `MEAN`)
  per_replica_slots(...)    scope under which an optimizer creates per-replica slots
  replica_statistics(...)   the model's batch-norm statistics made under replica_local
  replica_id()              this replica's index (0 without a strategy)
  local_devices(n)          n GPUs, else n logical CPU devices (configured if TF has not started)
  components(variable)      the per-device copies of a (distributed) variable
  read_components(variables)  each replica's values of several variables, read on its device
  stack_components / assign_components   per-replica state <-> stacked `[n, ...]` arrays
  all_reduce_mean(...)      one batched all-reduce (per dtype) of per-replica tensors
  CountingReduction         a `ReductionToOneDevice` that counts what it reduces

Modules: `replicas` (the scopes and per-device access), `reduction` (the
batched all-reduce and the counting cross-device op).

What TensorFlow does with replica-local (`ON_READ`) variables, and why the
helpers move state per device: a read in cross-replica context returns the
*mean* over replicas, and a cross-replica assign writes the same value to
every copy (docs/distributed.md). Per-replica state is therefore read and
written component by component (`components`), and saved stacked.
"""

from control_opt.distribute.reduction import CountingReduction, all_reduce_mean
from control_opt.distribute.replicas import (assign_components, components, is_replica_local,
                                             local_devices, per_replica_slots, read_components, replica_id,
                                             replica_local, replica_statistics, stack_components)

__all__ = ["CountingReduction", "all_reduce_mean", "assign_components", "components", "is_replica_local",
           "local_devices", "per_replica_slots", "read_components", "replica_id", "replica_local",
           "replica_statistics", "stack_components"]
