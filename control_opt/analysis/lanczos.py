"""Lanczos tridiagonalization in float64 with full reorthogonalization.

For a symmetric `A` (`dim x dim`, seen only through `v -> A v`) and a unit
start vector `q_1`, `m` Lanczos steps build an orthonormal basis
`Q_m = [q_1, ..., q_m]` of the Krylov space `span{q_1, A q_1, ..., A^{m-1} q_1}`
and the tridiagonal `T_m = Q_m^T A Q_m` (diagonal `alpha`, off-diagonal `beta`):

    beta_j q_{j+1} = A q_j - alpha_j q_j - beta_{j-1} q_{j-1}.

In floating point the `q_j` lose orthogonality as Ritz values converge
(ghost eigenvalues); here every new vector is orthogonalized against all
previous ones, twice ("twice is enough", Parlett), at a cost of `O(m dim)`
memory and `O(m^2 dim)` flops, negligible next to the matrix-vector products
of a network. The eigenvalues of `T_m` (Ritz values) approximate the extreme
eigenvalues of `A` first; a Ritz pair `(theta, Q_m s)` has residual
`|A Q_m s - theta Q_m s| = beta_m |s_m|`. If `beta_j` vanishes the Krylov space
is invariant and its Ritz values are exact eigenvalues (the iteration stops).

References:
  C. Lanczos (1950); B. N. Parlett, The Symmetric Eigenvalue Problem (1998);
  G. H. Golub and G. Meurant, Matrices, Moments and Quadrature (2010).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.linalg
from control_opt._internal import checks
from control_opt.analysis._problem import as_operator
from control_opt.analysis.memory import default_budget, format_bytes
from control_opt.analysis.progress import Progress

__all__ = ["LanczosResult", "RitzPairs", "converged_ritz_values", "default_space", "lanczos", "lanczos_eigenvalues",
           "ritz_residuals"]

DEFAULT_TOL = 1e-5  # relative residual at which a default-length run stops (values then to ~1e-10 relative)


def default_space(k):
    """The default most dimensions of the Krylov space of a top- (or bottom-) `k` run: `max(4k, k + 30)`.

    Extreme eigenvalues separated from the rest converge within about `2k` steps;
    a value inside the bulk of the spectrum converges slowly, and the cap decides
    what a run costs then. On LeNet over 4096 examples (BENCHMARKS.md, issue 21)
    the top 10 are nine outliers and a 10th in the bulk: 40 steps give the nine
    to 1e-14 and the 10th with residual 5e-3 of `theta_1` (50 steps: 7e-4) at 88
    instead of 106 gradients. The residuals are returned with the values; pass
    `num_steps` for more. Used by Lanczos, block Krylov and the routes of
    `diffusion_spectrum`.
    """
    return max(4 * k, k + 30)


class LanczosResult(NamedTuple):
    """What `lanczos` returns.

    Attributes:
      alpha: diagonal of `T_m`, shape `[m]`.
      beta: off-diagonal of `T_m`, shape `[m - 1]`.
      basis: `Q_m`, shape `[m, dim]` (rows are the Lanczos vectors), or None.
      residual_norm: `beta_m`, the norm of the part of `A q_m` outside the
        Krylov space (0 after a breakdown: the space is invariant).
      num_steps: `m`, possibly fewer than asked for after a breakdown.
    """

    alpha: Any
    beta: Any
    basis: Any
    residual_norm: float
    num_steps: int


class RitzPairs(NamedTuple):
    """Extreme eigenpairs from Lanczos: `eigenvalues` (descending for the top,
    ascending for the bottom), `eigenvectors` `[dim, k]` (unit columns; None if not
    asked for), `residuals` (`|A v - theta v|`, so `theta` is within it of an
    eigenvalue of `A`: computed explicitly with the eigenvectors, else the
    Lanczos estimate `beta_m |s_m|`, see `ritz_residuals`), `num_steps`."""

    eigenvalues: Any
    eigenvectors: Any
    residuals: Any
    num_steps: int


def _start_vector(dim, rng):
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def lanczos(operator, num_steps, *, v0=None, seed=None, keep_basis=True, verbose=False, stop=None):
    """Runs `num_steps` Lanczos steps on a symmetric operator, fully reorthogonalized, in float64.

    Args:
      operator: a `LinearOperator`, an object with `matvec(v)` and `dim`, or a
        dense symmetric matrix.
      num_steps: `m`, clipped to `dim`.
      v0: start vector (normalized here); default a Gaussian from `seed`.
      seed: integer seed for numpy's generator (used when `v0` is None).
      keep_basis: return `Q_m` (needed for Ritz vectors).
      verbose: log progress (with the time left) through absl logging.
      stop: optional `stop(alpha, beta, beta_m) -> bool`, called after each
        step with the coefficients so far; True ends the run there (e.g.
        `converged_ritz_values`).

    Returns:
      A `LanczosResult`.
    """
    op = as_operator(operator)
    num_steps = min(checks.check_int("num_steps", num_steps, 1), op.dim)
    if v0 is None:
        q = _start_vector(op.dim, np.random.default_rng(checks.resolve_seed(seed)))
    else:
        q = np.asarray(v0, dtype=np.float64).reshape(-1)
        if q.shape != (op.dim,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) == 0:
            raise ValueError(f"`v0` must be a finite nonzero vector of shape ({op.dim},).")
        q = q / np.linalg.norm(q)
    need = num_steps * op.dim * 8
    budget = default_budget()
    if need > budget:
        raise MemoryError(f"lanczos: {num_steps} steps on a {op.dim}-dimensional operator keep a float64 basis of "
                          f"{format_bytes(need)}, more than the memory budget of {format_bytes(budget)} (half of "
                          "the memory available); take fewer steps.")
    basis = np.zeros((num_steps, op.dim))
    alpha, beta = [], []
    residual = 0.0
    scale = 0.0
    progress = Progress(num_steps, "Lanczos steps", verbose)
    for j in range(num_steps):
        basis[j] = q
        w = op.matvec(q)
        if not np.all(np.isfinite(w)):
            raise FloatingPointError(f"the operator returned NaN/Inf at Lanczos step {j}.")
        a = float(q @ w)
        alpha.append(a)
        w = w - a * q - (beta[-1] * basis[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # full reorthogonalization, twice
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        residual = float(np.linalg.norm(w))
        scale = max(scale, abs(a), residual)
        progress.step(f"alpha={a:.6g} beta={residual:.6g}")
        if j + 1 == num_steps or (stop is not None and stop(np.array(alpha), np.array(beta), residual)):
            break
        if residual <= 1e-12 * max(scale, np.finfo(float).tiny):  # invariant subspace: exact
            residual = 0.0
            basis = basis[: j + 1]
            break
        beta.append(residual)
        q = w / residual
    m = len(alpha)
    return LanczosResult(np.array(alpha), np.array(beta), basis[:m] if keep_basis else None, residual, m)


def tridiagonal_eigh(result):
    """Eigenvalues (ascending) and eigenvectors of `T_m` from a `LanczosResult`."""
    if result.num_steps == 1:
        return np.array(result.alpha), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(result.alpha, result.beta)


def converged_ritz_values(k, which, tol, min_steps):
    """A `stop` for `lanczos`: True once at least `min_steps` steps are done and the `k` top
    (`which="top"`), bottom, or both ("both") Ritz values have estimated residuals
    `beta_m |s_m|` at most `tol * max |theta|`."""
    def stop(alpha, beta, residual):
        if alpha.size < min_steps:
            return False
        theta, s = scipy.linalg.eigh_tridiagonal(alpha, beta) if alpha.size > 1 else (alpha, np.ones((1, 1)))
        estimate = residual * np.abs(s[-1])
        order = np.argsort(theta)
        ends = {"top": [order[::-1][:k]], "bottom": [order[:k]], "both": [order[::-1][:k], order[:k]]}[which]
        bound = tol * np.abs(theta).max()
        return all(bool(np.all(estimate[end] <= bound)) for end in ends)

    return stop


def stopping_rule(k, which, num_steps, tol, dim):
    """`(num_steps, stop)` of a top/bottom-k run: with `num_steps` None, at most
    `min(dim, default_space(k))` steps that end once the Ritz values have converged to `tol`
    (default `DEFAULT_TOL`), after at least `min(dim, max(2k, k + 10))`; with `num_steps`
    given, exactly that many unless `tol` is given too."""
    if tol is not None:
        tol = checks.check_positive("tol", tol)
    if num_steps is None:
        num_steps = min(dim, default_space(k))
        tol = DEFAULT_TOL if tol is None else tol
    if tol is None:
        return num_steps, None
    return num_steps, converged_ritz_values(k, which, tol, min(dim, max(2 * k, k + 10)))


def check_eigen_arguments(k, which, num_steps, dim, allowed):
    """Checks `k`, `which` and `num_steps` of a top/bottom-k Lanczos run on a `dim`-dimensional
    operator; returns `(k, num_steps)`, `num_steps` defaulting to `min(dim, default_space(k))`."""
    k = checks.check_int("k", k, 1)
    if which not in allowed:
        raise ValueError(f"`which` must be one of {', '.join(map(repr, allowed))}, got {which!r}.")
    if k > dim:
        raise ValueError(f"`k` ({k}) must not exceed the dimension ({dim}).")
    if num_steps is None:
        num_steps = min(dim, default_space(k))
    num_steps = checks.check_int("num_steps", num_steps, 1)
    if num_steps < k:
        raise ValueError(f"`num_steps` ({num_steps}) must be at least `k` ({k}).")
    return k, num_steps


def lanczos_eigenvalues(operator, k=1, *, which="top", num_steps=None, seed=None, return_eigenvectors=False,
                        verbose=False, tol=None):
    """The `k` largest (`which="top"`) or smallest (`"bottom"`) eigenvalues of a symmetric operator.

    Ritz values of fully reorthogonalized Lanczos steps. By default at most
    `m = min(dim, max(4 k, k + 30))` steps (`default_space`), ending as soon as the `k` Ritz
    values' estimated residuals are at most `tol * |theta_max|` (`tol`
    default `DEFAULT_TOL` = 1e-5), after at least `max(2k, k + 10)` steps;
    with `num_steps` given, exactly that many steps (unless `tol` is given
    too). Check `residuals`: each Ritz value is within its residual of an
    eigenvalue (of a well separated one, within `residual^2 / gap`).

    Returns:
      `RitzPairs`.
    """
    op = as_operator(operator)
    given = num_steps
    k, num_steps = check_eigen_arguments(k, which, num_steps, op.dim, ("top", "bottom"))
    num_steps, stop = stopping_rule(k, which, num_steps if given is not None else None, tol, op.dim)
    result = lanczos(op, num_steps, seed=seed, keep_basis=return_eigenvectors, verbose=verbose, stop=stop)
    theta, s = tridiagonal_eigh(result)
    order = np.argsort(theta)[::-1] if which == "top" else np.argsort(theta)
    order = order[: min(k, result.num_steps)]
    residuals = ritz_residuals(op, result, theta[order], s[:, order], return_eigenvectors)
    vectors = result.basis.T @ s[:, order] if return_eigenvectors else None
    return RitzPairs(theta[order], vectors, residuals, result.num_steps)


def ritz_residuals(operator, result, theta, s, explicit):
    """Residual norms of Ritz pairs `(theta_i, Q_m s_i)`.

    `explicit`: `|A v - theta v|` by one product per pair (includes the
    rounding errors of the operator, e.g. ~1e-7 relative for a float32
    model). Otherwise the Lanczos estimate `beta_m |s_{m,i}|` (free, exact in
    exact arithmetic; it can be 0 for a converged pair even when the products
    are only accurate to float32).
    """
    if not explicit or result.basis is None:
        return result.residual_norm * np.abs(s[-1])
    op = as_operator(operator)
    vectors = result.basis.T @ s
    return np.array([np.linalg.norm(op.matvec(v) - t * v) for t, v in zip(theta, vectors.T)])
