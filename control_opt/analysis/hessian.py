"""The Hessian of a Keras model's loss through Hessian-vector products.

`H = grad^2 f(w)` of `f(w) = (1/N) sum_i l_i(w)` is never formed: `H v` is the
directional derivative of the gradient, `H v = d/de grad f(w + e v)|_{e=0}`,
computed

* double-backward (default): `H v = grad_w (grad f(w) . v)` (two nested
  tapes);
* or forward-over-reverse: a `tf.autodiff.ForwardAccumulator` pushes the
  tangent `v` through the reverse-mode gradient. The accumulator watches the
  raw weight *tensors* passed to `model.stateless_call` (watching Keras 3
  variables directly fails). TensorFlow computes most forward-mode rules by
  transposing a reverse-mode one, so this costs more: on LeNet over 4096
  examples a product took 2.6 gradient evaluations forward-over-reverse and
  2.1 double-backward (medians of paired ratios; about twice a gradient is
  the floor of an exact product), chunks of 512 or 1024 examples no fewer
  against a gradient chunked the same way; the float64 round trip through
  NumPy on each product took 0.3-0.5% of a gradient, and the first product,
  which traces the function, about half a gradient more.

Both are averaged over the data set chunk by chunk,
`H v = sum_chunks (n_c / N) H_c v`, since `f` is the mean loss. The model is
evaluated in inference mode. On top of `H v`: Lanczos for the extreme
eigenvalues (`hessian_eigenvalues`), stochastic Lanczos quadrature for the
spectral density (`spectral_density`), Hutchinson for the trace
(`hessian_trace`), and a flatness summary (`flatness_summary`).

References:
  B. A. Pearlmutter, Fast exact multiplication by the Hessian, Neural
  Computation 6 (1994); B. Ghorbani, S. Krishnan, Y. Xiao, An investigation
  into neural net optimization via Hessian eigenvalue density, ICML 2019;
  P. Chaudhari et al., Entropy-SGD, ICLR 2017 (local entropy and flatness).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging

from control_opt._internal import checks
from control_opt.analysis import density as _density
from control_opt.analysis import lanczos as _lanczos
from control_opt.analysis import trace as _trace
from control_opt.analysis._problem import LinearOperator, ModelProblem, as_operator

__all__ = [
    "FlatnessSummary",
    "HessianEigenvalues",
    "flatness_summary",
    "hessian_eigenvalues",
    "hessian_operator",
    "hessian_trace",
    "hessian_vector_product",
    "spectral_density",
]

_METHODS = ("forward_over_reverse", "double_backward")


def _chunk_hvp(problem, method):
    def forward_over_reverse(weights, tangents, x, y):
        with tf.autodiff.ForwardAccumulator(weights, tangents) as accumulator:
            with tf.GradientTape() as tape:
                tape.watch(weights)
                value = problem.mean_loss(weights, x, y)
            grads = tape.gradient(value, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out = [accumulator.jvp(g, unconnected_gradients=tf.UnconnectedGradients.ZERO) for g in grads]
        return problem.flatten(out)

    def double_backward(weights, tangents, x, y):
        with tf.GradientTape() as outer:
            outer.watch(weights)
            with tf.GradientTape() as tape:
                tape.watch(weights)
                value = problem.mean_loss(weights, x, y)
            grads = tape.gradient(value, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            inner = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangents)])
        out = outer.gradient(inner, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return problem.flatten(out)

    return forward_over_reverse if method == "forward_over_reverse" else double_backward


def hessian_operator(model, loss, x, y, *, chunk_size=None, method="double_backward", verbose=False):
    """`H` of the mean loss on `(x, y)` at the model's current weights, as a `LinearOperator`.

    `operator.matvec(v)` takes and returns flat float64 vectors (weights in the
    order of `model.trainable_variables`, flattened row-major); the product is
    computed in the model's dtype.
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    problem = ModelProblem(model, loss, x, y, chunk_size)
    fn = tf.function(_chunk_hvp(problem, method), autograph=False, reduce_retracing=True)
    chunks = list(problem.chunks())

    def matvec(v):
        tangents = problem.unflatten(v)
        total = np.zeros(problem.dim)
        for i, (xc, yc) in enumerate(chunks):
            total += (int(xc.shape[0]) / problem.num_examples) * fn(problem.weights, tangents, xc, yc).numpy()
            if verbose and len(chunks) > 1:
                logging.info("Hessian-vector product: chunk %d / %d", i + 1, len(chunks))
        return total

    operator = LinearOperator(matvec, problem.dim, "hessian")
    operator.problem = problem
    return operator


