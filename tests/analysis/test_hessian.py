"""Hessian-vector products, Lanczos, SLQ and Hutchinson (issue 11, part 2)."""

import numpy as np
import pytest

from control_opt import analysis
from control_opt.analysis._problem import ModelProblem
from tests.analysis.models import dense_hessian, small_classifier


@pytest.fixture(scope="module")
def problem():
    model, loss, x, y = small_classifier()
    return model, loss, x, y, dense_hessian(model, loss, x, y)


@pytest.mark.parametrize("method", ["forward_over_reverse", "double_backward"])
def test_hvp_matches_finite_differences(problem, method):
    model, loss, x, y, _ = problem
    rng = np.random.default_rng(0)
    v = rng.standard_normal(67)
    hv = analysis.hessian_vector_product(model, loss, x, y, v, chunk_size=10, method=method)
    prob = ModelProblem(model, loss, x, y)
    w, eps = prob.flat_weights(), 1e-5
    fd = (prob.gradient(w + eps * v)[1] - prob.gradient(w - eps * v)[1]) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


def test_hvp_matches_dense_hessian_and_list_format(problem):
    model, loss, x, y, dense = problem
    operator = analysis.hessian_operator(model, loss, x, y, chunk_size=7)
    np.testing.assert_allclose(operator.to_dense(), dense, atol=1e-12 * np.abs(dense).max())
    parts = [np.ones(v.shape) for v in model.trainable_variables]
    out = analysis.hessian_vector_product(model, loss, x, y, parts)
    assert [o.shape for o in out] == [p.shape for p in parts]
    np.testing.assert_allclose(np.concatenate([o.reshape(-1) for o in out]), dense @ np.ones(67), rtol=1e-10,
                               atol=1e-13)
    with pytest.raises(ValueError, match="`v`"):
        analysis.hessian_vector_product(model, loss, x, y, np.ones(5))


def test_lanczos_top_and_bottom_eigenvalues_match_eigh(problem):
    model, loss, x, y, dense = problem
    exact = np.linalg.eigvalsh(dense)
    eig = analysis.hessian_eigenvalues(model, loss, x, y, k=3, which="both", num_steps=45, seed=0,
                                       return_eigenvectors=True)
    assert eig.num_steps == 45 < eig.dim == 67
    np.testing.assert_allclose(eig.top, exact[::-1][:3], rtol=1e-6)
    np.testing.assert_allclose(eig.bottom, exact[:3], rtol=1e-6, atol=1e-6 * exact[-1])
    for value, vector in zip(eig.top, eig.top_vectors.T):
        assert np.linalg.norm(dense @ vector - value * vector) < 1e-5 * exact[-1]
    assert np.all(eig.top_residuals < 1e-4 * exact[-1])


def test_lanczos_breakdown_on_low_rank_matrix_is_exact():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.standard_normal((30, 4)))[0]
    matrix = basis @ np.diag([5.0, 3.0, 2.0, 1.0]) @ basis.T
    pairs = analysis.lanczos_eigenvalues(matrix, 4, num_steps=30, seed=1)
    assert pairs.num_steps <= 5  # invariant Krylov space found
    np.testing.assert_allclose(pairs.eigenvalues, [5.0, 3.0, 2.0, 1.0], rtol=1e-12)


