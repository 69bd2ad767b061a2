"""Bad input to the grid solvers: a ValueError naming the argument."""

import numpy as np
import pytest

from control_opt.pde import hopf_lax, viscous_hj
from control_opt.pde.lower_envelope import _brute_force

X = np.linspace(-1.0, 1.0, 11)
F = X**2


def solvers():
    return [lambda values, grid, t: hopf_lax(values, grid, t),
            lambda values, grid, t: viscous_hj(values, grid, t, 2.0)]


@pytest.mark.parametrize("solve", solvers(), ids=["hopf_lax", "viscous_hj"])
@pytest.mark.parametrize("grid,values,match", [
    (np.zeros((3, 4)), np.zeros((3, 4)), r"`grid` must be a 1-D array"),
    (np.array([0.0, 1.0, 3.0, 4.0]), np.zeros(4), r"`grid` must be equally spaced"),
    (X[::-1], F, r"`grid` must be sorted in strictly increasing order"),
    (np.array([0.0, 0.0, 0.0]), np.zeros(3), r"`grid` must be sorted"),
    (np.array([1.0]), np.zeros(1), r"`grid` must hold at least 2 points"),
    (np.array([0.0, np.nan, 2.0]), np.zeros(3), r"`grid` must hold finite points"),
    ((X, np.array([0.0, 2.0, 3.0])), np.zeros((11, 3)), r"`grid\[1\]` must be equally spaced"),
    ((X[::-1], X), np.zeros((11, 11)), r"`grid\[0\]` must be sorted"),
    ((X, X, X), np.zeros((11, 11, 11)), r"`grid` must be a 1-D array or a tuple of two"),
    (X, np.zeros(10), r"`values` has shape \(10,\) but the grid has shape \(11,\)"),
    ((X, X[:5]), np.zeros((5, 11)), r"`values` has shape \(5, 11\) but the grid has shape \(11, 5\)"),
    (X, np.where(X > 0, np.nan, F), r"`values` must not contain NaN"),
    (X, np.where(X > 0, -np.inf, F), r"`values` must not contain -inf"),
])
def test_bad_grid_or_values(solve, grid, values, match):
    with pytest.raises(ValueError, match=match):
        solve(values, grid, 0.5)


@pytest.mark.parametrize("solve", solvers(), ids=["hopf_lax", "viscous_hj"])
@pytest.mark.parametrize("t", [0.0, -1.0, np.inf, np.nan, "1", [0.5, 1.0], None, True])
def test_bad_t(solve, t):
    with pytest.raises(ValueError, match=r"`t` must be a finite number > 0"):
        solve(F, X, t)


@pytest.mark.parametrize("beta", [0.0, -2.0, np.inf, np.nan])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match=r"`beta` must be a finite number > 0"):
        viscous_hj(F, X, 0.5, beta)


def test_plus_inf_is_a_constraint_for_hopf_lax_only():
    f = np.where(X > 0.5, np.inf, F)
    # Grid points w > 0.5 are infeasible but still have a value: f = w^2 (a = 2)
    # and t = 0.5 put the continuous prox at w/(1 + a t) = w/2 <= 0.5, feasible,
    # so u is the closed form a w^2/(2 (1 + a t)) = w^2/2 up to the grid error
    # (a + 1/t) h^2/8 of minimizing over grid points only.
    result = hopf_lax(f, X, 0.5)
    u, _ = _brute_force(f, X, 0.5)
    np.testing.assert_allclose(result.u, u, rtol=1e-12, atol=1e-12)
    h = X[1] - X[0]
    assert np.all(result.u - X**2 / 2 >= -1e-12)
    assert np.all(result.u - X**2 / 2 <= 4.0 * h**2 / 8 + 1e-12)
    assert np.all(np.abs(result.prox) <= 0.5)
    with pytest.raises(ValueError, match=r"`values` must be finite"):
        viscous_hj(f, X, 0.5, 2.0)


def test_accepted_forms():
    # Lists, numpy scalars, integer grids, a list of two axes for 2-D.
    assert hopf_lax(list(F), list(X), np.float32(0.5)).u.shape == (11,)
    assert hopf_lax(np.zeros(5), np.arange(5), 1).u.shape == (5,)
    assert viscous_hj(np.zeros((11, 4)), [X, np.arange(4.0)], 0.5, 3).grad.shape == (2, 11, 4)
    # Two axes of equal length in a tuple are a 2-D grid, not a (2, n) array.
    assert hopf_lax(np.zeros((11, 11)), (X, X), 0.5).prox.shape == (2, 11, 11)


@pytest.mark.parametrize("solve", solvers(), ids=["hopf_lax", "viscous_hj"])
@pytest.mark.parametrize("t", [1e-310, 5e-324, np.nextafter(np.finfo(np.float64).tiny, 0)])
def test_subnormal_t_is_rejected_by_both_solvers(solve, t):
    # 1/t overflows: the kernels' curvatures h^2/(2t) and beta/(2t) would be inf
    # and inf * 0 = NaN everywhere. One rule for both: t must be a normal float.
    with pytest.raises(ValueError, match=r"`t` must be a normal float > 0, at least 2.2250738585072014e-308"):
        solve(F, X, t)


@pytest.mark.parametrize("t", [np.finfo(np.float64).tiny, 1e-300])
def test_smallest_normal_t_gives_the_t_to_zero_limit(t):
    # The curvature h^2/(2t) (hopf_lax) or beta/(2t) (viscous_hj, with a huge
    # beta) overflows; it is capped, which leaves u = f, prox = w, grad = 0.
    x = np.linspace(-9.0, 9.0, 7)   # h = 3: h^2/(2t) overflows at t = tiny, beta/(2t) at beta = 1e10
    f = np.cos(x) + x**2
    hl = hopf_lax(f, x, t)
    np.testing.assert_array_equal(hl.u, f)
    np.testing.assert_array_equal(hl.prox, x)
    for beta in (2.0, 1e10, 1e300):
        viscous = viscous_hj(f, x, t, beta)
        np.testing.assert_allclose(viscous.u, f, rtol=1e-15, atol=0)
        np.testing.assert_array_equal(viscous.grad, np.zeros_like(x))
    # With constraints and in 2-D too.
    g = np.where(x > 0, np.inf, f)
    hl = hopf_lax(g, x, t)
    np.testing.assert_array_equal(hl.u[x <= 0], f[x <= 0])
    assert np.all(hl.u[x > 0] > 1e300) and np.all(hl.prox[x > 0] == 0.0)
    f2 = f[:, None] + f[None, :]
    np.testing.assert_array_equal(hopf_lax(f2, (x, x), t).u, f2)
    np.testing.assert_allclose(viscous_hj(f2, (x, x), t, 1e10).u, f2, rtol=1e-15, atol=0)