def _operator(model, loss, x, y, chunk_size, method, verbose):
    """A Hessian operator, or `model` itself when it already is an operator (or a matrix) and no data is given."""
    if loss is None and x is None and y is None:
        return as_operator(model, "model")
    if loss is None or x is None or y is None:
        raise ValueError("`loss`, `x` and `y` must all be given with a Keras `model`.")
    return hessian_operator(model, loss, x, y, chunk_size=chunk_size, method=method, verbose=verbose)


def hessian_vector_product(model, loss, x, y, v, *, chunk_size=None, method="double_backward"):
    """`H v`, `H = grad^2 (1/N) sum_i loss(y_i, model(x_i))`, averaged over the data in chunks.

    Example:
      >>> hv = hessian_vector_product(model, "mse", x, y, [np.ones(w.shape) for w in model.trainable_weights])

    Args:
      model: a built Keras model.
      loss: a Keras loss (object, name) or callable `loss(y_true, y_pred)`.
      x, y: the data (`N` examples).
      v: a flat vector of length `P` or a list shaped like `model.trainable_variables`.
      chunk_size: examples per chunk (default all).
      method: "double_backward" (default) or "forward_over_reverse".

    Returns:
      `H v` in the format of `v`: a flat float64 array, or a list of arrays.

    Each call builds (and traces) a new function: for many products use
    `hessian_operator(...).matvec`, which is traced once.
    """
    operator = hessian_operator(model, loss, x, y, chunk_size=chunk_size, method=method)
    problem = operator.problem
    if isinstance(v, (list, tuple)):
        if len(v) != len(problem.shapes) or any(tuple(np.shape(p)) != s for p, s in zip(v, problem.shapes)):
            raise ValueError(f"`v` as a list must match the shapes of `model.trainable_variables` {problem.shapes}, "
                             f"got {[tuple(np.shape(p)) for p in v]}.")
        flat = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in v])
        out = operator.matvec(flat)
        return [p.reshape(s) for p, s in zip(np.split(out, np.cumsum(problem.sizes)[:-1]), problem.shapes)]
    flat = np.asarray(v, dtype=np.float64)
    if flat.shape != (problem.dim,):
        raise ValueError(f"`v` must be a flat vector of length {problem.dim} (the number of trainable weights) or a "
                         f"list shaped like the weights, got shape {flat.shape}.")
    return operator.matvec(flat)


class HessianEigenvalues(NamedTuple):
    """What `hessian_eigenvalues` returns: `top` (descending) and `bottom` (ascending)
    Ritz values (None where not asked for), their `top_vectors` / `bottom_vectors`
    (`[P, k]`, or None), `top_residuals` / `bottom_residuals` (each value is within
    its residual of an eigenvalue of `H`: `|H v - theta v|` computed explicitly when
    the vectors are returned, else the Lanczos estimate `beta_m |s_m|`, which ignores
    the rounding errors of the products themselves), `num_steps`, `dim`."""

    top: Any
    bottom: Any
    top_vectors: Any
    bottom_vectors: Any
    top_residuals: Any
    bottom_residuals: Any
    num_steps: int
    dim: int


