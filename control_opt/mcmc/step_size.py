"""Default SGLD step sizes on the local Gibbs measure: curvature-blind and curvature-aware.

For the target `p(w') ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])` the SGLD step
`h` corresponds to Entropy-SGD's inner learning rate `eta' = h beta / 2`
(docs/math.md section 3). The chain is stable while `eta' K < 2` with
`K = lambda_max(Hess f) + gamma` the stiffest curvature of the energy, and its
O(h) bias grows with `eta' K`; `curvature_step_size` sets `eta' K` to a fixed
fraction of that limit, `default_step_size` ignores `f`.
"""

from __future__ import annotations

import tensorflow as tf

from control_opt._internal import sampling, structures

__all__ = ["CURVATURE_FRACTION", "curvature_step_size", "default_step_size", "largest_curvature"]

# Default `eta' K`, `K = lambda_max(Hess f) + gamma` at the anchor: a tenth of the
# stability limit `eta' K < 2`; for a Gaussian the unadjusted chain's variance in the
# stiffest direction is then inflated by 1 / (1 - eta' K / 2) = 1.11 and its mean is exact.
CURVATURE_FRACTION = 0.2


def default_step_size(beta, gamma):
    """The curvature-blind step `h = 0.1 / (beta gamma)`, i.e. `eta' gamma = 0.05`.

    Resolves the coupling's variance `1/(beta gamma)` in about 20 steps but
    ignores the curvature of `f`: its O(h) bias grows with `eta' lambda_max(Hess f)`
    (on the double well `(w^2 - 1)^2` at `w = 1.4`, `beta = 4`, `gamma = 0.5`,
    where `eta' K = 2` at the anchor, the gradient estimate is off by 0.02-0.03,
    4-10 of its standard errors, or the chains diverge, depending on the seed).
    `local_entropy_gradient` uses `curvature_step_size` instead; this one stays
    the default of `LocalEntropyControl`, which builds its kernel at every SDE step.
    """
    return 0.1 / (beta * gamma)


def largest_curvature(loss_fn, anchor, *args, num_iterations=20, seed=(7, 11)):
    """`|lambda|_max` of the Hessian of `f` at `anchor` by power iteration on Hessian-vector products.

    `num_iterations` products (double backprop) from a seeded random start;
    returns a scalar tensor `>= 0` (the Rayleigh quotient's magnitude, an
    estimate of the spectral radius of `Hess f(anchor)`). Graph-safe.
    """
    anchor = structures.as_tensors(anchor, "anchor")
    flat = tf.nest.flatten(anchor)

    def hvp(vectors):
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(flat)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(flat)
                value = loss_fn(tf.nest.pack_sequence_as(anchor, flat), *args)
            grads = inner.gradient(value, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vectors)])
        return outer.gradient(dot, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def norm(vectors):
        return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(v)) for v in vectors]))

    v = sampling.standard_normal_like(flat, tf.constant(seed, tf.int32), "power_iteration")
    v = [x / norm(v) for x in v]
    rayleigh = tf.constant(0.0, flat[0].dtype)
    for _ in range(num_iterations):
        hv = hvp(v)
        rayleigh = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(v, hv)])
        size = norm(hv)
        v = [tf.math.divide_no_nan(x, size) for x in hv]  # a zero Hessian gives 0
    return tf.abs(rayleigh)


def curvature_step_size(loss_fn, anchor, beta, gamma, *args, fraction=CURVATURE_FRACTION, num_iterations=20):
    """The default SGLD step: `eta' (lambda_max + gamma) = fraction`, `h = 2 eta' / beta`.

    `lambda_max` is `largest_curvature` of `f` at the anchor (power iteration),
    so `h` follows the stiffest direction of `f + gamma/2 |w - .|^2` there
    (the stability limit of the step is `eta' K < 2`, and its O(h) bias
    scales with `eta' K`). Curvature elsewhere in the Gibbs measure's bulk can
    be larger; `local_entropy_gradient` reports a bias diagnostic (the estimate
    at half the step) next to the standard error.
    """
    lam = largest_curvature(loss_fn, anchor, *args, num_iterations=num_iterations)
    return 2.0 * fraction / (tf.cast(beta, lam.dtype) * (lam + tf.cast(gamma, lam.dtype)))