def test_spectral_density_integrates_to_one_and_matches_spectrum(problem):
    *_, dense = problem
    exact = np.linalg.eigvalsh(dense)
    density = analysis.spectral_density(dense, num_probes=20, num_steps=30, seed=0)
    assert np.trapezoid(density.density, density.grid) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-12)
    assert density.sigma == pytest.approx(0.01 * (density.nodes.max() - density.nodes.min()))
    # Ritz values lie in the spectrum's range and the extreme ones have converged.
    assert density.nodes.max() == pytest.approx(exact[-1], rel=1e-6)
    assert density.nodes.min() >= exact[0] - 1e-9 * exact[-1]
    # First moment: tr(H)/P, within 4 standard errors of the probe average (Rademacher variance).
    off = dense - np.diag(np.diag(dense))
    stderr = np.sqrt(2 * np.sum(off**2)) / 67 / np.sqrt(20)
    assert abs(density.moment(1) - np.trace(dense) / 67) < 4 * stderr
    # Full-length runs give Gauss rules exact up to degree 2m - 1: second moment per probe.
    full = analysis.spectral_density(dense, num_probes=1, num_steps=67, seed=5)
    probe = np.random.default_rng(5).choice([-1.0, 1.0], size=67) / np.sqrt(67)  # the probe drawn from seed 5
    for power in (1, 2, 3):
        expected = probe @ np.linalg.matrix_power(dense, power) @ probe
        assert full.moment(power) == pytest.approx(expected, rel=1e-8)
    assert np.all(np.min(np.abs(full.nodes[0][full.weights[0] > 1e-14][:, None] - exact[None]), axis=1)
                  < 1e-8 * exact[-1])


def test_spectral_density_of_a_model(problem):
    model, loss, x, y, dense = problem
    density = analysis.spectral_density(model, loss, x, y, num_probes=2, num_steps=20, seed=0, chunk_size=10)
    assert np.trapezoid(density.density, density.grid) == pytest.approx(1.0, abs=1e-6)
    assert density.nodes.max() <= np.linalg.eigvalsh(dense)[-1] * (1 + 1e-9)


def test_hutchinson_trace_within_three_standard_errors_and_rejects_wrong_trace(problem):
    model, loss, x, y, dense = problem
    true = np.trace(dense)
    estimate = analysis.hessian_trace(model, loss, x, y, num_probes=300, seed=0)
    assert estimate.consistent_with(true, num_stderr=3.0), (estimate.trace, estimate.stderr, true)
    # The control: the test has the power to reject a trace 25% off.
    assert estimate.stderr < 0.06 * abs(true)
    assert not estimate.consistent_with(1.25 * true, num_stderr=3.0)
    assert not estimate.consistent_with(0.75 * true, num_stderr=3.0)
    gaussian = analysis.hutchinson_trace(dense, num_probes=300, seed=1, distribution="gaussian")
    assert gaussian.consistent_with(true, num_stderr=3.0)
    with pytest.raises(ValueError, match="num_probes"):
        analysis.hutchinson_trace(dense, num_probes=1)


def test_flatness_summary(problem):
    *_, dense = problem
    exact = np.linalg.eigvalsh(dense)
    gamma, beta = 2.0, 10.0
    summary = analysis.flatness_summary(dense, num_steps=40, num_probes=40, num_trace_probes=50, gamma=gamma,
                                        beta=beta, seed=0)
    assert summary.top_eigenvalue == pytest.approx(exact[-1], rel=1e-6)
    assert summary.near_zero_fraction == pytest.approx(
        np.mean(np.abs(exact) <= 1e-3 * exact[-1]), abs=0.2)
    expected = -np.sum(np.log1p(exact / gamma)) / (2 * beta)
    assert abs(summary.local_entropy - expected) < 4 * summary.local_entropy_stderr + 1e-8
    assert summary.local_entropy_stderr < 0.15 * abs(expected)
    assert analysis.flatness_summary(dense, num_steps=40, seed=0).local_entropy is None
    with pytest.raises(ValueError, match="gamma"):
        analysis.flatness_summary(dense, num_steps=40, gamma=1e-3 * abs(exact[0]), seed=0)


def test_hessian_argument_errors(problem):
    model, loss, x, y, dense = problem
    with pytest.raises(ValueError, match="method"):
        analysis.hessian_operator(model, loss, x, y, method="jacobian")
    with pytest.raises(ValueError, match="`k`"):
        analysis.hessian_eigenvalues(dense, k=0)
    with pytest.raises(ValueError, match="which"):
        analysis.hessian_eigenvalues(dense, which="middle")
    with pytest.raises(ValueError, match="`loss`"):
        analysis.hessian_trace(model, loss, x)
