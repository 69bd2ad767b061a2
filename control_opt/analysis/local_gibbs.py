"""Flatness through the local Gibbs measure, estimated by MCMC (the library's `local_entropy_gradient`).

Around trained weights `w` the local Gibbs measure (docs/math.md section 3)

    rho(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])

measures how much room the loss leaves: in a wide valley it spreads, in a
narrow one it stays close to `w`. Two numbers from one MCMC run:

* the local-entropy gradient `grad F_gamma(w) = gamma (w - <w'>)` and its norm:
  zero at a local-entropy critical point; its size says how far the valley's
  local mean is from `w`;
* the spread `E |w' - <w'>|^2 = tr Cov_rho(w')`. For a quadratic `f` with
  Hessian `H` (`H + gamma I` positive definite) the measure is Gaussian with
  covariance `(H + gamma I)^-1 / beta`, so

      spread = (1/beta) tr (H + gamma I)^-1 = (1/beta) sum_i 1 / (lambda_i + gamma)

  (the Laplace prediction, `laplace_spread`, computed from the Hessian's SLQ
  density for comparison): large where many eigenvalues are small. The MCMC
  value goes beyond the quadratic approximation.

Both come with standard errors: the spread's from the spread of the squared
deviations and their own per-coordinate ESS (an HMC chain can be antithetic
for the mean and slow for the variance), the gradient norm's by the delta
method from the standard errors of `<w'>`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from control_opt._internal import checks
from control_opt._internal.keras_adaptor import keras_loss_fn, model_weights
from control_opt.mcmc.diagnostics import effective_sample_size
from control_opt.mcmc.estimators import local_entropy_gradient

__all__ = ["LocalGibbsFlatness", "local_gibbs_flatness"]


class LocalGibbsFlatness(NamedTuple):
    """What `local_gibbs_flatness` returns.

    Attributes:
      gradient_norm, gradient_norm_stderr: `|grad F_gamma(w)| = gamma |w - <w'>|` and its standard error.
      spread, spread_stderr: `tr Cov_rho(w')`, the mean squared distance of the
        local Gibbs samples from their mean, and its standard error.
      laplace_spread, laplace_spread_stderr: `(1/beta) tr (H + gamma I)^-1` from
        the Hessian's SLQ density (None unless `compare_laplace`).
      dim: the number of weights.
      estimate: the `LocalEntropyEstimate` of the run (samples included).
    """

    gradient_norm: float
    gradient_norm_stderr: float
    spread: float
    spread_stderr: float
    laplace_spread: Any
    laplace_spread_stderr: Any
    dim: int
    estimate: Any


def _flat(parts):
    return np.concatenate([np.reshape(np.asarray(p, np.float64), [-1]) for p in tf.nest.flatten(parts)])


def local_gibbs_flatness(model, loss, x, y, *, gamma, beta, seed, kernel="nuts", num_results=500,
                         num_burnin_steps=200, num_chains=4, compare_laplace=False, **kwargs):
    """The local-entropy gradient and the spread of the local Gibbs measure at a model's weights, by MCMC.

    Args:
      model, loss, x, y: a built Keras model, its loss and the data on which `f` is evaluated
        (full batch: `control_opt.keras_loss_fn`).
      gamma, beta: scope and inverse temperature of the local Gibbs measure.
      seed: the MCMC seed (a `[2]` integer seed or an int).
      kernel: `local_entropy_gradient`'s kernel ("nuts" default: exact up to Monte Carlo
        error, and adapts its trajectory length to the curvature; "hmc" and "mala" are
        cheaper per step, "sgld" cheapest and reports its discretization bias).
      compare_laplace: also compute the Laplace prediction of the spread from the
        Hessian's spectral density (`control_opt.analysis.spectral_density`).
      **kwargs: passed to `local_entropy_gradient` (e.g. `step_size`, `num_leapfrog_steps`).

    Returns:
      `LocalGibbsFlatness`.
    """
    gamma = checks.check_positive("gamma", gamma)
    beta = checks.check_positive("beta", beta)
    if isinstance(seed, int):
        seed = [seed, 0]
    weights = model_weights(model)
    estimate = local_entropy_gradient(
        keras_loss_fn(model, loss, x, y), weights, gamma=gamma, beta=beta, kernel=kernel, seed=seed,
        num_results=num_results, num_burnin_steps=num_burnin_steps, num_chains=num_chains,
        return_samples=True, **kwargs)
    # [results, chains, coordinates]; the squared deviations have their own ESS (an HMC chain can be
    # antithetic for the mean and slow for the variance).
    samples = np.concatenate([np.asarray(s, np.float64).reshape(s.shape[0], s.shape[1], -1)
                              for s in estimate.samples], axis=-1)
    squared = (samples - samples.mean(axis=(0, 1))) ** 2
    ess = np.asarray(effective_sample_size(tf.constant(squared)), np.float64)
    spread = float(squared.mean(axis=(0, 1)).sum() * squared.shape[0] * squared.shape[1]
                   / (squared.shape[0] * squared.shape[1] - 1))
    spread_stderr = float(np.sqrt(np.sum(squared.reshape(-1, squared.shape[-1]).var(axis=0, ddof=1) / ess)))
    displacement = _flat(weights) - _flat(estimate.mean)
    mean_stderr = _flat(estimate.standard_error)
    distance = float(np.linalg.norm(displacement))
    gradient_norm = gamma * distance
    gradient_norm_stderr = (gamma * float(np.linalg.norm(displacement * mean_stderr)) / distance if distance > 0
                            else gamma * float(np.linalg.norm(mean_stderr)))
    laplace = laplace_stderr = None
    if compare_laplace:
        from control_opt.analysis.hessian import spectral_density  # pylint: disable=import-outside-toplevel
        density = spectral_density(model, loss, x, y, seed=int(np.asarray(seed).ravel()[0]))
        lowest = float(density.nodes[density.weights > 0].min())
        if lowest <= -gamma:
            raise ValueError(f"`gamma` ({gamma}) must exceed -lambda_min ({-lowest:.6g}) for the Laplace spread.")
        mean, stderr = density.integral(lambda t: 1.0 / (t + gamma))
        laplace, laplace_stderr = displacement.size * mean / beta, displacement.size * stderr / beta
    return LocalGibbsFlatness(gradient_norm, gradient_norm_stderr, spread, spread_stderr, laplace, laplace_stderr,
                              int(displacement.size), estimate)
