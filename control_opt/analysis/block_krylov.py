"""Top eigenpairs of a symmetric operator by block Krylov iteration with Rayleigh-Ritz.

For a symmetric `A` seen through block products `V -> A V` (`dim x b` blocks),
from an orthonormal random block `Q_0` the iteration builds an orthonormal
basis `Q = [Q_0, Q_1, ..., Q_{j}]` of the block Krylov space
`span{Q_0, A Q_0, ..., A^j Q_0}`: each new block is `A Q_i` orthogonalized
(twice, in float64) against all previous blocks. The products `A Q_i` are
kept, so the Rayleigh-Ritz step is exact and costs no further product:

    T = Q^T (A Q)  (symmetrized),   T s = theta s,   Ritz pair (theta, Q s),
    residual r = (A Q) s - theta Q s,  |A v - theta v| = |r| for the unit Ritz vector v = Q s.

Each Ritz value is within its residual of an eigenvalue of `A` (within
`|r|^2 / gap` of a well separated one). The iteration stops when the top `k`
residuals are at most `tol * |theta_1|`, or after `max_blocks` blocks. The
residuals returned are the explicit ones above, in which the rounding errors
of the products are included (unlike Lanczos' free estimate `beta_m |s_m|`).

Why blocks: an operator whose cost per product is dominated by work shared
between vectors (a pass over the data computing per-example gradients, then
one matrix product for all `b` vectors; `control_opt.analysis.diffusion`)
gets `b` products for little more than the price of one. On an operator whose
products are independent (a Hessian-vector product), a block costs `b`
products and plain Lanczos (`lanczos_eigenvalues`) needs about as many.

`exclude`: orthonormal directions known to be eigenvectors (e.g. a known null
vector); they are projected out of every block, so the iteration runs on
their orthogonal complement and cannot report them.

References:
  G. H. Golub and R. Underwood, The block Lanczos method for computing
  eigenvalues (1977); C. Musco and C. Musco, Randomized block Krylov methods
  for stronger and faster approximate singular value decomposition (NeurIPS
  2015); Y. Saad, Numerical Methods for Large Eigenvalue Problems (2011).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from control_opt._internal import checks
from control_opt.analysis._problem import as_operator
from control_opt.analysis.lanczos import default_space
from control_opt.analysis.progress import Progress

__all__ = ["BlockKrylovResult", "block_krylov_eigenvalues"]


class BlockKrylovResult(NamedTuple):
    """What `block_krylov_eigenvalues` returns.

    Attributes:
      eigenvalues: the top `k` Ritz values, descending.
      eigenvectors: `[dim, k]` unit Ritz vectors (None unless asked for).
      residuals: `|A v - theta v|` of each pair, from the stored products.
      num_products: operator applications used (columns of all blocks).
      num_blocks: blocks multiplied.
      converged: whether every residual is at most `tol * |theta_1|`.
    """

    eigenvalues: Any
    eigenvectors: Any
    residuals: Any
    num_products: int
    num_blocks: int
    converged: bool


def _matmat(op, block):
    if hasattr(op, "matmat"):
        return np.asarray(op.matmat(block), dtype=np.float64).reshape(block.shape)
    return np.stack([op.matvec(column) for column in block.T], axis=1)


def _orthonormalize(block, basis, exclude, scale):
    """`block` made orthogonal to `basis` blocks and `exclude` (twice), then orthonormal; columns whose norm
    collapses below `1e-10 scale` are dropped (the Krylov space is then invariant in their direction)."""
    for _ in range(2):
        for q in basis:
            block -= q @ (q.T @ block)
        if exclude is not None:
            block -= exclude @ (exclude.T @ block)
    q, r = np.linalg.qr(block)
    keep = np.abs(np.diag(r)) > 1e-10 * max(scale, np.finfo(float).tiny)
    return q[:, keep]


def block_krylov_eigenvalues(operator, k=1, *, block_size=None, max_blocks=None, tol=1e-5, seed=None, exclude=None,
                             return_eigenvectors=False, verbose=False, what="block Krylov"):
    """The `k` largest eigenvalues of a symmetric operator by block Krylov iteration.

    Args:
      operator: an object with `matmat(V)` (`[dim, b] -> [dim, b]`) and `dim`,
        or with `matvec` only (the block is then applied column by column), or
        a dense symmetric matrix.
      k: how many eigenvalues.
      block_size: `b`, columns per block; default `k + 10`.
      max_blocks: most blocks; default enough for a space of `default_space(k)`
        dimensions (at least 2 blocks), clipped to the dimension.
      tol: stop when the top `k` residuals are at most `tol * |theta_1|`.
      seed: integer seed of the random start block.
      exclude: `[dim, e]` orthonormal columns kept out of the space (or None).
      return_eigenvectors: also return the Ritz vectors.
      verbose: log progress and an estimate of the time left (absl logging).
      what: name used in the progress lines.

    Returns:
      `BlockKrylovResult`.
    """
    op = operator if hasattr(operator, "matmat") and hasattr(operator, "dim") else as_operator(operator)
    dim = int(op.dim)
    excluded = 0 if exclude is None else np.asarray(exclude, dtype=np.float64).reshape(dim, -1).shape[1]
    k = checks.check_int("k", k, 1)
    if k > dim - excluded:
        raise ValueError(f"`k` ({k}) must not exceed the dimension ({dim}) less the excluded directions ({excluded}).")
    block_size = min(k + 10 if block_size is None else checks.check_int("block_size", block_size, 1),
                     dim - excluded)
    if block_size < 1:
        raise ValueError("no direction is left once `exclude` is projected out.")
    if max_blocks is None:
        max_blocks = max(2, -(-default_space(k) // block_size))
    max_blocks = checks.check_int("max_blocks", max_blocks, 1)
    tol = checks.check_positive("tol", tol)
    rng = np.random.default_rng(checks.resolve_seed(seed))
    exclude = None if exclude is None else np.asarray(exclude, dtype=np.float64).reshape(dim, -1)
    basis, products = [], []
    block = _orthonormalize(rng.standard_normal((dim, block_size)), basis, exclude, 1.0)
    progress = Progress(max_blocks, what, verbose)
    theta = s = residuals = None
    converged = False
    scale = 0.0
    while block.shape[1] and len(basis) < max_blocks:
        product = _matmat(op, block)
        if not np.all(np.isfinite(product)):
            raise FloatingPointError(f"the operator returned NaN/Inf in block {len(basis)}.")
        basis.append(block)
        products.append(product)
        q, aq = np.concatenate(basis, axis=1), np.concatenate(products, axis=1)
        t = q.T @ aq
        theta, s = np.linalg.eigh(0.5 * (t + t.T))
        theta, s = theta[::-1], s[:, ::-1]
        top = min(k, theta.size)
        ritz = q @ s[:, :top]
        residuals = np.linalg.norm(aq @ s[:, :top] - ritz * theta[:top], axis=0)
        scale = max(scale, float(np.abs(theta).max()))
        converged = top == k and bool(np.all(residuals <= tol * scale))
        progress.step(f"{q.shape[1]} vectors, top Ritz value {theta[0]:.6g}, largest top-{top} residual "
                      f"{residuals.max():.3g} (tol {tol * scale:.3g})")
        if converged or len(basis) == max_blocks:
            break
        block = _orthonormalize(product.copy(), basis, exclude, np.linalg.norm(product, axis=0).max())
    top = min(k, theta.size)
    if not converged and not block.shape[1] and top == k:
        converged = True  # invariant subspace: the Ritz values are exact up to the products' rounding
    vectors = np.concatenate(basis, axis=1) @ s[:, :top] if return_eigenvectors else None
    num_products = int(sum(b.shape[1] for b in basis))
    return BlockKrylovResult(theta[:top], vectors, residuals[:top], num_products, len(basis), converged)
