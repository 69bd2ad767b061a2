"""Shared closed-form targets for the local Gibbs measure (and SDE) tests, and statistical checks."""

import numpy as np
import pytest
import tensorflow as tf


def anisotropic_matrix(dim, seed=0, condition=10.0):
    """A symmetric positive definite `A` with eigenvalues spread over [1, condition], not diagonal."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.geomspace(1.0, condition, dim)
    return (q * eigenvalues) @ q.T


class Quadratic:
    """`f(w) = 1/2 w^T A w` and the closed forms of its local Gibbs measure.

    p(w'; w) = N(mean, cov),  mean = (A + gamma I)^-1 gamma w,  cov = (beta (A + gamma I))^-1.
    """

    def __init__(self, dim, seed=0, condition=10.0):
        self.a = anisotropic_matrix(dim, seed, condition)
        self.a_tf = tf.constant(self.a, tf.float32)
        self.dim = dim

    def loss(self, w):
        return 0.5 * tf.reduce_sum(w * tf.linalg.matvec(self.a_tf, w))

    def gibbs_mean(self, w, gamma):
        return np.linalg.solve(self.a + gamma * np.eye(self.dim), gamma * np.asarray(w, np.float64))

    def gibbs_cov(self, gamma, beta):
        return np.linalg.inv(beta * (self.a + gamma * np.eye(self.dim)))


@pytest.fixture
def quadratic():
    return Quadratic(4, seed=0)


def gaussian_local_gibbs(a, gamma, beta, anchor):
    """`f = a/2 |w|^2`: p(w'; w) = N(gamma w / (a + gamma), 1 / (beta (a + gamma))) per coordinate."""
    return gamma * np.asarray(anchor, np.float64) / (a + gamma), 1.0 / (beta * (a + gamma))


def mean_and_variance_errors(samples, mean, var):
    """`(|sample mean - mean| / se, |sample var - var| / se_var)` per coordinate of `[N, chains, d]` samples.

    Standard errors from the pooled ESS of the samples and of their squared
    deviations (`control_opt.mcmc.diagnostics.effective_sample_size`).
    """
    from control_opt.mcmc.diagnostics import effective_sample_size

    x = np.asarray(samples, np.float64)
    flat = x.reshape(-1, *x.shape[2:])
    se = flat.std(0) / np.sqrt(effective_sample_size(tf.constant(x, tf.float32)).numpy())
    dev2 = (x - mean) ** 2
    se_var = dev2.reshape(-1, *x.shape[2:]).std(0) / np.sqrt(effective_sample_size(tf.constant(dev2, tf.float32)).numpy())
    return np.abs(flat.mean(0) - mean) / se, np.abs(dev2.reshape(-1, *x.shape[2:]).mean(0) - var) / se_var
