"""The library's effective sample size (Vehtari et al. 2021, pooled over chains) against AR(1) closed forms."""

import numpy as np
import pytest
import tensorflow as tf

from control_opt.mcmc.diagnostics import effective_sample_size


def ar1(rho, n, chains, dim, seed):
    """Stationary AR(1) chains x_t = rho x_{t-1} + e_t: integrated autocorrelation time (1 + rho) / (1 - rho)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, chains, dim))
    x = np.empty_like(e)
    x[0] = e[0] / np.sqrt(1.0 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return tf.constant(x, tf.float32)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_ess_of_ar1_chains_is_n_times_one_minus_rho_over_one_plus_rho(rho):
    n, chains = 4000, 4
    ess = effective_sample_size(ar1(rho, n, chains, 3, seed=1)).numpy()
    expected = n * chains * (1 - rho) / (1 + rho)
    # The estimator's spread is a few percent here; Geyer's truncation biases it low by up to ~10%.
    np.testing.assert_allclose(ess, expected, rtol=0.15)
    if rho > 0:  # control: the i.i.d. count N M is rejected for correlated chains
        assert np.all(np.abs(ess - n * chains) > 0.15 * expected)


def test_ess_is_positive_and_bounded_whatever_the_chains_do():
    n, chains = 60, 4
    rng = np.random.default_rng(0)
    cases = {
        "antithetic": ar1(-0.9, n, chains, 5, seed=2),
        "stuck apart": ar1(0.99, n, chains, 5, seed=3) + tf.constant(rng.normal(size=(1, chains, 5)) * 3, tf.float32),
        "constant": tf.ones([n, chains, 2]),
        "one chain": ar1(0.5, n, 1, 2, seed=4),
    }
    for name, x in cases.items():
        ess = effective_sample_size(x).numpy()
        total = n * x.shape[1]
        assert np.all(np.isfinite(ess)) and np.all(ess > 0), (name, ess)
        assert np.all(ess <= total * np.log10(total) + 1e-3), (name, ess)
    # Stuck chains: far fewer effective samples than draws.
    assert np.all(effective_sample_size(cases["stuck apart"]).numpy() < 0.1 * n * chains)


def test_ess_runs_in_a_graph():
    x = ar1(0.5, 500, 2, 1, seed=5)
    eager = effective_sample_size(x).numpy()
    np.testing.assert_allclose(tf.function(effective_sample_size)(x).numpy(), eager, rtol=1e-5)
