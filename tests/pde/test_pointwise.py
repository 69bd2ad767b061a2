"""Point-wise proximal point and Moreau envelope (TensorFlow, nested structures)."""

import numpy as np
import pytest
import tensorflow as tf

from control_opt.pde import hopf_lax, moreau_envelope, proximal_point


def test_isotropic_quadratic_reaches_closed_form():
    a, t = 2.0, 0.3
    w = tf.constant([1.0, -2.0, 0.5], tf.float64)
    result = proximal_point(lambda v: a * v, w, t)
    assert bool(result.converged)
    np.testing.assert_allclose(result.p, a * w.numpy() / (1 + t * a), rtol=1e-6)
    np.testing.assert_allclose(result.prox, w.numpy() / (1 + t * a), rtol=1e-6)
    assert 0 < int(result.iterations) < 100
    assert float(result.residual) <= 1e-6 * (1 + np.linalg.norm(result.p))


def test_anisotropic_quadratic_needs_the_damping():
    # Near p* the error is multiplied by damping - (1 - damping) t a per
    # coordinate: with t a = 2, -2 undamped (diverges) and -1/2 at damping 1/2.
    a = tf.constant([0.5, 2.0, 5.0], tf.float64)
    w = tf.constant([1.0, 1.0, -1.0], tf.float64)
    t = 0.4
    damped = proximal_point(lambda v: a * v, w, t, damping=0.5, tolerance=1e-10)
    assert bool(damped.converged)
    np.testing.assert_allclose(damped.p, (a * w / (1 + t * a)).numpy(), rtol=1e-8)
    undamped = proximal_point(lambda v: a * v, w, t, damping=0.0)
    assert not bool(undamped.converged)
    assert not np.isfinite(float(undamped.residual)) or float(undamped.residual) > 1.0


def test_too_large_t_is_reported_not_converged_even_with_damping():
    # t a = 5: damping 1/2 multiplies the error by 0.5 - 0.5 * 5 = -2.
    result = proximal_point(lambda v: 5.0 * v, tf.constant([1.0]), 1.0, damping=0.5, max_iterations=30)
    assert not bool(result.converged)
    # Stronger damping (0.8: 0.8 - 0.2 * 5 = -0.2) restores convergence.
    result = proximal_point(lambda v: 5.0 * v, tf.constant([1.0]), 1.0, damping=0.8)
    assert bool(result.converged)
    np.testing.assert_allclose(result.p, [5.0 / 6.0], rtol=1e-5)


def test_max_iterations_reached_is_not_converged():
    result = proximal_point(lambda v: 2.0 * v, tf.constant([1.0]), 0.4, max_iterations=2, tolerance=1e-12)
    assert int(result.iterations) == 2 and not bool(result.converged)


def test_non_diagonal_quadratic():
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    a = q @ np.diag([0.1, 0.5, 1.0, 2.0]) @ q.T
    w = rng.normal(size=4)
    t = 0.7
    result = proximal_point(lambda v: tf.linalg.matvec(a, v), tf.constant(w), t, tolerance=1e-10)
    assert bool(result.converged)
    np.testing.assert_allclose(result.p, a @ np.linalg.solve(np.eye(4) + t * a, w), rtol=1e-7)


def nested_quadratic(a_kernel, a_bias):
    def grad_fn(v):
        return {"kernel": a_kernel * v["kernel"], "bias": (a_bias * v["bias"][0],)}
    return grad_fn


