"""Spectral density by stochastic Lanczos quadrature (SLQ).

The spectral density of a symmetric `dim x dim` matrix `A` with eigenvalues
`lambda_1..lambda_dim` is `phi(t) = (1/dim) sum_i delta(t - lambda_i)`. For a
unit probe `v`, `v^T g(A) v = sum_i (v . u_i)^2 g(lambda_i)` is an integral of
`g` against a measure whose mean over random probes (`E[v v^T] = I / dim`) is
`phi`. `m` Lanczos steps started at `v` give the `m`-point Gauss quadrature of
that measure: nodes `theta_j` = eigenvalues of `T_m`, weights `tau_j = s_{1j}^2`
(squared first components of the eigenvectors of `T_m`), exact for
polynomials `g` of degree up to `2m - 1`. Averaging over `n_v` probes and
replacing each delta by a Gaussian of width `sigma`,

    phi_sigma(t) = (1/n_v) sum_probes sum_j tau_j N(t; theta_j, sigma^2),

a density that integrates to 1 (each probe's weights sum to 1).

References:
  G. H. Golub and G. Meurant, Matrices, Moments and Quadrature (2010);
  L. Lin, Y. Saad, C. Yang, Approximating spectral densities of large
  matrices, SIAM Review 58 (2016); B. Ghorbani, S. Krishnan, Y. Xiao, An
  investigation into neural net optimization via Hessian eigenvalue
  density, ICML 2019.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from absl import logging

from control_opt._internal import checks
from control_opt.analysis._problem import as_operator
from control_opt.analysis.lanczos import lanczos, tridiagonal_eigh

__all__ = ["SpectralDensity", "stochastic_lanczos_quadrature"]


class SpectralDensity(NamedTuple):
    """What `spectral_density` returns.

    Attributes:
      grid: the points `t` where the density is evaluated.
      density: `phi_sigma(t)` on `grid` (integrates to 1 over a grid that
        covers the nodes by a few `sigma`).
      nodes: Gauss nodes `theta_j`, shape `[num_probes, num_steps]` (padded
        with 0 after a Lanczos breakdown, with weight 0).
      weights: Gauss weights `tau_j`, same shape; each row sums to 1.
      sigma: the Gaussian smoothing width (absolute, in eigenvalue units).
      num_probes, num_steps: as used.
    """

    grid: Any
    density: Any
    nodes: Any
    weights: Any
    sigma: float
    num_probes: int
    num_steps: int

    def fraction_within(self, tolerance):
        """Estimated fraction of eigenvalues with `|lambda| <= tolerance` (quadrature mass, unsmoothed)."""
        return float(np.mean(np.sum(self.weights * (np.abs(self.nodes) <= tolerance), axis=1)))

    def integral(self, fn):
        """`integral g(t) phi(t) dt = tr g(A) / dim` by the Gauss rules, with its standard error over the probes.

        Each probe's rule `sum_j tau_j g(theta_j)` is an unbiased estimate (up to
        the quadrature error, zero for polynomials of degree < 2 num_steps);
        the standard error is their standard deviation over `sqrt(num_probes)`
        (NaN for one probe). E.g. `fn = np.log` gives `log det(A) / dim` for a
        positive definite `A` (multiply both numbers by `dim`).

        Returns:
          `(estimate, stderr)`.
        """
        used = self.weights > 0
        values = np.sum(np.where(used, self.weights * fn(np.where(used, self.nodes, self.nodes[:, :1])), 0.0), axis=1)
        stderr = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
        return float(values.mean()), float(stderr)

    def moment(self, power):
        """Estimated `tr(A^power) / dim` (exact per probe for `power <= 2 num_steps - 1`)."""
        return float(np.mean(np.sum(self.weights * self.nodes**power, axis=1)))


def stochastic_lanczos_quadrature(operator, *, num_probes=4, num_steps=80, sigma=None, sigma_fraction=0.01,
                                  grid=None, num_grid=1000, seed=None, verbose=False):
    """SLQ spectral density of a symmetric operator.

    Args:
      operator: a `LinearOperator`, an object with `matvec`/`dim`, or a dense
        symmetric matrix.
      num_probes: random Rademacher probes `v / |v|`.
      num_steps: Lanczos steps per probe (clipped to `dim`); 80-100 suffice for a
        density (Ghorbani et al.).
      sigma: absolute Gaussian width; default `sigma_fraction` times the range
        of the nodes (`max theta - min theta`, or 1 if they coincide).
      grid: evaluation points; default `num_grid` points from
        `min theta - 6 sigma` to `max theta + 6 sigma`.
      seed: integer seed (numpy) for the probes.

    Returns:
      `SpectralDensity`.
    """
    op = as_operator(operator)
    num_probes = checks.check_int("num_probes", num_probes, 1)
    num_steps = min(checks.check_int("num_steps", num_steps, 1), op.dim)
    num_grid = checks.check_int("num_grid", num_grid, 2)
    sigma_fraction = checks.check_positive("sigma_fraction", sigma_fraction)
    rng = np.random.default_rng(checks.resolve_seed(seed))
    nodes = np.zeros((num_probes, num_steps))
    weights = np.zeros((num_probes, num_steps))
    for p in range(num_probes):
        v = rng.choice([-1.0, 1.0], size=op.dim) / np.sqrt(op.dim)
        result = lanczos(op, num_steps, v0=v, keep_basis=False)
        theta, s = tridiagonal_eigh(result)
        nodes[p, : result.num_steps] = theta
        weights[p, : result.num_steps] = s[0] ** 2
        if verbose:
            logging.info("SLQ probe %d / %d (%d steps)", p + 1, num_probes, result.num_steps)
    used = weights > 0
    low, high = float(nodes[used].min()), float(nodes[used].max())
    if sigma is None:
        sigma = sigma_fraction * ((high - low) if high > low else max(abs(high), 1.0))
    sigma = checks.check_positive("sigma", sigma)
    if grid is None:
        grid = np.linspace(low - 6 * sigma, high + 6 * sigma, num_grid)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1:
        raise ValueError(f"`grid` must be one-dimensional, got shape {grid.shape}.")
    density = np.zeros_like(grid)
    for theta, tau in zip(nodes, weights):
        keep = tau > 0
        z = (grid[:, None] - theta[None, keep]) / sigma
        density += (np.exp(-0.5 * z**2) / (sigma * np.sqrt(2 * np.pi))) @ tau[keep]
    density /= num_probes
    return SpectralDensity(grid, density, nodes, weights, float(sigma), num_probes, num_steps)
