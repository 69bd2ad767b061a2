"""Point-wise Hamilton-Jacobi quantities for a high-dimensional loss `f`.

On a grid (`control_opt.pde.hopf_lax`, `control_opt.pde.viscous_hj`) the whole
solution `u(., t)` is computed at once; for a model's loss only the value and
gradient at the current weights `w` are within reach. This module computes them
with TensorFlow, on a single tensor or on any nested structure of tensors
(`tf.nest`), eagerly or inside `tf.function` / XLA.

Non-viscous HJ `u_t = -1/2 |grad u|^2`, `u(., 0) = f`, solved by the Hopf-Lax
formula ([1] section 3; docs/math.md section 4):

    u(w, t) = min_y  f(y) + |w - y|^2 / (2 t)            (Moreau envelope)
    grad u(w, t) = p*,   p* = grad f(w - t p*),          (Hopf-Lax control)
    prox = w - t p*                                      (proximal point)

`proximal_point` finds `p*` by the damped fixed-point iteration

    p_0 = grad f(w),      p_{k+1} = damping p_k + (1 - damping) grad f(w - t p_k),

which is the authors' "FP" variant ([1] section 5; the HJ optimizer's inner loop
with `beta1 = damping`). Near `p*` the error is multiplied by
`damping I - (1 - damping) t Hess f(prox)`: the undamped iteration (damping = 0)
contracts only while `t |Hess f| < 1`; damping 1/2 extends that to
`t |Hess f| < 3`. Beyond, the iteration diverges and the report says so.

The viscous counterpart, the local entropy `grad u = (w - <y>)/t` with `<y>` the
mean of the local Gibbs measure, has no fixed-point form; its MCMC estimator
lives in `control_opt.local_entropy_gradient` (the SDE/MCMC module), not here.

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      Relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences 5, 30 (2018).
      https://arxiv.org/abs/1704.04932
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import tensorflow as tf

from control_opt._internal import checks
from control_opt.formulas.local_entropy import running_mean
from control_opt.formulas.proximal import proximal_probe

__all__ = [
    "MoreauEnvelopeResults",
    "ProximalPointResults",
    "moreau_envelope",
    "proximal_point",
]


class ProximalPointResults(NamedTuple):
    """Report of `proximal_point`.

    Attributes:
      p: the Hopf-Lax control `p* = grad u(w, t)`, same structure as `w`.
      prox: the proximal point `w - t p`, same structure as `w`.
      iterations: int32 scalar tensor, the number of damped updates performed
        (the gradient was evaluated `iterations + 2` times).
      converged: bool tensor, `residual <= tolerance * (1 + |p|)`; a scalar,
        or one per batch element (shape `batch_shape`) with `batch_dims > 0`.
      residual: the fixed-point residual `|grad f(w - t p) - p|` of the
        returned `p` (2-norm over the structure; over the non-batch axes,
        one per batch element, with `batch_dims > 0`).
    """

    p: Any
    prox: Any
    iterations: tf.Tensor
    converged: tf.Tensor
    residual: tf.Tensor


class MoreauEnvelopeResults(NamedTuple):
    """Report of `moreau_envelope`: `u = u(w, t)` plus the fields of `ProximalPointResults`."""

    u: tf.Tensor
    p: Any
    prox: Any
    iterations: tf.Tensor
    converged: tf.Tensor
    residual: tf.Tensor


def _static_number(x):
    """The Python value of `x` if it is known before running, else None."""
    try:
        value = tf.get_static_value(x)
    except (TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # not a scalar: checked by the caller's math instead


def _check_arguments(t, damping, max_iterations, tolerance):
    t_value = _static_number(t)
    if t_value is not None:
        checks.check_positive("t", t_value)
    checks.check_unit_interval("damping", damping)
    checks.check_int("max_iterations", max_iterations, minimum=0)
    checks.check_positive("tolerance", tolerance)


def _global_norm(structure, batch_dims=0):
    """The 2-norm over every part of `structure`, one per batch element: the
    leading `batch_dims` axes are kept (shape `batch_shape`), all others summed."""
    leaves = tf.nest.flatten(structure)
    squares = [tf.reduce_sum(tf.square(tf.cast(x, tf.float32 if x.dtype == tf.float16 else x.dtype)),
                             axis=list(range(batch_dims, len(x.shape))))
               for x in leaves]
    dtype = squares[0].dtype
    return tf.sqrt(tf.add_n([tf.cast(s, dtype) for s in squares]))


def _check_batch_dims(w, batch_dims):
    """`batch_dims` leading axes that every part of `w` has, with one shape."""
    batch_dims = checks.check_int("batch_dims", batch_dims, minimum=0)
    shapes = [x.shape for x in tf.nest.flatten(w)]
    for shape in shapes:
        if shape.rank is None or shape.rank < batch_dims:
            raise ValueError(f"`batch_dims`={batch_dims} but a part of `w` has shape {shape}: every part "
                             f"must have the {batch_dims} leading batch axes.")
    batch_shapes = {tuple(shape[:batch_dims].as_list()) for shape in shapes}
    if len(batch_shapes) > 1:
        raise ValueError(f"the parts of `w` must share their {batch_dims} leading batch axes "
                         f"(`batch_dims`), got batch shapes {sorted(batch_shapes, key=str)}.")
    return batch_dims


def proximal_point(
    grad_fn: Callable[[Any], Any],
    w,
    t,
    *,
    damping: float = 0.5,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
    batch_dims: int = 0,
) -> ProximalPointResults:
    """Hopf-Lax control `p* = grad f(w - t p*)` and proximal point `w - t p*`.

    Damped fixed-point iteration (module docstring, [1] section 5):

        p_0 = grad f(w),   p_{k+1} = damping p_k + (1 - damping) grad f(w - t p_k),

    stopped when `|grad f(w - t p_k) - p_k| <= tolerance (1 + |p_k|)`, after
    `max_iterations` updates, or as soon as the residual is not finite (the
    iteration diverged: `converged` is then False).

    Batches of independent problems (e.g. the SDE paths of `HopfLaxControl`):
    with `batch_dims = k`, the leading `k` axes of every part of `w` index
    independent problems `w_b` (every part has the same batch shape), and each
    one is judged on its own: the norms are taken over the other axes, one per
    `b`, so `residual` and `converged` have the batch shape, and the iteration
    goes on while any finite `b` is above its tolerance,

        |grad f(w_b - t p_b) - p_b| <= tolerance (1 + |p_b|)   for every b.

    (One norm over the whole batch would let one bad path pass at about
    `sqrt(N)` times the tolerance among `N` converged ones.) A `b` whose
    residual is not finite has diverged: it no longer holds the loop, and its
    `converged` is False. All `b` are updated together, so `grad_fn` must treat
    them independently. `t` is one scalar for the whole batch.

    Example:
      >>> r = proximal_point(lambda w: 2.0 * w, tf.constant([1.0]), 0.25)
      >>> r.p  # a w / (1 + t a) = 2 / 1.5
      <tf.Tensor: ... numpy=array([1.3333...], dtype=float32)>

    Args:
      grad_fn: `w -> grad f(w)`, taking and returning the structure of `w`.
      w: a tensor or a nested structure of tensors (floating point).
      t: the Hopf-Lax time `t = 1/gamma > 0` (number or scalar tensor).
      damping: weight of the previous iterate, in [0, 1); 0 is the plain
        iteration `p <- grad f(w - t p)`.
      max_iterations: the most damped updates to perform.
      tolerance: relative tolerance on the fixed-point residual (of each
        batch element when `batch_dims > 0`).
      batch_dims: the number of leading axes of every part of `w` that index
        independent problems (0: `w` is one problem).

    Returns:
      A `ProximalPointResults(p, prox, iterations, converged, residual)`;
      `converged` and `residual` have the batch shape (scalars when
      `batch_dims = 0`), `iterations` is a scalar.

    Raises:
      ValueError: `t <= 0` (when known statically), `damping` outside [0, 1),
        negative `max_iterations`, `tolerance <= 0`, negative `batch_dims` or
        parts of `w` without a common batch shape.
    """
    _check_arguments(t, damping, max_iterations, tolerance)
    w = tf.nest.map_structure(tf.convert_to_tensor, w)
    batch_dims = _check_batch_dims(w, batch_dims)
    t = tf.convert_to_tensor(t)

    def grad_at(x):
        g = grad_fn(x)
        tf.nest.assert_same_structure(w, g)
        return tf.nest.map_structure(lambda gi, wi: tf.cast(tf.convert_to_tensor(gi), wi.dtype), g, w)

    def residual_of(p, g):
        return _global_norm(tf.nest.map_structure(tf.subtract, g, p), batch_dims)

    def met(p, r):
        return r <= tol * (1.0 + _global_norm(p, batch_dims))

    p0 = grad_at(w)
    g0 = grad_at(proximal_probe(w, t, p0))
    r0 = residual_of(p0, g0)
    tol = tf.cast(tolerance, r0.dtype)

    def not_done(i, p, g, r):
        del i, g
        # Some problem is still finite and above its tolerance (NaN fails `met`).
        return tf.reduce_any(tf.logical_and(tf.math.is_finite(r), tf.logical_not(met(p, r))))

    def body(i, p, g, r):
        del r
        p = tf.nest.map_structure(lambda pi, gi: running_mean(pi, gi, tf.cast(damping, pi.dtype)), p, g)
        g = grad_at(proximal_probe(w, t, p))
        return i + 1, p, g, residual_of(p, g)

    iterations, p, _, residual = tf.while_loop(
        not_done, body, (tf.constant(0, tf.int32), p0, g0, r0),
        maximum_iterations=int(max_iterations))
    converged = tf.logical_and(tf.math.is_finite(residual), met(p, residual))
    return ProximalPointResults(p=p, prox=proximal_probe(w, t, p), iterations=iterations,
                                converged=converged, residual=residual)


def _tape_gradient(loss_fn):
    def grad_fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(x)
        g = tape.gradient(loss, x)
        # A part the loss does not depend on has gradient zero, not None.
        return tf.nest.map_structure(lambda gi, xi: tf.zeros_like(xi) if gi is None else gi, g, x)
    return grad_fn


def moreau_envelope(
    loss_fn: Callable[[Any], tf.Tensor],
    grad_fn: Callable[[Any], Any] | None,
    w,
    t,
    *,
    damping: float = 0.5,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> MoreauEnvelopeResults:
    """Moreau envelope `u(w, t) = f(prox) + |w - prox|^2 / (2 t)` at `w`.

    This is the Hopf-Lax solution of `u_t = -1/2 |grad u|^2` at `(w, t)` when the
    fixed point `prox = w - t p*` found by `proximal_point` is the global
    minimizer of `y -> f(y) + |w - y|^2/(2t)` (always for convex `f`; for a
    non-convex `f` it is a stationary point, hence an upper bound near it).
    Since `w - prox = t p`, the penalty is computed as `t |p|^2 / 2`.

    Args:
      loss_fn: `w -> f(w)`, a scalar tensor.
      grad_fn: `w -> grad f(w)`, or None to differentiate `loss_fn` with
        `tf.GradientTape`.
      w, t, damping, max_iterations, tolerance: as in `proximal_point`.

    Returns:
      A `MoreauEnvelopeResults(u, p, prox, iterations, converged, residual)`.
    """
    _check_arguments(t, damping, max_iterations, tolerance)
    w = tf.nest.map_structure(tf.convert_to_tensor, w)
    if grad_fn is None:
        grad_fn = _tape_gradient(loss_fn)
    report = proximal_point(grad_fn, w, t, damping=damping, max_iterations=max_iterations,
                            tolerance=tolerance)
    loss = tf.convert_to_tensor(loss_fn(report.prox))
    penalty = tf.add_n([tf.cast(tf.reduce_sum(tf.square(pi)), loss.dtype)
                        for pi in tf.nest.flatten(report.p)])
    u = loss + 0.5 * tf.cast(t, loss.dtype) * penalty
    return MoreauEnvelopeResults(u=u, **report._asdict())
