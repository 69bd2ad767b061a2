"""The center `xbar` of the replica-local optimizers, and the elastic coupling to it.

One part, composed into `ElasticSGD` and `Parle` (docs/distributed.md): the
center slots, the count of communications, the one all-reduce that moves the
center (the model's batch-norm statistics travel in it), the coupling term of
the control, and the exchange that puts the center into the model.

    sync (one all-reduce):  xbar = mean_a y_a          (y: x_a, or Parle's mu_a)
    EASGD's moving center:  xbar <- xbar + n alpha (mean_a x_a - xbar)
    coupled control:        a_a + rho (x_a - xbar)

Which weights the model holds (`put_center_in` / `take_center_out`, per
replica): during training the replica's own weights; the center swapped in
(end of `fit`, `AnchorSwap`), each replica's weights wait in its center slot,
so the center slots are per replica (they hold the same `xbar` on every
replica during training). The value the slot held before is not kept (the
slot then holds the reported center when the weights go back), unless
`keep_last=True`: a second slot (`held_center`) keeps it, for an optimizer
that reads the last center between communications (Elastic-SGD's replicas'
mean with `communication_period > 1`). Elastic-SGD with EASGD's moving center
reports the center slot itself, so the exchange there is exact without it.
"""

from __future__ import annotations

import tensorflow as tf

from control_opt import distribute
from control_opt._internal import checks
from control_opt.distribute.reduction import _regroup

__all__ = ["Center", "check_rho"]


def check_rho(rho):
    """`rho`, None (the optimizer's default rule) or a number >= 0."""
    return None if rho is None else checks.check_non_negative("rho", rho)


class Center:
    """The center slots of an optimizer and what is done with them (module docstring).

    Made in the optimizer's `build`, under `distribute.per_replica_slots` (the
    slots are per replica): `Center(optimizer, var_list, keep_last=...)`.
    The optimizer keeps it in an untracked attribute; its variables are the
    optimizer's (`optimizer.variables`, saved with it).
    """

    def __init__(self, optimizer, var_list, *, keep_last=False):
        strategy = optimizer._distribution_strategy
        self.slots = optimizer.add_copies(var_list, "center")
        self.held = optimizer.add_copies(var_list, "held_center") if keep_last else None
        # Mirrored (aggregation other than NONE): one count for every replica.
        self.syncs = optimizer.add_variable(shape=(), initializer="zeros", dtype="int64",
                                            aggregation="only_first_replica", name="syncs")
        # The model's statistics (weak references kept by `replica_local`), not the optimizer's state.
        self.statistics = distribute.replica_statistics(strategy, var_list)
        self.num_replicas = strategy.num_replicas_in_sync

    # ------------------------------------------------------------- communication
    def mean(self, distribution, variables):
        """`out[r][i]`: the mean over replicas of `variables[i]` (cross-replica context), one
        all-reduce. The model's statistics (batch-norm moving mean and variance) travel in
        the same all-reduce and every replica's copy is set to their mean: the statistics
        are defined at the center, not by one replica."""
        statistics = list(self.statistics)
        if not statistics or self.num_replicas == 1:
            return distribute.all_reduce_mean(distribution, distribute.read_components(variables)) \
                if variables else None
        k = len(variables)
        mean = distribute.all_reduce_mean(distribution, distribute.read_components(list(variables) + statistics))
        for i, variable in enumerate(statistics):
            for r, copy in enumerate(distribute.components(variable)):
                with tf.device(copy.device):
                    copy.assign(mean[r][k + i])
        return [row[:k] for row in mean]

    def assign(self, values):
        """Center copy r of variable i <- `values[r][i]`; counts one communication."""
        for i, slot in enumerate(self.slots):
            for r, copy in enumerate(distribute.components(slot)):
                with tf.device(copy.device):
                    copy.assign(values[r][i])
        self.syncs.assign_add(1)

    def read(self):
        """`out[r][i]`: replica r's center of variable i."""
        return distribute.read_components(self.slots)

    @staticmethod
    def pull(distribution, controls, indices, weights, centers, rho_of):
        """The coupled controls `a_a + rho (x_a - xbar)`, one per control, one value per replica.

        `controls[k]`: the controls (one per replica) of the variable of index `indices[k]` among the
        optimizer's variables (a step may update a subset: a frozen layer); `weights[r][i]` (x_a) and
        `centers[r][i]`: per-replica reads of every variable; `rho_of(r, dtype)`: rho on replica r."""
        out = []
        for i, control in zip(indices, controls):
            values = []
            for r, value in enumerate(distribution.experimental_local_results(control)):
                with tf.device(value.device):
                    values.append(value + rho_of(r, value.dtype) * (weights[r][i] - centers[r][i]))
            out.append(_regroup(values))
        return out

    # ------------------------------------------------------- what the model holds
    def put_in(self, index, variable, report):
        """Cross-replica context, per replica r: the center slot <- the model's value (x_a
        or the probe), the model <- `report[r]` (the center to report); the last center
        first goes to `held_center` when it is kept."""
        pairs = zip(distribute.components(variable), distribute.components(self.slots[index]))
        for r, (copy, slot) in enumerate(pairs):
            with tf.device(copy.device):
                if self.held is not None:
                    distribute.components(self.held[index])[r].assign(tf.identity(slot))
                slot.assign(tf.identity(copy))
                copy.assign(report[r])

    def take_out(self, index, variable):
        """Inverse of `put_in`, per replica (cross-replica context)."""
        pairs = zip(distribute.components(variable), distribute.components(self.slots[index]))
        for r, (copy, slot) in enumerate(pairs):
            with tf.device(copy.device):
                reported = tf.identity(copy)
                copy.assign(tf.identity(slot))
                slot.assign(reported if self.held is None else tf.identity(distribute.components(self.held[index])[r]))

    def take_out_one(self, optimizer, index, variable):
        """`take_out` for one replica's variable (update context, inside a training step)."""
        slot = self.slots[index]
        reported = tf.identity(variable)
        optimizer.assign(variable, slot)
        optimizer.assign(slot, reported if self.held is None else self.held[index])
