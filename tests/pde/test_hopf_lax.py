"""Hopf-Lax on grids: O(n) lower envelope against the brute force, closed forms, PDE."""

import numpy as np
import pytest

from control_opt.pde import hopf_lax
from control_opt.pde.lower_envelope import _brute_force, lower_envelope_transform
from tests.pde.brute_force import brute_force_2d


def nonconvex(x):
    return np.cos(2.0 * x) + 0.3 * x**2


def objective_at(f, x, prox, t):
    """`f(prox) + (x - prox)^2/(2t)` with prox looked up on the grid."""
    k = np.rint((prox - x[0]) / (x[1] - x[0])).astype(int)
    assert np.allclose(x[k], prox)
    return f[k] + (x - prox) ** 2 / (2.0 * t)


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_1d_random_nonconvex_with_constraints(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    x = np.linspace(-2.0, 3.0, n)
    f = rng.normal(size=n) * rng.uniform(0.1, 5.0) + np.sin(7 * x)
    f[rng.uniform(size=n) < 0.3] = np.inf
    t = float(rng.choice([1e-4, 0.03, 0.5, 10.0]))
    fast = hopf_lax(f, x, t)
    u, prox = _brute_force(f, x, t)
    finite = np.isfinite(u)
    np.testing.assert_array_equal(np.isfinite(fast.u), finite)
    np.testing.assert_allclose(fast.u[finite], u[finite], rtol=1e-12, atol=1e-12)
    # Argmins may differ on exact ties only: the objective at both is the minimum.
    np.testing.assert_allclose(objective_at(f, x, fast.prox, t)[finite], u[finite], rtol=1e-12, atol=1e-12)
    assert np.all(np.isnan(fast.prox[~finite]))


def test_all_infinite_gives_infinite_u_and_nan_prox():
    x = np.linspace(0.0, 1.0, 9)
    result = hopf_lax(np.full(9, np.inf), x, 0.3)
    assert np.all(np.isposinf(result.u)) and np.all(np.isnan(result.prox))
    f = np.full(9, np.inf)
    f[3] = 1.0   # a single feasible point: u is its parabola, everywhere
    result = hopf_lax(f, x, 0.3)
    np.testing.assert_allclose(result.u, 1.0 + (x - x[3]) ** 2 / 0.6)
    np.testing.assert_array_equal(result.prox, np.full(9, x[3]))


def test_constraint_is_never_chosen():
    x = np.linspace(-1.0, 1.0, 201)
    f = np.where(np.abs(x) < 0.5, np.inf, -x)   # feasible set |x| >= 0.5
    result = hopf_lax(f, x, 0.2)
    assert np.all(np.abs(result.prox) >= 0.5 - 1e-12)
    # The value: min over the feasible y of -y + (w - y)^2/(2t) is reached at
    # y = w + t where feasible (w + t >= 0.5 and w + t <= 1), else at an end of
    # the feasible set: u = -w - t/2 for w in [0.3, 0.8], by the closed form.
    u, prox = _brute_force(f, x, 0.2)
    np.testing.assert_allclose(result.u, u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(objective_at(f, x, result.prox, 0.2), u, rtol=1e-12, atol=1e-12)
    middle = (x >= 0.3 - 1e-9) & (x <= 0.8 + 1e-9)
    np.testing.assert_allclose(result.u[middle], -x[middle] - 0.1, atol=1e-12)
    np.testing.assert_allclose(result.prox[middle], x[middle] + 0.2, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_2d_random_nonconvex_with_constraints(seed):
    rng = np.random.default_rng(100 + seed)
    n0, n1 = (int(k) for k in rng.integers(2, 30, size=2))
    x0, x1 = np.linspace(-1.0, 2.0, n0), np.linspace(0.0, 1.5, n1)
    f = rng.normal(size=(n0, n1)) * 2.0
    f[rng.uniform(size=f.shape) < 0.25] = np.inf
    if seed == 0:
        f[:, 1] = np.inf   # a whole infeasible column
    t = float(rng.choice([0.01, 0.2, 3.0]))
    result = hopf_lax(f, (x0, x1), t)
    expected = brute_force_2d(f, x0, x1, t)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(result.u), finite)
    np.testing.assert_allclose(result.u[finite], expected[finite], rtol=1e-12, atol=1e-12)
    assert result.prox.shape == (2, n0, n1)
    # The returned 2-D prox attains the minimum.
    w0, w1 = np.meshgrid(x0, x1, indexing="ij")
    k = np.rint((result.prox[0] - x0[0]) / (x0[1] - x0[0]))
    l = np.rint((result.prox[1] - x1[0]) / (x1[1] - x1[0]))
    k, l = k[finite].astype(int), l[finite].astype(int)
    attained = f[k, l] + ((w0[finite] - x0[k]) ** 2 + (w1[finite] - x1[l]) ** 2) / (2.0 * t)
    np.testing.assert_allclose(attained, expected[finite], rtol=1e-12, atol=1e-12)


def test_lower_envelope_is_exact_for_a_large_index_range():
    # The intersection is computed without c q^2 - c r^2, which would cancel at
    # q ~ 10^5 (c q^2 ~ 10^9 against differences of f ~ 10^-3). With c = 0.1
    # and 0 <= f < 0.5, no index 3 or more away can win: a windowed oracle is exact.
    rng = np.random.default_rng(3)
    n, c, window = 100_000, 0.1, 3
    f = rng.uniform(0.0, 1e-3, size=n) + 0.4 * (rng.uniform(size=n) < 0.5)
    d, arg = lower_envelope_transform(f, c)
    padded = np.concatenate([np.full(window, np.inf), f, np.full(window, np.inf)])
    shifts = np.arange(-window, window + 1)
    candidates = np.stack([padded[window + k:window + k + n] + c * k**2 for k in shifts])
    np.testing.assert_allclose(d, candidates.min(axis=0), rtol=0, atol=1e-15)
    assert np.mean(arg != np.arange(n)) > 0.2   # neighbours do win
    np.testing.assert_array_equal(arg, np.arange(n) + shifts[candidates.argmin(axis=0)])


def test_quadratic_closed_form_within_grid_error():
    # f = a/2 w^2: prox w/(1 + t a), u = a w^2 / (2 (1 + a t)). Minimizing over
    # grid points only costs at most the curvature (a + 1/t) times (h/2)^2 / 2.
    a, t = 3.0, 0.7
    x = np.linspace(-2.0, 2.0, 801)
    h = x[1] - x[0]
    result = hopf_lax(0.5 * a * x**2, x, t)
    exact = a * x**2 / (2.0 * (1.0 + a * t))
    excess = result.u - exact
    assert np.all(excess >= -1e-12)
    assert np.all(excess <= (a + 1.0 / t) * h**2 / 8.0 + 1e-12)
    assert np.all(np.abs(result.prox - x / (1.0 + t * a)) <= h / 2 + 1e-12)


def test_quadratic_closed_form_2d_anisotropic():
    a0, a1, t = 1.0, 4.0, 0.25
    x0, x1 = np.linspace(-1.0, 1.0, 81), np.linspace(-2.0, 2.0, 161)
    h = x0[1] - x0[0]
    w0, w1 = np.meshgrid(x0, x1, indexing="ij")
    result = hopf_lax(0.5 * (a0 * w0**2 + a1 * w1**2), (x0, x1), t)
    exact = a0 * w0**2 / (2 * (1 + a0 * t)) + a1 * w1**2 / (2 * (1 + a1 * t))
    assert np.all(result.u - exact >= -1e-12)
    assert np.all(result.u - exact <= (a1 + 1.0 / t) * h**2 / 4.0 + 1e-12)
    assert np.all(np.abs(result.prox[0] - w0 / (1 + t * a0)) <= h / 2 + 1e-12)
    assert np.all(np.abs(result.prox[1] - w1 / (1 + t * a1)) <= h / 2 + 1e-12)


def test_abs_gives_huber_exactly_when_t_is_on_the_grid():
    t = 0.5
    x = np.linspace(-2.0, 2.0, 401)   # h = 0.01: 0 and w - t sign(w) are grid points
    result = hopf_lax(np.abs(x), x, t)
    huber = np.where(np.abs(x) <= t, x**2 / (2 * t), np.abs(x) - t / 2)
    np.testing.assert_allclose(result.u, huber, atol=1e-12)
    np.testing.assert_allclose(result.prox, np.sign(x) * np.maximum(np.abs(x) - t, 0.0), atol=1e-12)


def observed_order(steps, errors):
    return np.polyfit(np.log(steps), np.log(errors), 1)[0]


def test_pde_residual_shrinks_at_first_order():
    # u_t + 1/2 u_x^2 = 0 by central differences (dt = h) away from the edges.
    # The grid minimum is exact for f restricted to the grid but differs from
    # the smooth solution by O(h^2) wiggles of period ~h, so difference
    # quotients of u see O(h): the expected order is 1. (t |f''| < 1: u smooth.)
    t = 0.2
    steps, errors = [], []
    for n in (201, 401, 801):
        x = np.linspace(-4.0, 4.0, n)
        h = x[1] - x[0]
        u = {s: hopf_lax(nonconvex(x), x, s).u for s in (t - h, t, t + h)}
        u_t = (u[t + h] - u[t - h])[1:-1] / (2 * h)
        u_x = (u[t][2:] - u[t][:-2]) / (2 * h)
        residual = np.abs(u_t + 0.5 * u_x**2)[np.abs(x[1:-1]) < 2.0]
        steps.append(h)
        errors.append(residual.max())
    assert errors[-1] < 0.01
    assert 0.7 < observed_order(steps, errors) < 1.4, errors


@pytest.mark.parametrize("t,s", [(0.2, 0.3), (0.05, 1.0)])
def test_semigroup(t, s):
    # Continuous Hopf-Lax is an exact semigroup. On the grid the intermediate
    # point z is restricted to grid points, which costs at most
    # (1/t + 1/s)/2 (h/2)^2, and never helps.
    rng = np.random.default_rng(7)
    x = np.linspace(-3.0, 3.0, 301)
    h = x[1] - x[0]
    f = nonconvex(x) + 0.3 * rng.normal(size=x.size)
    f[rng.uniform(size=x.size) < 0.1] = np.inf
    direct = hopf_lax(f, x, t + s).u
    composed = hopf_lax(hopf_lax(f, x, t).u, x, s).u
    assert np.all(composed - direct >= -1e-12)
    assert np.all(composed - direct <= (1 / t + 1 / s) * h**2 / 8 + 1e-12)


def test_u_decreases_in_t_and_tends_to_f():
    x = np.linspace(-3.0, 3.0, 601)
    f = np.abs(np.sin(3 * x)) + 0.5 * np.abs(x)   # Lipschitz, L = 3.5
    times = [1e-5, 1e-3, 1e-2, 0.1, 0.5, 2.0]
    us = [hopf_lax(f, x, t).u for t in times]
    previous = f
    for t, u in zip(times, us):
        assert np.all(u <= previous + 1e-15)
        # For an L-Lipschitz f: 0 <= f - u <= L^2 t / 2.
        assert np.all(f - u <= 3.5**2 * t / 2 + 1e-12)
        previous = u
    # Once h^2/(2t) > L h, a neighbour's parabola lies above f(w): u = f exactly.
    np.testing.assert_array_equal(us[0], f)
