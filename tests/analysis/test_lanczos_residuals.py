"""The residuals Lanczos reports are the residuals of its Ritz pairs.

`lanczos_eigenvalues` reports `|A v - theta v|` for each Ritz pair: computed
explicitly when eigenvectors are asked for, else the free estimate
`beta_m |s_m|` (last row of the tridiagonal's eigenvectors). Here both are
compared with `|A v - theta v|` computed by the test from the returned
eigenpairs, with too few steps for the pairs to converge, so that every
residual is far from 0 and a wrong estimate (another row of `s`, a missing
`beta_m`) cannot agree by accident.
"""

import numpy as np
import pytest

from control_opt import analysis

DIM, STEPS, K = 240, 18, 6


def _matrix(seed=3):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    spectrum = np.concatenate([[9.0, 7.5, 6.8, 6.1], rng.uniform(-3.0, 5.0, DIM - 8), [-4.2, -5.0, -6.3, -8.0]])
    return (q * spectrum) @ q.T


def _explicit(a, pairs):
    return np.array([np.linalg.norm(a @ v - t * v) for t, v in zip(pairs.eigenvalues, pairs.eigenvectors.T)])


@pytest.mark.parametrize("which", ["top", "bottom"])
def test_estimated_residuals_equal_explicit_ones(which):
    a = _matrix()
    with_vectors = analysis.lanczos_eigenvalues(a, K, which=which, num_steps=STEPS, seed=5,
                                                return_eigenvectors=True)
    estimated = analysis.lanczos_eigenvalues(a, K, which=which, num_steps=STEPS, seed=5)
    assert estimated.eigenvectors is None
    # The same Ritz pairs (same seed and steps), in the same order.
    np.testing.assert_allclose(estimated.eigenvalues, with_vectors.eigenvalues, rtol=1e-12, atol=1e-12)
    explicit = _explicit(a, with_vectors)
    # Unconverged on purpose: residuals well above rounding, so the comparison has teeth.
    assert explicit.min() > 1e-8, explicit  # rounding: ~1e-14
    np.testing.assert_allclose(with_vectors.residuals, explicit, rtol=1e-9)
    np.testing.assert_allclose(estimated.residuals, explicit, rtol=1e-6)
    # And the bound they give holds: each Ritz value is within its residual of an eigenvalue.
    eigenvalues = np.linalg.eigvalsh(a)
    distance = np.min(np.abs(estimated.eigenvalues[:, None] - eigenvalues[None, :]), axis=1)
    assert np.all(distance <= estimated.residuals * (1 + 1e-9))


def test_residuals_through_an_operator_match_explicit_ones():
    """The same through a `LinearOperator` (the route Hessians and diffusion matrices take)."""
    a = _matrix(seed=4)
    operator = analysis.LinearOperator(lambda v: a @ v, DIM, "dense")
    with_vectors = analysis.lanczos_eigenvalues(operator, 3, num_steps=12, seed=1, return_eigenvectors=True)
    estimated = analysis.lanczos_eigenvalues(operator, 3, num_steps=12, seed=1)
    explicit = _explicit(a, with_vectors)
    assert explicit.min() > 1e-8, explicit  # rounding: ~1e-14
    np.testing.assert_allclose(estimated.residuals, explicit, rtol=1e-6)