def hessian_eigenvalues(model, loss=None, x=None, y=None, *, k=5, which="top", num_steps=None, seed=None,
                        chunk_size=None, method="double_backward", return_eigenvectors=False, verbose=False,
                        tol=None):
    """Extreme eigenvalues of the Hessian by float64 Lanczos with full reorthogonalization.

    One Lanczos run from a Gaussian start vector; the Ritz values at both
    ends of the spectrum come from the same run (`which="both"`). By default
    at most `min(P, max(4k, k + 30))` steps (`lanczos.default_space`), ending
    once the requested Ritz values have estimated residuals at most
    `tol * |theta_max|` (`tol` default 1e-5; at least `max(2k, k + 10)` steps):
    on LeNet over 4096 examples the top 1 takes 18 steps; the top 10 reach
    the cap of 40 (the 10th value lies in the bulk; its residual is
    returned). With `num_steps` given, exactly that many steps (unless `tol`
    is given too).

    Args:
      model, loss, x, y: a Keras model and its data; or `model` a
        `LinearOperator` / symmetric matrix and the rest None.
      k: how many eigenvalues at each requested end.
      which: "top", "bottom" or "both".
      num_steps: Lanczos steps (clipped to `P`); default: see above.
      seed: integer seed of the start vector.
      return_eigenvectors: also return the Ritz vectors.
      tol: relative residual at which the run stops (see above).

    Returns:
      `HessianEigenvalues`.
    """
    op = _operator(model, loss, x, y, chunk_size, method, verbose)
    given = num_steps
    k, num_steps = _lanczos.check_eigen_arguments(k, which, num_steps, op.dim, ("top", "bottom", "both"))
    num_steps, stop = _lanczos.stopping_rule(k, which, num_steps if given is not None else None, tol, op.dim)
    result = _lanczos.lanczos(op, num_steps, seed=seed, keep_basis=return_eigenvectors, verbose=verbose, stop=stop)
    theta, s = _lanczos.tridiagonal_eigh(result)
    out = {}
    for end, order in (("top", np.argsort(theta)[::-1]), ("bottom", np.argsort(theta))):
        if which not in (end, "both"):
            out[end] = out[end + "_vectors"] = out[end + "_residuals"] = None
            continue
        order = order[: min(k, result.num_steps)]
        out[end] = theta[order]
        out[end + "_residuals"] = _lanczos.ritz_residuals(op, result, theta[order], s[:, order], return_eigenvectors)
        out[end + "_vectors"] = result.basis.T @ s[:, order] if return_eigenvectors else None
    return HessianEigenvalues(num_steps=result.num_steps, dim=op.dim, **out)


def spectral_density(model, loss=None, x=None, y=None, *, num_probes=4, num_steps=80, sigma=None,
                     sigma_fraction=0.01, grid=None, num_grid=1000, seed=None, chunk_size=None,
                     method="double_backward", verbose=False):
    """The Hessian's spectral density by stochastic Lanczos quadrature.

    `phi(t) = (1/n_v) sum_probes sum_j tau_j N(t; theta_j, sigma^2)`, nodes
    `theta_j` the eigenvalues of the Lanczos `T_m` of each Rademacher probe,
    weights `tau_j` the squared first components of its eigenvectors
    (`control_opt.analysis.density`). The smoothing width `sigma` is returned
    with the density (default 1% of the range of the nodes); the density
    integrates to 1.

    Args:
      model, loss, x, y: as in `hessian_eigenvalues` (or an operator / matrix).
      num_probes, num_steps, sigma, sigma_fraction, grid, num_grid, seed:
        see `stochastic_lanczos_quadrature`.

    Returns:
      `SpectralDensity` (with `fraction_within(tol)` and `moment(p)`).
    """
    op = _operator(model, loss, x, y, chunk_size, method, verbose)
    return _density.stochastic_lanczos_quadrature(op, num_probes=num_probes, num_steps=num_steps, sigma=sigma,
                                                  sigma_fraction=sigma_fraction, grid=grid, num_grid=num_grid,
                                                  seed=seed, verbose=verbose)


def hessian_trace(model, loss=None, x=None, y=None, *, num_probes=100, seed=None, distribution="rademacher",
                  chunk_size=None, method="double_backward", verbose=False):
    """`tr(H)` by Hutchinson's estimator, `(1/n) sum_k z_k^T H z_k`, with its standard error.

    Returns:
      `TraceEstimate` (`trace`, `stderr`, `samples`, `z_score(value)`,
      `consistent_with(value, num_stderr=3)`).
    """
    op = _operator(model, loss, x, y, chunk_size, method, verbose)
    return _trace.hutchinson_trace(op, num_probes=num_probes, seed=seed, distribution=distribution, verbose=verbose)


