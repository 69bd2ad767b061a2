"""Closed forms for the linear SDE `dx = -B x dt + sqrt(2 D) dW` (Ornstein-Uhlenbeck).

With `B` stable (eigenvalues with positive real part) and `D` symmetric
positive semi-definite, the stationary law is `N(0, S)` with `S` solving the
Lyapunov equation

    B S + S B^T = 2 D.

`Q = B S - D` is antisymmetric (the Lyapunov equation says `BS + (BS)^T = 2D`),
and the stationary probability current `J = -B x rho - D grad rho` is

    J(x) = -Q S^-1 x rho(x),

zero (equilibrium, detailed balance) iff `Q = 0` iff `B D` is symmetric; for a
gradient drift `B = H` (symmetric), iff `H D = D H`: anisotropic noise alone
does not break detailed balance, noise that does not commute with the Hessian
does. The mean stochastic-area rate of any pair of coordinates is

    1/2 <x_i dx_j/dt - x_j dx_i/dt> = 1/2 ((B S)_ij - (S B^T)_ij) = Q_ij,

and the entropy production rate `e_p = <J^T D^-1 J / rho^2> = tr(Q^T D^-1 Q S^-1)`.

Used as the test bed of the trajectory diagnostics (docs/analysis.md, cases T1-T4).

References:
  P. Chaudhari and S. Soatto, ICLR 2018 (section on non-equilibrium SGD);
  C. W. Gardiner, Stochastic Methods (4th ed.), section 4.5.6;
  H. Qian, Mathematical formalism for isothermal linear irreversibility (2001).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.linalg

__all__ = ["LinearSteadyState", "linear_sde_current", "linear_sde_stationary"]


class LinearSteadyState(NamedTuple):
    """What `linear_sde_stationary` returns.

    Attributes:
      covariance: `S`, the stationary covariance.
      Q: `B S - D` (antisymmetric): also the matrix of mean stochastic-area rates.
      area_rate: `Q[0, 1]`, the area rate of the first two coordinates.
      entropy_production: `tr(Q^T D^-1 Q S^-1)` (inf if `D` is singular and `Q != 0`).
      is_equilibrium: `|Q| <= 1e-10 |B S|` (Frobenius norms).
      current_matrix: `M = -Q S^-1`, so that `J(x) = M x rho(x)`.
    """

    covariance: Any
    Q: Any
    area_rate: float
    entropy_production: float
    is_equilibrium: bool
    current_matrix: Any


def _check(B, D):
    B = np.asarray(B, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    if B.ndim != 2 or B.shape[0] != B.shape[1]:
        raise ValueError(f"`B` must be a square matrix, got shape {B.shape}.")
    if D.shape != B.shape:
        raise ValueError(f"`D` must have the shape of `B` {B.shape}, got {D.shape}.")
    if not np.allclose(D, D.T, atol=1e-12 * max(1.0, np.abs(D).max())):
        raise ValueError("`D` must be symmetric.")
    if np.linalg.eigvalsh(D).min() < -1e-12 * max(1.0, np.abs(D).max()):
        raise ValueError("`D` must be positive semi-definite.")
    if np.linalg.eigvals(B).real.min() <= 0:
        raise ValueError("`B` must be stable: all eigenvalues with positive real part (else no stationary law).")
    return B, D


def linear_sde_stationary(B, D):
    """Stationary covariance, antisymmetric part `Q`, area rate and entropy production of `dx = -Bx dt + sqrt(2D) dW`.

    Example (docs/analysis.md, case T3):
      >>> s = linear_sde_stationary(np.diag([1.0, 2.0]), [[2.0, 1.0], [1.0, 1.0]])
      >>> s.covariance  # [[2, 2/3], [2/3, 1/2]]
      >>> s.area_rate, s.entropy_production  # -1/3, 1/3
    """
    B, D = _check(B, D)
    S = scipy.linalg.solve_continuous_lyapunov(B, 2.0 * D)
    S = 0.5 * (S + S.T)
    Q = B @ S - D
    Q = 0.5 * (Q - Q.T)  # antisymmetric up to round-off
    s_inv = np.linalg.inv(S)
    scale = max(np.linalg.norm(B @ S), np.finfo(float).tiny)
    equilibrium = bool(np.linalg.norm(Q) <= 1e-10 * scale)
    if equilibrium:
        production = 0.0
    else:
        try:
            production = float(np.trace(Q.T @ np.linalg.solve(D, Q) @ s_inv))
        except np.linalg.LinAlgError:
            production = float("inf")
    area = float(Q[0, 1]) if Q.shape[0] >= 2 else 0.0
    return LinearSteadyState(S, Q, area, production, equilibrium, -Q @ s_inv)


def linear_sde_current(B, D, x):
    """The stationary current `J(x) = -Q S^-1 x rho(x)` at points `x` `[..., d]`, `rho = N(0, S)`."""
    state = linear_sde_stationary(B, D)
    x = np.asarray(x, dtype=np.float64)
    d = state.covariance.shape[0]
    if x.shape[-1] != d:
        raise ValueError(f"`x` must have last axis {d}, got shape {x.shape}.")
    s_inv = np.linalg.inv(state.covariance)
    rho = np.exp(-0.5 * np.einsum("...i,ij,...j->...", x, s_inv, x)) / np.sqrt(
        (2 * np.pi) ** d * np.linalg.det(state.covariance))
    return np.einsum("ij,...j->...i", state.current_matrix, x) * rho[..., None]
