"""Bad input to the grid solvers: a ValueError naming the argument."""

import numpy as np
import pytest

from control_opt.pde import hopf_lax, viscous_hj

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
    assert np.isfinite(hopf_lax(f, X, 0.5).u).all()
    with pytest.raises(ValueError, match=r"`values` must be finite"):
        viscous_hj(f, X, 0.5, 2.0)


def test_accepted_forms():
    # Lists, numpy scalars, integer grids, a list of two axes for 2-D.
    assert hopf_lax(list(F), list(X), np.float32(0.5)).u.shape == (11,)
    assert hopf_lax(np.zeros(5), np.arange(5), 1).u.shape == (5,)
    assert viscous_hj(np.zeros((11, 4)), [X, np.arange(4.0)], 0.5, 3).grad.shape == (2, 11, 4)
    # Two axes of equal length in a tuple are a 2-D grid, not a (2, n) array.
    assert hopf_lax(np.zeros((11, 11)), (X, X), 0.5).prox.shape == (2, 11, 11)
