"""Outer rules: the direction `d` of the outer step `w <- w - eta d` from the control.

Mix-ins for `AnchoredOptimizer` subclasses (`class EntropySGD(MomentumOuterStep,
_LocalEntropyChain)`): each supplies `_init_outer`, `_build_outer` (its slots),
`_outer_direction(index, gradient, step)` and `_outer_config`. The formulas
themselves are written once in `control_opt.formulas.momentum`.
"""

from __future__ import annotations

from control_opt._internal.checks import check_nesterov, check_positive, check_unit_interval
from control_opt.formulas import momentum as momentum_lib

__all__ = ["AdamOuterStep", "MomentumOuterStep"]


class MomentumOuterStep:
    """Outer rule: SGD with (Nesterov) momentum on the control; buffer starts at 0."""

    def _init_outer(self, momentum, nesterov):
        self.momentum = check_unit_interval("momentum", momentum)
        self.nesterov = check_nesterov("nesterov", nesterov, "momentum", self.momentum)

    def _build_outer(self, var_list):
        self._outer_velocities = (self.add_optimizer_variables(var_list, "outer_velocity")
                                  if self.momentum else None)

    def _outer_direction(self, index, gradient, step):
        velocity = self._outer_velocities[index] if self.momentum else None
        direction, new_velocity = momentum_lib.momentum_direction(
            gradient, velocity, self.momentum, self.nesterov)
        if new_velocity is not None:
            self.assign(velocity, new_velocity)
        return direction

    def _outer_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class AdamOuterStep:
    """Outer rule: Adam on the control, its step counter the outer step k + 1."""

    def _init_outer(self, beta_1, beta_2, epsilon):
        self.beta_1 = check_unit_interval("beta_1", beta_1)
        self.beta_2 = check_unit_interval("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)

    def _build_outer(self, var_list):
        self._first_moments, self._second_moments = self.add_optimizer_variables(
            var_list, ["first_moment", "second_moment"])

    def _outer_direction(self, index, gradient, step):
        first, second = self._first_moments[index], self._second_moments[index]
        direction, new_first, new_second = momentum_lib.adam_direction(
            gradient, first, second, step, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        self.assign(first, new_first)
        self.assign(second, new_second)
        return direction

    def _outer_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