class FlatnessSummary(NamedTuple):
    """What `flatness_summary` returns.

    Attributes:
      top_eigenvalue: the largest Hessian eigenvalue (Lanczos).
      top_residual: its residual bound (see `HessianEigenvalues`).
      trace, trace_stderr: Hutchinson's estimate of `tr(H)` and its standard error.
      near_zero_fraction: SLQ estimate of the fraction of eigenvalues with
        `|lambda| <= near_zero_tolerance`.
      near_zero_tolerance: the absolute tolerance used (`near_zero_rtol * top_eigenvalue`).
      density: the `SpectralDensity`.
      local_entropy: with `gamma` given, the Laplace (quadratic) approximation of the
        curvature part of the local entropy at `w`, `-(1 / (2 beta)) tr log(I + H / gamma)`
        (0 for a flat minimum, the more negative the sharper), by SLQ; else None.
      local_entropy_stderr: its standard error over the SLQ probes (None without `gamma`).
    """

    top_eigenvalue: float
    top_residual: float
    trace: float
    trace_stderr: float
    near_zero_fraction: float
    near_zero_tolerance: float
    density: Any
    local_entropy: Any
    local_entropy_stderr: Any


def flatness_summary(model, loss=None, x=None, y=None, *, near_zero_rtol=1e-3, gamma=None, beta=1.0, num_steps=80,
                     num_probes=4, num_trace_probes=50, seed=None, chunk_size=None, method="double_backward",
                     verbose=False):
    """Top eigenvalue, trace, fraction of near-zero eigenvalues and (Laplace) local entropy of the Hessian.

    "Near zero": `|lambda| <= near_zero_rtol * lambda_max`, counted with the SLQ
    quadrature weights (unsmoothed).

    Local entropy (Entropy-SGD, docs/math.md section 3.1): the log-partition
    function of the local Gibbs measure `exp(-beta [f(w') + gamma/2 |w - w'|^2])`.
    For a quadratic `f` around `w` (Hessian `H`, `H + gamma I` positive definite)
    it is, per `beta` and up to terms that do not depend on the curvature,

        F_gamma(w) = -f(w) - (1 / (2 beta)) tr log(I + H / gamma)

    (a Laplace approximation; exact for quadratic `f` with `grad f(w) = 0`).
    The curvature term is estimated by stochastic Lanczos quadrature of
    `log(1 + lambda / gamma)` (`SpectralDensity.integral`). The MCMC estimate of
    `F` itself (beyond the quadratic approximation) is not computed here; see
    `control_opt.local_entropy_gradient` for its gradient.

    Args:
      gamma: the scope `gamma > 0` of the local entropy (None: not computed).
        Needs `gamma > -lambda_min` (checked on the SLQ nodes).
      beta: inverse temperature of the local Gibbs measure.
    """
    near_zero_rtol = checks.check_positive("near_zero_rtol", near_zero_rtol)
    if gamma is not None:
        gamma = checks.check_positive("gamma", gamma)
    beta = checks.check_positive("beta", beta)
    seed = checks.resolve_seed(seed)
    op = _operator(model, loss, x, y, chunk_size, method, verbose)
    eig = hessian_eigenvalues(op, k=1, num_steps=min(num_steps, op.dim), seed=seed, verbose=verbose)
    tr = hessian_trace(op, num_probes=num_trace_probes, seed=seed + 1, verbose=verbose)
    dens = spectral_density(op, num_probes=num_probes, num_steps=num_steps, seed=seed + 2, verbose=verbose)
    tolerance = near_zero_rtol * abs(float(eig.top[0]))
    entropy = entropy_stderr = None
    if gamma is not None:
        lowest = float(dens.nodes[dens.weights > 0].min())
        if lowest <= -gamma:
            raise ValueError(f"`gamma` ({gamma}) must exceed -lambda_min ({-lowest:.6g}) for the Laplace local "
                             "entropy: H + gamma I is not positive definite.")
        mean, stderr = dens.integral(lambda t: np.log1p(t / gamma))
        entropy, entropy_stderr = -op.dim * mean / (2 * beta), op.dim * stderr / (2 * beta)
    return FlatnessSummary(float(eig.top[0]), float(eig.top_residuals[0]), tr.trace, tr.stderr,
                           dens.fraction_within(tolerance), tolerance, dens, entropy, entropy_stderr)
