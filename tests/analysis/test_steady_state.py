"""Steady states, currents and stochastic areas (issue 11, part 3; docs/analysis.md, T1-T4)."""

import numpy as np
import pytest

from control_opt import analysis

W = 0.5
CASES = {  # name: (B, D, expected S, expected Q_12, expected entropy production)
    "T1": (np.diag([1.0, 2.0]), np.eye(2), np.diag([1.0, 0.5]), 0.0, 0.0),
    "T2": (np.eye(2) + W * np.array([[0.0, -1.0], [1.0, 0.0]]), np.eye(2), np.eye(2), -W, 2 * W**2),
    "T3": (np.diag([1.0, 2.0]), np.array([[2.0, 1.0], [1.0, 1.0]]), np.array([[2.0, 2 / 3], [2 / 3, 0.5]]), -1 / 3,
           1 / 3),
    "T4": (np.diag([1.0, 2.0]), np.diag([2.0, 1.0]), np.diag([2.0, 0.5]), 0.0, 0.0),
}
EQUILIBRIUM = {"T1": True, "T2": False, "T3": False, "T4": True}


@pytest.mark.parametrize("name", sorted(CASES))
def test_linear_sde_closed_forms(name):
    B, D, S, q12, production = CASES[name]
    state = analysis.linear_sde_stationary(B, D)
    np.testing.assert_allclose(state.covariance, S, atol=1e-12)
    np.testing.assert_allclose(state.Q, -state.Q.T, atol=1e-12)
    assert state.area_rate == pytest.approx(q12, abs=1e-12)
    assert state.entropy_production == pytest.approx(production, abs=1e-12)
    assert state.is_equilibrium == EQUILIBRIUM[name]
    if name == "T2":  # current w (x2, -x1) rho
        x = np.array([[0.3, -0.7], [1.0, 2.0]])
        rho = np.exp(-0.5 * np.sum(x**2, -1)) / (2 * np.pi)
        np.testing.assert_allclose(analysis.linear_sde_current(B, D, x), W * np.stack([x[:, 1], -x[:, 0]], -1)
                                   * rho[:, None], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stochastic_area_from_simulated_paths(name):
    """T1 and T4 (equilibrium, T4 anisotropic) must not show a current; T2 and T3 must, at rate Q_12."""
    B, D, _, q12, _ = CASES[name]
    dt = 0.01
    paths = analysis.simulate_diffusion(lambda x: -x @ B.T, D, np.zeros(2), dt=dt, num_steps=10_000, num_paths=100,
                                        seed=11, burn_in=500)
    area = analysis.stochastic_area(paths, dt, num_batches=10)
    assert area.num_samples == 1000
    np.testing.assert_allclose(area.rate, -area.rate.T)
    z_zero = area.z_score(0, 1, 0.0)
    if EQUILIBRIUM[name]:
        assert abs(z_zero) < 3.0, f"{name}: spurious current, rate {area.rate[0, 1]} +- {area.stderr[0, 1]}"
    else:
        assert abs(z_zero) > 10.0, f"{name}: current not detected, rate {area.rate[0, 1]} +- {area.stderr[0, 1]}"
        # Euler-Maruyama bias O(dt) is far below 3 standard errors here.
        assert abs(area.z_score(0, 1, q12)) < 3.0, (area.rate[0, 1], area.stderr[0, 1], q12)


def _nonlinear(lam):
    def phi(x):
        return (x[..., 0] ** 2 - 1) ** 2 / 4 + x[..., 1] ** 2 / 2

    def rotation(x):
        r2 = x[..., 0] ** 2 + x[..., 1] ** 2
        return np.exp(-r2**2 / 4)[..., None] * np.stack([-x[..., 1], x[..., 0]], -1)

    def drift(x):
        grad = np.stack([x[..., 0] * (x[..., 0] ** 2 - 1), x[..., 1]], -1)
        return -grad + lam * np.exp(phi(x))[..., None] * rotation(x)

    return phi, rotation, drift


BOUNDS = [(-3.0, 3.0), (-3.0, 3.0)]


def _cells(solution):
    return np.stack(np.meshgrid(solution.x1, solution.x2, indexing="ij"), -1)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.5])
def test_fokker_planck_nonlinear_example_steady_state_is_exp_minus_phi(lam):
    phi, rotation, drift = _nonlinear(lam)
    sol = analysis.fokker_planck_steady_state(drift, np.eye(2), bounds=BOUNDS, num_cells=100)
    cells = _cells(sol)
    area = (sol.x1[1] - sol.x1[0]) * (sol.x2[1] - sol.x2[0])
    assert np.sum(sol.density) * area == pytest.approx(1.0, abs=1e-12)
    z = np.sum(np.exp(-phi(cells))) * area
    exact = np.exp(-phi(cells)) / z
    assert np.abs(sol.density - exact).max() < 2e-3 * exact.max()
    max_err, rms = analysis.compare_potentials(sol.potential, phi(cells), sol.density, mass=0.99)
    assert max_err < 0.05 and rms < 5e-3
    expected_current = lam * rotation(cells) / z
    assert np.abs(sol.current - expected_current).max() < 2e-3 + 0.02 * np.abs(expected_current).max()
    assert sol.residual < 1e-10


