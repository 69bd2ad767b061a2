"""Shared closed-form targets for the SDE / local Gibbs measure tests."""

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
