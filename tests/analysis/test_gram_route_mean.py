"""`diffusion_spectrum` with a large common mean gradient: the mean must really be subtracted.

For a linear float64 model `l_i(w) = w . x_i` the per-example gradient is the
input, `g_i = x_i`, so `D = (1/N) sum_i (x_i - xbar)(x_i - xbar)^T` is the
(biased) covariance of the inputs: a closed form. With inputs `1e7 + noise`
the mean gradient is 10^7 times the spread. Subtracted first, the spectrum is
exact to ~1e-9; not subtracted, `J J^T` holds entries ~1e14 whose rounding
(~1e-2) swamps the O(1) covariance, even though projecting out the constant
direction cancels the mean exactly in exact arithmetic. (The small tanh model
of test_gradient_noise.py has a mean gradient comparable to its spread, so
there the projection alone hides a missing subtraction in rounding.)
"""

import keras
import numpy as np
import pytest

from control_opt import analysis

N, P, OFFSET = 40, 6, 1e7


def _linear_problem(seed=0):
    rng = np.random.default_rng(seed)
    scales = np.array([3.0, 2.0, 1.5, 1.0, 0.6, 0.25])  # distinct eigenvalues, spread O(1)
    x = OFFSET + rng.standard_normal((N, P)) * scales + np.arange(P)  # mean differs per weight
    model = keras.Sequential([keras.Input((P,), dtype="float64"),
                              keras.layers.Dense(1, use_bias=False, dtype="float64")])
    y = np.zeros((N, 1))

    def loss(y_true, y_pred):  # l_i = w . x_i, gradient x_i
        return y_pred[:, 0]

    return model, loss, x, y


@pytest.mark.parametrize("method", ["gram", "operator"])
def test_spectrum_with_a_large_mean_gradient_is_the_input_covariance(method):
    model, loss, x, y = _linear_problem()
    centered = x - x.mean(axis=0)
    expected = np.linalg.eigvalsh(centered.T @ centered / N)[::-1]
    spec = analysis.diffusion_spectrum(model, loss, x, y, k=P, method=method, num_steps=P, seed=0)
    assert spec.method == method
    np.testing.assert_allclose(spec.gradient, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(spec.eigenvalues, expected, rtol=1e-6)
    assert spec.trace == pytest.approx(np.trace(centered.T @ centered) / N, rel=1e-6)


def test_gram_eigenvectors_with_a_large_mean_gradient():
    model, loss, x, y = _linear_problem(seed=1)
    centered = x - x.mean(axis=0)
    covariance = centered.T @ centered / N
    spec = analysis.diffusion_spectrum(model, loss, x, y, k=3, method="gram", return_eigenvectors=True)
    for value, vector in zip(spec.eigenvalues, spec.eigenvectors.T):
        np.testing.assert_allclose(covariance @ vector, value * vector, atol=1e-6 * spec.eigenvalues[0])
