"""Per-example gradients and the diffusion matrix D (issue 11, part 1)."""

import numpy as np
import pytest

from control_opt import analysis
from tests.analysis.models import loop_gradients, small_classifier


@pytest.fixture(scope="module")
def problem():
    return small_classifier()


def _dense_d(jac):
    centered = jac - jac.mean(axis=0)
    return centered.T @ centered / jac.shape[0]


@pytest.mark.parametrize("chunk_size", [None, 7])
def test_per_example_gradients_match_python_loop(problem, chunk_size):
    model, loss, x, y = problem
    jac = analysis.per_example_gradients(model, loss, x, y, chunk_size=chunk_size)
    reference = loop_gradients(model, loss, x, y)
    assert jac.shape == (24, 67)
    np.testing.assert_allclose(jac, reference, rtol=1e-10, atol=1e-13)


def test_per_example_gradients_unflattened_shapes(problem):
    model, loss, x, y = problem
    parts = analysis.per_example_gradients(model, loss, x, y, flatten=False)
    assert [p.shape for p in parts] == [(24,) + tuple(v.shape) for v in model.trainable_variables]


def test_per_example_gradients_use_inference_mode():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,), dtype="float64"), keras.layers.Dense(4, dtype="float64"),
                              keras.layers.BatchNormalization(dtype="float64"), keras.layers.Dense(1, dtype="float64")])
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    loss = keras.losses.MeanSquaredError(dtype="float64")
    jac = analysis.per_example_gradients(model, loss, x, y)
    # Each row only depends on its own example: the gradient on a batch of one.
    single = analysis.per_example_gradients(model, loss, x[2:3], y[2:3])
    np.testing.assert_allclose(jac[2], single[0], rtol=1e-10, atol=1e-14)


def test_diffusion_spectrum_gram_matches_dense_covariance(problem):
    model, loss, x, y = problem
    dense = _dense_d(loop_gradients(model, loss, x, y))
    eig = np.linalg.eigvalsh(dense)[::-1]
    spec = analysis.diffusion_spectrum(model, loss, x, y, k=6, method="gram", return_eigenvectors=True)
    np.testing.assert_allclose(spec.eigenvalues, eig[:6], rtol=1e-9)
    np.testing.assert_allclose(spec.trace, np.trace(dense), rtol=1e-10)
    np.testing.assert_allclose(spec.trace_of_square, np.sum(dense**2), rtol=1e-9)
    for i in range(6):  # D v = lambda v
        np.testing.assert_allclose(dense @ spec.eigenvectors[:, i], spec.eigenvalues[i] * spec.eigenvectors[:, i],
                                   atol=1e-10 * eig[0])
    np.testing.assert_allclose(spec.isotropy, np.trace(dense) ** 2 / (67 * np.sum(dense**2)), rtol=1e-9)
    assert spec.eigenvalue_mean == pytest.approx(np.mean(eig), rel=1e-10)
    assert spec.eigenvalue_std == pytest.approx(np.std(eig), rel=1e-8)


def test_diffusion_rank_is_at_most_n_minus_one(problem):
    model, loss, x, y = problem
    spec = analysis.diffusion_spectrum(model, loss, x, y, k=3, method="gram")
    tolerance = spec.eigenvalues[0] * 67 * np.finfo(np.float32).eps
    assert spec.rank_tolerance == pytest.approx(tolerance)
    assert spec.rank <= 24 - 1
    assert spec.rank == 23  # generic data: the centered Jacobian has full row rank N - 1
    assert spec.rank_fraction == pytest.approx(23 / 67)
    assert spec.relative_rank <= spec.rank
    assert spec.eps == pytest.approx(np.finfo(np.float32).eps)
    # Fewer examples than weights: rank(D) <= N - 1 even with a tiny tolerance.
    small = analysis.diffusion_spectrum(model, loss, x[:5], y[:5], k=6, method="gram", eps=1e-300)
    assert small.rank == 4 and np.all(small.eigenvalues[4:] == 0)


def test_diffusion_operator_route_matches_gram_route(problem):
    model, loss, x, y = problem
    dense = _dense_d(loop_gradients(model, loss, x, y))
    operator = analysis.diffusion_operator(model, loss, x, y, chunk_size=10)
    probes = np.random.default_rng(0).standard_normal((dense.shape[0], 3))  # D on random vectors, not all of it
    np.testing.assert_allclose(np.stack([operator.matvec(v) for v in probes.T], axis=1), dense @ probes,
                               atol=1e-12 * np.abs(dense).max() * np.abs(probes).sum(axis=0).max())
    gram = analysis.diffusion_spectrum(model, loss, x, y, k=5, method="gram")
    # Lanczos on the same (already traced) chunked operator; diffusion_spectrum's operator route itself (trace,
    # gradient, rank bound) is checked in test_gram_route_mean.py and the loop-fallback test below
    op = analysis.lanczos_eigenvalues(operator, 5, seed=3)
    np.testing.assert_allclose(op.eigenvalues, gram.eigenvalues, rtol=1e-8)
    np.testing.assert_allclose(operator.gradient, gram.gradient, rtol=1e-10, atol=1e-14)


def test_sgd_temperature_and_argument_errors(problem):
    model, loss, x, y = problem
    assert analysis.sgd_temperature(0.1, 10) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="batch_size"):
        analysis.sgd_temperature(0.1, 0)
    with pytest.raises(ValueError, match="learning_rate"):
        analysis.sgd_temperature(-1.0, 4)
    with pytest.raises(ValueError, match="method"):
        analysis.diffusion_spectrum(model, loss, x, y, method="dense")
    with pytest.raises(ValueError, match="chunk_size"):
        analysis.per_example_gradients(model, loss, x, y, chunk_size=0)
    with pytest.raises(ValueError, match="`x` and `y`"):
        analysis.per_example_gradients(model, loss, x, y[:3])


def test_falls_back_to_a_loop_with_a_warning_where_pfor_fails(problem, monkeypatch):
    import tensorflow as tf

    model, loss, x, y = problem
    reference = analysis.per_example_gradients(model, loss, x, y)
    gram = analysis.diffusion_spectrum(model, loss, x, y, k=2, method="gram")

    def no_pfor(*args, **kwargs):
        raise ValueError("No pfor vectorization defined for SomeOp")

    monkeypatch.setattr(tf, "vectorized_map", no_pfor)
    with pytest.warns(RuntimeWarning, match="sequential loop"):
        jac = analysis.per_example_gradients(model, loss, x, y, chunk_size=10)
    np.testing.assert_allclose(jac, reference, rtol=1e-12, atol=1e-15)
    with pytest.warns(RuntimeWarning, match="sequential loop"):
        spec = analysis.diffusion_spectrum(model, loss, x, y, k=2, method="operator", seed=0)
    np.testing.assert_allclose(spec.eigenvalues, gram.eigenvalues, rtol=1e-8)
    assert spec.trace == pytest.approx(gram.trace, rel=1e-10)
    assert spec.rank_is_lower_bound and spec.method == "operator"
