"""The diffusion matrix of SGD: the covariance of per-example gradients.

Chaudhari and Soatto [1] model SGD with learning rate `eta` and batch size `b`
(sampling with replacement) by the SDE

    dw = -grad f(w) dt + sqrt(2 beta^-1 D(w)) dB,     beta^-1 = eta / (2 b),

with the diffusion matrix the covariance of the per-example gradients
`g_i = grad l_i(w)` (`gbar = grad f` their mean, `N` examples, `P` weights):

    D(w) = (1/N) sum_i (g_i - gbar)(g_i - gbar)^T = (1/N) J_c^T J_c,

`J` the `N x P` per-example Jacobian and `J_c = J - 1 gbar^T` its centered
version. `D` is never formed:

* operator route: `D v = (1/N) J_c^T u`, `u = J v - mean(J v)`,
  `J_c^T u = J^T u - gbar sum(u)`, one Jacobian-vector
  product (forward mode, `J v` = directional derivatives of the `N` losses)
  and one vector-Jacobian product (reverse mode) per product, chunked over
  the data, so no `N x P` storage. Top eigenpairs by Lanczos.
* Gram route (exact, for `N` up to about 10^4): the nonzero eigenvalues of
  `D = (1/N) J_c^T J_c` are those of the `N x N` Gram matrix
  `G = (1/N) J_c J_c^T`, with eigenvectors `v = J_c^T u / sqrt(N lambda)`; the
  other `P - rank` eigenvalues are 0. Since the rows of `J_c` sum to zero,
  `rank D <= N - 1`.

Numerical rank: the paper counts eigenvalues above `lambda_max * P * eps`
(`eps` the machine epsilon of float32 in their experiments) and reports the
rank as a fraction of `P`. Both that count (with the tolerance returned) and
the count above a user-chosen `rtol * lambda_max` are reported.

References:
  [1] P. Chaudhari and S. Soatto, Stochastic gradient descent performs
      variational inference, converges to limit cycles for deep networks,
      ICLR 2018. https://arxiv.org/abs/1710.11029
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging

from control_opt._internal import checks
from control_opt.analysis import block_krylov as _block_krylov
from control_opt.analysis import lanczos as _lanczos
from control_opt.analysis import memory as _memory
from control_opt.analysis._problem import LinearOperator, ModelProblem
from control_opt.analysis.gram import GramOperator
from control_opt.analysis.per_example import jacobian_chunks

__all__ = ["DiffusionSpectrum", "RoutePlan", "diffusion_operator", "diffusion_spectrum", "plan_route", "sgd_temperature",
           "spectrum_summary"]

_FLOAT32_EPS = float(np.finfo(np.float32).eps)


def sgd_temperature(learning_rate, batch_size):
    """`beta^-1 = eta / (2 b)`: the temperature of SGD's SDE (Chaudhari and Soatto, 2018).

    With this temperature the noise term is `sqrt(2 beta^-1 D) dB`, `D` the
    per-example gradient covariance (`diffusion_spectrum`).
    """
    eta = checks.check_positive("learning_rate", learning_rate)
    b = checks.check_int("batch_size", batch_size, 1)
    return eta / (2.0 * b)


class DiffusionSpectrum(NamedTuple):
    """What `diffusion_spectrum` returns.

    Attributes:
      eigenvalues: the top `k` eigenvalues of `D`, descending.
      eigenvectors: `[P, k]` unit eigenvectors (None unless asked for).
      trace: `tr D = (1/N) sum_i |g_i - gbar|^2` (exact).
      trace_of_square: `tr D^2` (exact on the Gram route, None on the operator route).
      eigenvalue_mean, eigenvalue_std: mean and standard deviation of all `P`
        eigenvalues, zeros included (as reported in the paper); the std is
        None on the operator route.
      isotropy: `(tr D)^2 / (P tr D^2)`, in `[1/P, 1]`, 1 iff `D` is a multiple of
        the identity, `rank/P`-like for a flat spectrum on `rank` directions
        (None on the operator route).
      anisotropy: `lambda_max / (tr D / P)`, >= 1, 1 iff isotropic.
      rank: number of eigenvalues above `rank_tolerance`.
      rank_fraction: `rank / P`.
      rank_tolerance: `lambda_max * P * eps` (the paper's numerical rank).
      eps: the `eps` used (default float32's, as in the paper).
      relative_rank: number of eigenvalues above `rtol * lambda_max`.
      rtol: the relative threshold chosen.
      rank_is_lower_bound: True when only `k` eigenvalues were computed
        (operator route) and all of them exceed a threshold, so the counts
        are lower bounds.
      gradient: the full-batch gradient `gbar`, flat.
      dim: `P`. num_examples: `N`. method: "gram", "krylov" or "operator".
      residuals: the certificate of each eigenvalue (krylov and operator
        routes; None on the exact Gram route): an eigenvalue of `G` (krylov,
        the same nonzero spectrum as `D`) or of `D` (operator) lies within it.
      num_products: products with `G` or `D` used (None on the Gram route).
      num_passes: passes over the data computing per-example gradients.
    """

    eigenvalues: Any
    eigenvectors: Any
    trace: float
    trace_of_square: Any
    eigenvalue_mean: float
    eigenvalue_std: Any
    isotropy: Any
    anisotropy: float
    rank: int
    rank_fraction: float
    rank_tolerance: float
    eps: float
    relative_rank: int
    rtol: float
    rank_is_lower_bound: bool
    gradient: Any
    dim: int
    num_examples: int
    method: str
    residuals: Any = None
    num_products: Any = None
    num_passes: Any = None


def spectrum_summary(eigenvalues, dim, *, eps=_FLOAT32_EPS, rtol=1e-3):
    """Rank counts and isotropy of a symmetric PSD matrix from its (nonzero part of the) spectrum.

    Args:
      eigenvalues: eigenvalues, any order; those not listed are taken as 0.
      dim: the matrix dimension `P`.
      eps: machine epsilon for the numerical rank `#{lambda > lambda_max P eps}`.
      rtol: relative threshold for `#{lambda > rtol lambda_max}`.

    Returns:
      A dict with `rank`, `rank_fraction`, `rank_tolerance`, `relative_rank`,
      `trace`, `trace_of_square`, `isotropy`, `anisotropy`, `eigenvalue_mean`,
      `eigenvalue_std`.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    top = float(lam[0]) if lam.size else 0.0
    tolerance = top * dim * eps
    rank = int(np.sum(lam > tolerance)) if top > 0 else 0
    trace = float(lam.sum())
    square = float(np.sum(lam**2))
    mean = trace / dim
    return {
        "rank": rank,
        "rank_fraction": rank / dim,
        "rank_tolerance": tolerance,
        "relative_rank": int(np.sum(lam > rtol * top)) if top > 0 else 0,
        "trace": trace,
        "trace_of_square": square,
        "isotropy": trace**2 / (dim * square) if square > 0 else float("nan"),
        "anisotropy": top / mean if mean > 0 else float("nan"),
        "eigenvalue_mean": mean,
        "eigenvalue_std": float(np.sqrt(max(square / dim - mean**2, 0.0))),
    }


def _chunk_jvp(problem):
    """`J v` for a chunk: forward mode; in loop mode (no pfor) by double-backward,
    `J v = d/du [(J^T u) . v]`, since `ForwardAccumulator` cannot go through `tf.map_fn`."""
    def jvp(weights, tangents, x, y):
        with tf.autodiff.ForwardAccumulator(weights, tangents) as accumulator:
            losses = problem.per_example_losses(weights, x, y)
        return accumulator.jvp(losses, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def jvp_double_backward(weights, tangents, x, y):
        dummy = tf.zeros([tf.shape(x)[0]], problem.dtype)
        with tf.GradientTape() as outer:
            outer.watch(dummy)
            with tf.GradientTape() as tape:
                tape.watch(weights)
                total = tf.reduce_sum(dummy * problem.per_example_losses(weights, x, y))
            grads = tape.gradient(total, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            inner = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangents)])
        return outer.gradient(inner, dummy, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return jvp if problem.vectorize else jvp_double_backward


def _chunk_vjp(problem):
    def vjp(weights, cotangent, x, y):
        with tf.GradientTape() as tape:
            tape.watch(weights)
            losses = problem.per_example_losses(weights, x, y)
            total = tf.reduce_sum(tf.cast(cotangent, losses.dtype) * losses)
        return problem.flatten(tape.gradient(total, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO))

    return vjp


def diffusion_operator(model, loss, x, y, *, chunk_size=None, verbose=False):
    """`D` as a `LinearOperator`: `D v = (1/N) J_c^T (J v - mean(J v))` (one JVP, one VJP per chunk).

    The operator also carries `gradient` (the full-batch gradient `gbar`,
    flat float64) and `problem`.
    """
    return _diffusion_operator(ModelProblem(model, loss, x, y, chunk_size), verbose)


def _diffusion_operator(problem, verbose):
    """`D v = (1/N) J_c^T u`, `u = J_c v = J v - mean(J v)`, with `J_c^T u = J^T u - gbar sum(u)`.

    In exact arithmetic `sum(u) = 0` and the last term vanishes; in floating
    point `sum(u)` keeps about `N ulp(|J v|)`, which `J^T u` alone would
    multiply by `|gbar|` (eigenvalues off by up to 37% for a mean gradient 1e7
    times the spread: tests/analysis/test_gram_route_mean.py). Subtracting
    `gbar sum(u)` (float64) removes it (3e-9 there).
    """
    chunks = list(problem.chunks())
    n = problem.num_examples
    _, gradient = problem.gradient()

    def matvec(v):
        tangents = problem.unflatten(v)
        jv = [problem.call("jvp", lambda: _chunk_jvp(problem), problem.weights, tangents, xc, yc).numpy()
              for xc, yc in chunks]
        centered = np.concatenate(jv).astype(np.float64)
        centered -= centered.mean()
        out = np.zeros(problem.dim)
        start, total = 0, 0.0
        for xc, yc in chunks:
            stop = start + int(xc.shape[0])
            u = tf.constant(centered[start:stop], dtype=problem.dtype)
            total += float(np.sum(u.numpy(), dtype=np.float64))  # sum(u) as multiplied, in the model's dtype
            out += problem.call("vjp", lambda: _chunk_vjp(problem), problem.weights, u, xc, yc).numpy()
            start = stop
        out -= gradient * total
        if verbose:
            logging.info("diffusion operator: one product (%d chunks)", len(chunks))
        return out / n

    operator = LinearOperator(matvec, problem.dim, "diffusion")
    operator.problem, operator.gradient = problem, gradient
    return operator


_BLOCK = 4096  # weights per column block of the Gram products (bounds float64 temporaries to N x 4096)


def _gram_route(problem, k, return_eigenvectors, verbose):
    """Exact nonzero spectrum of `D` from the `N x N` centered Gram matrix.

    The Jacobian is stored once in the model's dtype (`N x P`); centering and
    the Gram product are done in float64 over column blocks of `_BLOCK` weights.
    """
    n = problem.num_examples
    jac = None
    for start, chunk in jacobian_chunks(problem, verbose, float64=False):
        if jac is None:
            jac = np.empty((n, problem.dim), dtype=np.result_type(chunk.dtype, np.float32))
        jac[start:start + chunk.shape[0]] = chunk
    gradient = np.empty(problem.dim)
    gram = np.zeros((n, n))
    for lo in range(0, problem.dim, _BLOCK):
        block = jac[:, lo:lo + _BLOCK].astype(np.float64)
        gradient[lo:lo + _BLOCK] = block.mean(axis=0)
        block -= gradient[lo:lo + _BLOCK]
        gram += block @ block.T
    gram /= n
    # The centered Gram matrix annihilates the constant vector exactly; remove that direction
    # exactly (Householder reflection taking 1/sqrt(n) to e_1) so that round-off cannot count
    # it in the rank: rank D <= n - 1 holds for any tolerance.
    if n > 1:
        h = np.full(n, 1.0 / np.sqrt(n))
        h[0] -= 1.0
        h /= np.linalg.norm(h)
        gh = gram @ h
        reflected = gram - 2.0 * np.outer(h, gh) - 2.0 * np.outer(gh, h) + 4.0 * (h @ gh) * np.outer(h, h)
        lam, u_block = np.linalg.eigh(reflected[1:, 1:])
        u = np.zeros((n, n - 1))
        u[1:] = u_block
        u -= 2.0 * np.outer(h, h @ u)  # back to the original coordinates: u = H [0; u_block]
    else:
        lam, u = np.zeros(0), np.zeros((1, 0))
    lam, u = lam[::-1], u[:, ::-1]
    lam = np.maximum(lam, 0.0)  # PSD; round-off can give tiny negatives
    top = lam[:k]
    vectors = None
    if return_eigenvectors:
        coefficients = u[:, :k]
        vectors = np.empty((problem.dim, coefficients.shape[1]))
        for lo in range(0, problem.dim, _BLOCK):
            block = jac[:, lo:lo + _BLOCK].astype(np.float64) - gradient[lo:lo + _BLOCK]
            vectors[lo:lo + _BLOCK] = block.T @ coefficients
        norms = np.linalg.norm(vectors, axis=0)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
    return lam, top, vectors, gradient


def _per_example_trace(problem, verbose):
    """`tr D` and `gbar` from one chunked pass of per-example gradients (nothing `N x P` stored).

    `tr D = (1/N) sum |g_i - c|^2 - |gbar - c|^2` for any shift `c`; `c` = the
    first chunk's mean limits the cancellation when `|gbar|` dominates the noise.
    """
    sum_sq, total, shift = 0.0, np.zeros(problem.dim), None
    for _, chunk in jacobian_chunks(problem, verbose):
        if shift is None:
            shift = chunk.mean(axis=0)
        sum_sq += float(np.sum((chunk - shift) ** 2))
        total += chunk.sum(axis=0)
    gradient = total / problem.num_examples
    return sum_sq / problem.num_examples - float(np.sum((gradient - shift) ** 2)), gradient


_GRAM_FLOPS = 2e11  # "auto" takes the exact Gram route below this many flops (N^2 P): seconds on a CPU
_JACOBIAN_COPIES = 4  # working copies of a chunk's per-example gradients (pfor temporaries, centering)
_MAX_CHUNK = 256  # default examples per chunk when the data does not fit at once


class RoutePlan(NamedTuple):
    """The route `diffusion_spectrum` takes and the memory it plans for (bytes).

    `needs` maps each route to its estimated peak (beyond the model and the
    data); `budget` is what it may use; `chunk_size` the examples per chunk.
    """

    method: str
    chunk_size: int
    needs: dict
    budget: int
    cache_bytes: int


def plan_route(num_examples, dim, k, *, method="auto", itemsize=4, chunk_size=None, num_steps=None,
               max_gram_examples=10_000, max_memory=None, block_size=None):
    """Chooses the route of `diffusion_spectrum` from `N`, `P`, `k` and the memory (see its docstring).

    Raises:
      MemoryError: no route fits in the budget (or the requested one does not).
    """
    n, p = int(num_examples), int(dim)
    budget = _memory.resolve_budget(max_memory)
    if chunk_size is None:
        chunk_size = int(min(n, _MAX_CHUNK, max(1, budget // 4 // (_JACOBIAN_COPIES * p * itemsize))))
    chunk = _JACOBIAN_COPIES * chunk_size * p * itemsize
    block = min(k + 10 if block_size is None else block_size, max(n - 1, 1))
    steps = num_steps or min(p, _lanczos.default_space(k))
    blocks = max(2, -(-_lanczos.default_space(k) // block))
    needs = {
        "gram": n * p * itemsize + 4 * n * n * 8 + 2 * n * _BLOCK * 8 + chunk,
        "krylov": p * block * (16 + itemsize) + 2 * n * block * blocks * 8 + chunk,
        "operator": (steps + 4) * p * 8 + chunk,
    }
    fits = {name: need <= budget for name, need in needs.items()}
    if method == "auto":
        m_est = min(n - 1, 3 * block)
        cheap_gram = n * n * p <= _GRAM_FLOPS or n <= 4 * m_est
        if n <= max_gram_examples and fits["gram"] and cheap_gram:
            method = "gram"
        elif fits["krylov"]:
            method = "krylov"
        elif fits["operator"]:
            method = "operator"
    if method == "auto" or not fits[method]:
        sizes = ", ".join(f"{name} {_memory.format_bytes(need)}" for name, need in needs.items())
        asked = "no route fits" if method == "auto" else f"the {method!r} route does not fit"
        raise MemoryError(
            f"diffusion_spectrum: {asked} in the memory budget of {_memory.format_bytes(budget)} "
            f"(N = {n} examples, P = {p} weights, k = {k}, {itemsize}-byte floats, chunks of {chunk_size} "
            f"examples); estimated needs: {sizes}. Use fewer examples, a smaller `chunk_size` or `k`, or a "
            "larger `max_memory`.")
    cache = max(0, budget - needs["krylov"]) if method == "krylov" else 0
    return RoutePlan(method, int(chunk_size), needs, budget, int(cache))


def diffusion_spectrum(model, loss, x, y, *, k=10, method="auto", eps=_FLOAT32_EPS, rtol=1e-3, num_steps=None,
                       chunk_size=None, seed=None, return_eigenvectors=False, max_gram_examples=10_000,
                       max_memory=None, tol=1e-5, block_size=None, verbose=False):
    """Spectrum, trace, isotropy and numerical rank of SGD's diffusion matrix `D(w)`.

    `D = (1/N) sum_i (g_i - gbar)(g_i - gbar)^T`, `g_i` the per-example
    gradients at the model's current weights (inference mode). See the module
    docstring for the routes.

    Example:
      >>> spec = diffusion_spectrum(model, "sparse_categorical_crossentropy", x[:2000], y[:2000], k=20)
      >>> spec.rank_fraction, spec.rank_tolerance  # the paper's numerical rank, with its tolerance
      >>> sgd_temperature(0.1, 128) * spec.eigenvalues  # eigenvalues of beta^-1 D

    Args:
      model, loss, x, y: a built Keras model, its loss, and `N` examples.
      k: how many top eigenvalues (and eigenvectors) to return.
      method: "gram" (exact: the `N x N` centered Gram matrix from the stored
        `N x P` Jacobian), "krylov" (block Krylov on the Gram matrix, the
        Jacobian streamed chunk by chunk: `control_opt.analysis.gram`),
        "operator" (Lanczos on `D v`), or "auto": the Gram route when it fits
        in memory, `N <= max_gram_examples` and its `N^2 P` flops are few
        (at most 2e11, or `N` at most four times the Krylov space), else
        krylov, else operator; never a route whose estimated memory exceeds
        the budget (a `MemoryError` naming the sizes if none fits).
      eps: machine epsilon for the rank tolerance `lambda_max * P * eps`
        (default float32's, 1.19e-7, as in the paper).
      rtol: relative threshold for `relative_rank`.
      num_steps: Lanczos steps (operator route; default `min(P, default_space(k))` = `max(4k, k + 30)`).
      chunk_size: examples per chunk (default: all when they fit, else up to
        256, as the memory budget allows).
      seed: start vector / start block seed (operator and krylov routes).
      return_eigenvectors: also return the top `k` eigenvectors.
      max_gram_examples: the largest `N` "auto" sends to the Gram route.
      max_memory: the memory budget in bytes (default half of the memory
        available now, `control_opt.analysis.memory`).
      tol: krylov route: stop when the top `k` residuals are at most
        `tol * lambda_max`.
      block_size: krylov route: columns per block (default `k + 10`).
      verbose: progress with estimated time left through absl logging.

    Returns:
      `DiffusionSpectrum`.
    """
    k = checks.check_int("k", k, 1)
    eps = checks.check_positive("eps", eps)
    rtol = checks.check_positive("rtol", rtol)
    max_gram_examples = checks.check_int("max_gram_examples", max_gram_examples, 1)
    if method not in ("auto", "gram", "krylov", "operator"):
        raise ValueError(f"`method` must be 'auto', 'gram', 'krylov' or 'operator', got {method!r}.")
    problem = ModelProblem(model, loss, x, y, chunk_size)
    if k > problem.dim:
        raise ValueError(f"`k` ({k}) must not exceed the number of weights ({problem.dim}).")
    dim, n = problem.dim, problem.num_examples
    plan = plan_route(n, dim, k, method=method, itemsize=problem.dtype.size, chunk_size=chunk_size,
                      num_steps=num_steps, max_gram_examples=max_gram_examples, max_memory=max_memory,
                      block_size=block_size)
    problem.chunk_size = plan.chunk_size
    if verbose:
        logging.info("diffusion_spectrum: N = %d, P = %d, k = %d: %s route, chunks of %d examples, budget %s "
                     "(estimated needs: %s)", n, dim, k, plan.method, plan.chunk_size,
                     _memory.format_bytes(plan.budget),
                     ", ".join(f"{a} {_memory.format_bytes(b)}" for a, b in plan.needs.items()))
    if plan.method == "gram":
        lam, top, vectors, gradient = _gram_route(problem, k, return_eigenvectors, verbose)
        summary = spectrum_summary(lam, dim, eps=eps, rtol=rtol)
        if top.size < k:
            top = np.concatenate([top, np.zeros(k - top.size)])  # D has P - N further zero eigenvalues
            if vectors is not None:
                vectors = np.concatenate([vectors, np.full((dim, k - vectors.shape[1]), np.nan)], axis=1)
        return DiffusionSpectrum(top, vectors, summary["trace"], summary["trace_of_square"],
                                 summary["eigenvalue_mean"], summary["eigenvalue_std"], summary["isotropy"],
                                 summary["anisotropy"], summary["rank"], summary["rank_fraction"],
                                 summary["rank_tolerance"], eps, summary["relative_rank"], rtol, False, gradient,
                                 dim, n, "gram", None, None, 1)
    if plan.method == "krylov":
        top, vectors, residuals, trace, gradient, products, passes = _krylov_route(
            problem, k, plan, tol, block_size, seed, return_eigenvectors, verbose)
    else:
        operator = _diffusion_operator(problem, verbose)
        pairs = _lanczos.lanczos_eigenvalues(operator, k, which="top", num_steps=num_steps, seed=seed,
                                             return_eigenvectors=return_eigenvectors, verbose=verbose)
        trace, gradient = _per_example_trace(problem, verbose)
        top, vectors, residuals = pairs.eigenvalues, pairs.eigenvectors, pairs.residuals
        products, passes = pairs.num_steps, 1
    top = np.maximum(top, 0.0)
    if top.size < k:  # the whole nonzero spectrum (rank D <= N - 1) was found: the rest are zeros
        top = np.concatenate([top, np.zeros(k - top.size)])
    summary = spectrum_summary(top, dim, eps=eps, rtol=rtol)
    lower = bool(top.size == 0 or top[-1] > min(summary["rank_tolerance"], rtol * top[0]))
    lower = lower and top.size < min(dim, n - 1)
    return DiffusionSpectrum(top, vectors, trace, None, trace / dim, None, None,
                             float(top[0] / (trace / dim)) if trace > 0 else float("nan"), summary["rank"],
                             summary["rank_fraction"], summary["rank_tolerance"], eps, summary["relative_rank"], rtol,
                             lower, gradient, dim, n, plan.method, residuals, products, passes)


def _krylov_route(problem, k, plan, tol, block_size, seed, return_eigenvectors, verbose):
    """Top-`k` of `D` by block Krylov on the centered Gram matrix, the Jacobian streamed (module `gram`)."""
    n = problem.num_examples
    if n < 2:
        return np.zeros(0), None, np.zeros(0), 0.0, problem.gradient()[1], 0, 1
    _, shift = problem.gradient()
    gram = GramOperator(problem, shift, cache_bytes=plan.cache_bytes, verbose=verbose)
    ones = np.full((n, 1), 1.0 / np.sqrt(n))  # G 1 = 0: kept out of the space, so never counted
    kk = min(k, n - 1)
    result = _block_krylov.block_krylov_eigenvalues(gram, kk, block_size=block_size, tol=tol, seed=seed,
                                                    exclude=ones, return_eigenvectors=return_eigenvectors,
                                                    verbose=verbose, what="diffusion matrix, block Krylov")
    gram.ensure_first_pass()
    vectors = None
    if return_eigenvectors:  # v = J_c^T u, normalized (one more pass)
        vectors = gram.rmatmat(result.eigenvectors)
        norms = np.linalg.norm(vectors, axis=0)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
        if vectors.shape[1] < k:
            vectors = np.concatenate([vectors, np.full((problem.dim, k - vectors.shape[1]), np.nan)], axis=1)
    if verbose:
        logging.info("diffusion_spectrum (krylov): %d products with G in %d blocks, %d passes over the data, "
                     "%d chunk evaluations; largest residual %.3g", result.num_products, result.num_blocks,
                     gram.num_passes, gram.num_chunk_evaluations, float(np.max(result.residuals)))
    return (result.eigenvalues, vectors, result.residuals, gram.trace, gram.gradient, result.num_products,
            gram.num_passes)
