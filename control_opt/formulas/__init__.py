"""Update formulas written once, used by the Keras optimizers, the MCMC kernels and the SDE controls.

  local_entropy  the SGLD step on the local Gibbs measure, the running mean, the control, the scoping
  momentum       (Nesterov) momentum and Adam directions; the Parle code's form
  proximal       the proximal (Hopf-Lax) probe `w - t p`
"""

from control_opt.formulas import local_entropy, momentum, proximal

__all__ = ["local_entropy", "momentum", "proximal"]
