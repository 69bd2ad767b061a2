"""MCMC on the local Gibbs measure `rho(w'; w) ∝ exp(-beta f(w') - beta gamma/2 |w - w'|^2)`.

  gibbs         `local_gibbs_log_prob` (and its energy)
  sgld_kernel   `StochasticGradientLangevin`, a `tfp.mcmc` kernel on the shared Langevin step
  estimators    `local_entropy_gradient` (SGLD, MALA, HMC, NUTS) with ESS and R-hat
"""

from control_opt.mcmc.estimators import LocalEntropyEstimate, local_entropy_gradient
from control_opt.mcmc.gibbs import local_gibbs_log_prob
from control_opt.mcmc.sgld_kernel import StochasticGradientLangevin

__all__ = ["LocalEntropyEstimate", "StochasticGradientLangevin", "local_entropy_gradient", "local_gibbs_log_prob"]
