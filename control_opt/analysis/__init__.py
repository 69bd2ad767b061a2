"""Analysis of training dynamics: gradient noise, Hessian spectra, steady states, limit cycles.

Tools for Chaudhari and Soatto, "Stochastic gradient descent performs
variational inference, converges to limit cycles for deep networks" (ICLR
2018); the mathematics is in docs/analysis.md.

* Gradient noise (`per_example`, `diffusion`): `per_example_gradients`, the
  diffusion matrix `D(w)` as an operator (`diffusion_operator`) and its
  spectrum, trace, isotropy and numerical rank (`diffusion_spectrum`),
  SGD's temperature `sgd_temperature(eta, b) = eta / (2b)`.
* Hessian (`hessian`, `lanczos`, `density`, `trace`): `hessian_vector_product`,
  `hessian_eigenvalues` (Lanczos, full reorthogonalization, float64),
  `spectral_density` (stochastic Lanczos quadrature), `hessian_trace`
  (Hutchinson), `flatness_summary`; `local_gibbs_flatness` (the local-entropy
  gradient and the local Gibbs spread at trained weights, by MCMC); the generic `lanczos`,
  `stochastic_lanczos_quadrature`, `hutchinson_trace` on any symmetric operator.
* Steady states and limit cycles (`steady_state`, `trajectory`, `linear_sde`):
  `fokker_planck_steady_state`, `simulate_diffusion`, `stochastic_area`,
  `principal_components`, `power_spectrum`, `autocorrelation`, and the closed
  forms of the linear SDE (`linear_sde_stationary`).
"""

from control_opt.analysis._problem import LinearOperator
from control_opt.analysis.density import SpectralDensity, stochastic_lanczos_quadrature
from control_opt.analysis.diffusion import (DiffusionSpectrum, diffusion_operator, diffusion_spectrum,
                                            sgd_temperature, spectrum_summary)
from control_opt.analysis.hessian import (FlatnessSummary, HessianEigenvalues, flatness_summary, hessian_eigenvalues,
                                          hessian_operator, hessian_trace, hessian_vector_product, spectral_density)
from control_opt.analysis.lanczos import LanczosResult, RitzPairs, lanczos, lanczos_eigenvalues
from control_opt.analysis.local_gibbs import LocalGibbsFlatness, local_gibbs_flatness
from control_opt.analysis.linear_sde import LinearSteadyState, linear_sde_current, linear_sde_stationary
from control_opt.analysis.per_example import per_example_gradients
from control_opt.analysis.steady_state import (FokkerPlanckSolution, compare_potentials, fokker_planck_steady_state,
                                               histogram_density, simulate_diffusion)
from control_opt.analysis.trace import TraceEstimate, hutchinson_trace
from control_opt.analysis.trajectory import (PowerSpectrum, PrincipalComponents, StochasticArea, autocorrelation,
                                             power_spectrum, principal_components, project, stochastic_area)

__all__ = [
    "DiffusionSpectrum", "FlatnessSummary", "FokkerPlanckSolution", "HessianEigenvalues", "LanczosResult",
    "LinearOperator", "LinearSteadyState", "LocalGibbsFlatness", "PowerSpectrum", "PrincipalComponents", "RitzPairs", "SpectralDensity",
    "StochasticArea", "TraceEstimate",
    "autocorrelation", "compare_potentials", "diffusion_operator", "diffusion_spectrum", "flatness_summary",
    "fokker_planck_steady_state", "hessian_eigenvalues", "hessian_operator", "hessian_trace",
    "hessian_vector_product", "histogram_density", "hutchinson_trace", "lanczos", "lanczos_eigenvalues",
    "linear_sde_current", "linear_sde_stationary", "local_gibbs_flatness", "per_example_gradients", "power_spectrum",
    "principal_components", "project", "sgd_temperature", "simulate_diffusion", "spectral_density",
    "spectrum_summary", "stochastic_area", "stochastic_lanczos_quadrature",
]