def test_fokker_planck_isotropic_gradient_flow_gives_gibbs_density():
    """Isotropic D and a gradient drift: reversible, rho* = exp(-beta f) / Z, Phi = f, no current."""
    beta = 2.0

    def f(x):
        tilt = 0.3 * x[..., 0] * x[..., 1] ** 2 / (1 + x[..., 1] ** 2)
        return (x[..., 0] ** 2 - 1) ** 2 / 4 + x[..., 1] ** 2 / 2 + tilt

    def grad_f(x, eps=1e-6):
        e = np.eye(2) * eps
        return np.stack([(f(x + e[i]) - f(x - e[i])) / (2 * eps) for i in range(2)], -1)

    bounds = [(-2.5, 2.5), (-3.0, 3.0)]  # cell Peclet number < 2 (on [-3, 3]^2 it is 2.8: a warning)
    with pytest.warns(RuntimeWarning, match="Peclet"):
        analysis.fokker_planck_steady_state(lambda x: -grad_f(x), np.eye(2), beta=beta, bounds=BOUNDS,
                                            num_cells=(100, 90))
    sol = analysis.fokker_planck_steady_state(lambda x: -grad_f(x), np.eye(2), beta=beta, bounds=bounds,
                                              num_cells=(100, 90))
    assert sol.peclet < 2.0
    cells = _cells(sol)
    gibbs = np.exp(-beta * f(cells))
    gibbs /= gibbs.sum() * (sol.x1[1] - sol.x1[0]) * (sol.x2[1] - sol.x2[0])
    assert np.abs(sol.density - gibbs).max() < 5e-3 * gibbs.max()
    assert np.abs(sol.current).max() < 2e-2 * np.abs(grad_f(cells) * sol.density[..., None]).max()
    max_err, rms = analysis.compare_potentials(sol.potential, f(cells), sol.density)
    assert max_err < 0.05 and rms < 5e-3


@pytest.mark.parametrize("name", ["T3", "T4"])
def test_fokker_planck_linear_anisotropic_matches_lyapunov(name):
    B, D, S, q12, _ = CASES[name]
    sol = analysis.fokker_planck_steady_state(lambda x: -x @ B.T, D, bounds=[(-6, 6), (-4, 4)], num_cells=(120, 80))
    cells = _cells(sol)
    s_inv = np.linalg.inv(S)
    gauss = np.exp(-0.5 * np.einsum("...i,ij,...j->...", cells, s_inv, cells)) / (2 * np.pi * np.sqrt(np.linalg.det(S)))
    assert np.abs(sol.density - gauss).max() < 5e-3 * gauss.max()
    current = analysis.linear_sde_current(B, D, cells)
    scale = np.abs(cells @ B.T * gauss[..., None]).max()
    # Second order in h (the error falls 4x on a grid twice as fine); h = 0.1 here.
    assert np.abs(sol.current - current).max() < 3e-2 * scale
    if name == "T4":  # anisotropic but commuting: no current
        assert np.abs(sol.current).max() < 3e-2 * scale
    else:
        assert np.abs(current).max() > 0.1 * scale
    # The area rate as a density average, 1/2 <x1 J2 - x2 J1> / rho integrated: Q_12.
    area = (sol.x1[1] - sol.x1[0]) * (sol.x2[1] - sol.x2[0])
    rate = 0.5 * np.sum(cells[..., 0] * sol.current[..., 1] - cells[..., 1] * sol.current[..., 0]) * area
    assert rate == pytest.approx(q12, abs=5e-3)


def test_nonlinear_example_simulation_limit_cycle():
    """lambda = 1.5: simulated marginal matches exp(-Phi), and the paths circulate at the predicted rate."""
    lam = 1.5
    phi, rotation, drift = _nonlinear(lam)
    dt = 0.005
    paths = analysis.simulate_diffusion(drift, None, np.array([1.0, 0.0]), dt=dt, num_steps=8000, num_paths=200,
                                        seed=3, burn_in=400, record_every=1)
    # Predicted area rate 1/2 <x1 b2 - x2 b1>: the gradient part vanishes by symmetry, the rotation gives
    # lam / (2 Z) int r^2 exp(-r^4 / 4) dx.
    grid = np.linspace(-4, 4, 401)
    h = grid[1] - grid[0]
    cells = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1)
    z = np.sum(np.exp(-phi(cells))) * h * h
    r2 = np.sum(cells**2, -1)
    predicted = lam / (2 * z) * np.sum(r2 * np.exp(-r2**2 / 4)) * h * h
    area = analysis.stochastic_area(paths, dt, num_batches=8)
    assert area.z_score(0, 1, 0.0) > 10.0
    assert abs(area.rate[0, 1] - predicted) < 3 * area.stderr[0, 1] + 0.03 * predicted, (area.rate[0, 1], predicted)
    # x1 marginal: exp(-(x1^2 - 1)^2 / 4) normalized, checked on a coarse histogram.
    edges = np.linspace(-3, 3, 13)
    hist, _ = np.histogram(paths[..., 0].reshape(-1), bins=edges, density=True)
    fine = np.linspace(-3, 3, 1201)
    marginal = np.exp(-(fine**2 - 1) ** 2 / 4)
    marginal /= np.trapezoid(marginal, fine)
    expected = np.array([np.trapezoid(marginal[(fine >= a) & (fine <= b)], fine[(fine >= a) & (fine <= b)]) / (b - a)
                         for a, b in zip(edges[:-1], edges[1:])])
    assert np.abs(hist - expected).max() < 0.03
