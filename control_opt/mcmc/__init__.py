"""MCMC on the local Gibbs measure `rho(w'; w) ∝ exp(-beta f(w') - beta gamma/2 |w - w'|^2)`.

  gibbs         `local_gibbs_log_prob` (and its energy)
  sgld_kernel   `StochasticGradientLangevin`, a `tfp.mcmc` kernel on the shared Langevin step
                (composes with MetropolisHastings = MALA, step-size adaptation,
                TransformedTransitionKernel)
  step_size     default SGLD steps: curvature-blind, and from the curvature at the anchor
  estimators    `local_entropy_gradient` (SGLD, MALA, HMC, NUTS) with ESS, R-hat and,
                for SGLD, a discretization-bias diagnostic
  diagnostics   `effective_sample_size` (pooled over chains, never negative)
"""

from control_opt.mcmc.diagnostics import effective_sample_size
from control_opt.mcmc.estimators import LocalEntropyEstimate, local_entropy_gradient
from control_opt.mcmc.gibbs import local_gibbs_log_prob
from control_opt.mcmc.sgld_kernel import StochasticGradientLangevin

__all__ = [
    "LocalEntropyEstimate",
    "StochasticGradientLangevin",
    "effective_sample_size",
    "local_entropy_gradient",
    "local_gibbs_log_prob",
]