def test_nested_structure_and_mixed_dtypes():
    w = {"kernel": tf.ones((2, 3), tf.float32), "bias": (tf.constant([2.0, -1.0], tf.float64),)}
    t = 0.25
    result = proximal_point(nested_quadratic(3.0, 1.0), w, t, tolerance=1e-7)
    tf.nest.assert_same_structure(result.p, w)
    tf.nest.assert_same_structure(result.prox, w)
    assert result.p["kernel"].dtype == tf.float32 and result.p["bias"][0].dtype == tf.float64
    assert bool(result.converged)
    np.testing.assert_allclose(result.p["kernel"], np.full((2, 3), 3.0 / 1.75), rtol=1e-5)
    np.testing.assert_allclose(result.p["bias"][0], [2.0 / 1.25, -1.0 / 1.25], rtol=1e-5)
    np.testing.assert_allclose(result.prox["bias"][0], [2.0 / 1.25, -1.0 / 1.25], rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_runs_under_tf_function_with_a_tensor_t(jit_compile):
    @tf.function(jit_compile=jit_compile)
    def solve(w, t):
        return proximal_point(lambda v: 2.0 * v, w, t)

    for t in (0.1, 0.4):   # the same trace serves both times
        result = solve(tf.constant([1.0, 3.0]), tf.constant(t))
        assert bool(result.converged)
        np.testing.assert_allclose(result.p, 2.0 * np.array([1.0, 3.0]) / (1 + 2.0 * t), rtol=1e-5)


def test_moreau_envelope_quadratic_with_and_without_grad_fn():
    a, t = 2.0, 0.5
    w = tf.constant([1.0, -3.0], tf.float64)
    loss = lambda v: 0.5 * a * tf.reduce_sum(v**2)
    expected = a * np.sum(w.numpy() ** 2) / (2 * (1 + a * t))
    for grad_fn in (lambda v: a * v, None):
        result = moreau_envelope(loss, grad_fn, w, t, tolerance=1e-10)
        assert bool(result.converged)
        np.testing.assert_allclose(float(result.u), expected, rtol=1e-9)
        np.testing.assert_allclose(result.prox, w.numpy() / (1 + a * t), rtol=1e-9)


def test_moreau_envelope_nested_with_tape():
    w = {"a": tf.constant([1.0, 2.0], tf.float64), "b": tf.constant(3.0, tf.float64),
         "unused": tf.constant([5.0], tf.float64)}
    loss = lambda v: tf.reduce_sum(v["a"] ** 2) + 0.5 * v["b"] ** 2   # a = 2 and a = 1
    t = 0.5
    result = moreau_envelope(loss, None, w, t, tolerance=1e-10)
    expected = 2 * 5.0 / (2 * 2.0) + 9.0 / (2 * 1.5)
    np.testing.assert_allclose(float(result.u), expected, rtol=1e-9)
    np.testing.assert_allclose(result.p["unused"], [0.0])


def test_agrees_with_the_grid_solver_on_a_nonconvex_loss():
    # t |f''| < 1: the proximal problem is strictly convex, the fixed point is its
    # minimizer, and the grid's Hopf-Lax is O(h^2) from it.
    t = 0.2
    x = np.linspace(-3.0, 3.0, 6001)
    grid = hopf_lax(np.cos(2 * x) + 0.3 * x**2, x, t)
    loss = lambda v: tf.reduce_sum(tf.cos(2 * v) + 0.3 * v**2)
    for i in (1500, 2900, 3700, 4400):
        result = moreau_envelope(loss, None, tf.constant([x[i]], tf.float64), t, tolerance=1e-10)
        assert bool(result.converged)
        np.testing.assert_allclose(float(result.u), grid.u[i], atol=1e-5)
        np.testing.assert_allclose(float(result.prox[0]), grid.prox[i], atol=2 * (x[1] - x[0]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(t=0.0), r"`t` must be a finite number > 0"),
    (dict(t=-1.0), r"`t` must be a finite number > 0"),
    (dict(t=0.1, damping=1.0), r"`damping` must be a float in \[0, 1\)"),
    (dict(t=0.1, damping=-0.1), r"`damping`"),
    (dict(t=0.1, max_iterations=-1), r"`max_iterations` must be an integer >= 0"),
    (dict(t=0.1, max_iterations=2.5), r"`max_iterations`"),
    (dict(t=0.1, tolerance=0.0), r"`tolerance` must be a finite number > 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        proximal_point(lambda v: v, tf.constant([1.0]), **kwargs)
    with pytest.raises(ValueError, match=match):
        moreau_envelope(lambda v: tf.reduce_sum(v), None, tf.constant([1.0]), **kwargs)


def test_batch_dims_judges_every_path_on_its_own():
    # N independent 1-D problems f_b = a_b/2 w^2, undamped: the error of path b
    # is multiplied by -t a_b per iteration. One slow path (t a = 0.9) among
    # N - 1 fast ones (t a = 0.1). One norm over the batch would stop it at
    # about sqrt(N) times the tolerance; judged per path it must go on.
    n, t, slow = 64, 0.5, 17
    ta = np.full(n, 0.1)
    ta[slow] = 0.9
    a = tf.constant((ta / t)[:, None], tf.float64)
    w = tf.constant(np.linspace(1.0, 2.0, n)[:, None], tf.float64)
    exact = (a * w / (1 + t * a)).numpy()
    tolerance = 1e-8
    result = proximal_point(lambda v: a * v, w, t, damping=0.0, tolerance=tolerance,
                            max_iterations=1000, batch_dims=1)
    assert result.converged.shape == (n,) and result.residual.shape == (n,)
    assert bool(tf.reduce_all(result.converged))
    p_norm = np.abs(result.p.numpy()[:, 0])
    assert np.all(result.residual.numpy() <= tolerance * (1 + p_norm))
    # The slow path's residual 1.9 |e_k| contracts by 0.9: it needs ~160 updates.
    assert int(result.iterations) > 150
    np.testing.assert_allclose(result.p.numpy(), exact, rtol=0, atol=2 * tolerance * (1 + p_norm.max()))
    # Stopped early, the slow path is reported not converged and the others are.
    early = proximal_point(lambda v: a * v, w, t, damping=0.0, tolerance=tolerance,
                           max_iterations=40, batch_dims=1)
    assert int(early.iterations) == 40
    expected = np.ones(n, bool)
    expected[slow] = False
    np.testing.assert_array_equal(early.converged.numpy(), expected)


def test_batch_dims_nested_and_a_diverging_path():
    # Two batch axes (2, 3) on a nested structure; the problem at [1, 2] has
    # t a = 5 (undamped: error times -5, diverges), the others t a = 0.5.
    t = 0.5
    ta = np.full((2, 3), 0.5)
    ta[1, 2] = 5.0
    a = tf.constant(ta / t, tf.float64)
    w = {"k": tf.ones((2, 3, 4), tf.float64), "b": tf.fill((2, 3), tf.constant(2.0, tf.float64))}
    grad_fn = lambda v: {"k": a[:, :, None] * v["k"], "b": a * v["b"]}
    result = proximal_point(grad_fn, w, t, damping=0.0, tolerance=1e-9, max_iterations=500, batch_dims=2)
    expected = np.ones((2, 3), bool)
    expected[1, 2] = False
    np.testing.assert_array_equal(result.converged.numpy(), expected)
    good = (a / (1 + t * a)).numpy()[expected]
    np.testing.assert_allclose(result.p["b"].numpy()[expected], 2.0 * good, rtol=1e-8)
    np.testing.assert_allclose(result.p["k"].numpy()[expected], np.repeat(good[:, None], 4, 1), rtol=1e-8)


@pytest.mark.parametrize("w,batch_dims,match", [
    (tf.constant([1.0]), -1, r"`batch_dims` must be an integer >= 0"),
    (tf.constant([1.0]), 2, r"`batch_dims`=2 but a part of `w` has shape \(1,\)"),
    ({"a": tf.ones((2, 3)), "b": tf.ones((3,))}, 1, r"share their 1 leading batch axes"),
])
def test_bad_batch_dims(w, batch_dims, match):
    with pytest.raises(ValueError, match=match):
        proximal_point(lambda v: v, w, 0.1, batch_dims=batch_dims)
