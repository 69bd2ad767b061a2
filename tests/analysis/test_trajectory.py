"""Trajectory diagnostics: PCA, projections, spectra, autocorrelation, stochastic-area errors."""

import numpy as np
import pytest

from control_opt import analysis


def _cycle(num=4000, dt=0.01, period=2.0, dim=50, seed=0):
    """A circle of period `period` embedded in a random 2-plane of R^dim, plus small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(num) * dt
    plane = np.linalg.qr(rng.standard_normal((dim, 2)))[0].T  # [2, dim]
    coords = np.stack([np.cos(2 * np.pi * t / period), np.sin(2 * np.pi * t / period)], -1)
    return coords @ plane + 0.01 * rng.standard_normal((num, dim)), plane, coords


def test_pca_recovers_the_plane_of_a_limit_cycle():
    path, plane, _ = _cycle()
    pca = analysis.principal_components(path, k=2)
    assert pca.projections.shape == (4000, 2)
    assert pca.explained_ratio.sum() > 0.99
    # The components span the cycle's plane.
    np.testing.assert_allclose(np.linalg.svd(pca.components @ plane.T)[1], [1.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(analysis.project(path, pca.components, pca.mean), pca.projections, atol=1e-10)
    with pytest.raises(ValueError, match="`k`"):
        analysis.principal_components(path[:3], k=5)


def test_power_spectrum_peak_and_autocorrelation_of_a_cycle():
    path, plane, coords = _cycle()
    projected = analysis.project(path, plane)
    spectrum = analysis.power_spectrum(projected, dt=0.01)
    np.testing.assert_allclose(spectrum.peak_frequency, [0.5, 0.5], atol=1 / 40)  # resolution 1 / T
    acf = analysis.autocorrelation(projected[:, 0], max_lag=300)
    assert acf[0] == pytest.approx(1.0)
    assert acf[100] < -0.9 and acf[200] > 0.85  # half and full period (lag 1 and 2 time units)
    # The cycle runs counter-clockwise at angular speed pi: area rate 1/2 r^2 omega = pi / 2.
    area = analysis.stochastic_area(coords, 0.01, num_batches=10)
    assert area.rate[0, 1] == pytest.approx(np.pi / 2, rel=1e-3)


def test_stochastic_area_argument_errors():
    with pytest.raises(ValueError, match="`dt`"):
        analysis.stochastic_area(np.zeros((10, 2)), 0.0)
    with pytest.raises(ValueError, match="num_batches"):
        analysis.stochastic_area(np.zeros((10, 2)), 0.1, num_batches=20)
    with pytest.raises(ValueError, match="trajectory"):
        analysis.stochastic_area(np.zeros(10), 0.1)
    with pytest.raises(ValueError, match="`B`"):
        analysis.linear_sde_stationary(-np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match="`D`"):
        analysis.linear_sde_stationary(np.eye(2), [[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="bounds"):
        analysis.fokker_planck_steady_state(lambda x: -x, bounds=[(1, 0), (0, 1)], num_cells=10)
    with pytest.raises(ValueError, match="num_cells"):
        analysis.fokker_planck_steady_state(lambda x: -x, bounds=[(-1, 1), (-1, 1)], num_cells=2)
