"""Flatness by MCMC on the local Gibbs measure, against the Gaussian closed form of a quadratic loss."""

import keras
import numpy as np
import pytest

from control_opt import analysis

GAMMA, BETA = 0.5, 20.0


def _least_squares_model():
    """A linear model with squared loss: f(w) = mean((x w - y)^2), Hessian 2 X^T X / N, at its minimizer."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 3)) * np.array([0.3, 1.0, 2.0])).astype("float64")
    y = x @ np.array([0.5, -1.0, 0.25]) + 0.1 * rng.normal(size=64)
    model = keras.Sequential([keras.Input((3,), dtype="float64"),
                              keras.layers.Dense(1, use_bias=False, dtype="float64")])
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    model.layers[0].kernel.assign(w_star[:, None])
    hessian = 2.0 * x.T @ x / len(x)
    return model, x, y[:, None], hessian


def test_spread_and_gradient_match_the_gaussian_closed_form():
    model, x, y, hessian = _least_squares_model()
    loss = keras.losses.MeanSquaredError(dtype="float64")
    result = analysis.local_gibbs_flatness(model, loss, x, y, gamma=GAMMA, beta=BETA, seed=3, num_results=600,
                                           num_burnin_steps=150, compare_laplace=True)
    exact = np.trace(np.linalg.inv(hessian + GAMMA * np.eye(3))) / BETA
    assert result.dim == 3
    assert abs(result.spread - exact) < 4 * result.spread_stderr, (result.spread, exact, result.spread_stderr)
    # At the minimizer the local mean is the minimizer: grad F = 0 up to Monte Carlo error.
    assert result.gradient_norm < 4 * result.gradient_norm_stderr + 1e-12
    # The Laplace prediction is exact for a quadratic loss, up to the SLQ probes' Monte Carlo error.
    assert abs(result.laplace_spread - exact) < 4 * result.laplace_spread_stderr + 1e-9
    # Control: the spread of the Gibbs measure without the coupling, tr H^-1 / beta, is rejected.
    wrong = np.trace(np.linalg.inv(hessian)) / BETA
    assert abs(result.spread - wrong) > 4 * result.spread_stderr


def test_bad_arguments_are_named():
    model, x, y, _ = _least_squares_model()
    with pytest.raises(ValueError, match="`gamma`"):
        analysis.local_gibbs_flatness(model, "mse", x, y, gamma=0.0, beta=1.0, seed=0)
