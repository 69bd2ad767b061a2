"""The library's one Gaussian sampler: `sampling.standard_normal` (Box-Muller on Philox bits).

Checked against the standard normal (KS test, moments, pair independence),
with a control that must fail (a 3% scale error is rejected), against the
exact moments and bounds of its uniform lattices, and for equality of eager,
graph and XLA draws.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from control_opt._internal import sampling

SEED = tf.constant([11, 29], tf.int32)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("bits", [None, 16])
def test_draws_are_standard_normal_and_a_three_percent_scale_error_is_rejected(dtype, bits):
    draws = sampling.standard_normal([200_001], SEED, dtype, bits).numpy()
    assert draws.dtype == dtype.as_numpy_dtype and draws.shape == (200_001,)
    assert stats.kstest(draws, "norm").pvalue > 0.01
    assert abs(draws.mean()) < 4 / math.sqrt(draws.size)
    assert abs(draws.var() - 1.0) < 4 * math.sqrt(2 / draws.size)
    # The control: the same test rejects draws with a 3% error in the standard deviation.
    assert stats.kstest(1.03 * draws, "norm").pvalue < 0.01
    # The two members of a pair (cosine half, sine half) are uncorrelated.
    half = draws.size // 2
    assert abs(np.corrcoef(draws[:half], draws[half:2 * half])[0, 1]) < 4 / math.sqrt(half)


@pytest.mark.parametrize("bits", [None, 16])
def test_a_seed_draws_the_same_numbers_and_another_seed_others(bits):
    first = sampling.standard_normal([1001], SEED, bits=bits).numpy()
    np.testing.assert_array_equal(first, sampling.standard_normal([1001], SEED, bits=bits).numpy())
    other = sampling.standard_normal([1001], tf.constant([11, 30]), bits=bits).numpy()
    assert np.mean(first == other) < 0.01


@pytest.mark.parametrize("bits", [None, 16])
@pytest.mark.parametrize("shape", [[7], [4, 5], [1]])
def test_eager_graph_xla_and_dynamic_shapes_draw_the_same_numbers(bits, shape):
    eager = sampling.standard_normal(shape, SEED, bits=bits).numpy()
    graph = tf.function(lambda: sampling.standard_normal(shape, SEED, bits=bits))().numpy()
    xla = tf.function(lambda: sampling.standard_normal(shape, SEED, bits=bits), jit_compile=True)().numpy()

    @tf.function(input_signature=[tf.TensorSpec([None] * len(shape))])
    def dynamic(like):
        return sampling.standard_normal(tf.shape(like), SEED, bits=bits)

    unknown = dynamic(tf.zeros(shape)).numpy()
    np.testing.assert_array_equal(eager, graph)
    np.testing.assert_array_equal(eager, unknown)
    np.testing.assert_allclose(eager, xla, rtol=1e-5, atol=1e-5)
    assert eager.shape == tuple(shape)


def test_the_sixteen_bit_lattice_bounds_and_variance_match_the_docstring():
    # Every radius the 16-bit sampler can produce, u = (k + 1/2) 2^-16: E[z^2] = E[r^2] / 2 = E[-log u].
    u = (np.arange(2**16, dtype=np.float64) + 0.5) * 2.0**-16
    variance = np.mean(-np.log(u))
    assert 0 < 1.0 - variance < 1e-5  # low by about 5e-6, as documented
    r_max = math.sqrt(34 * math.log(2))  # u = 2^-17
    assert r_max == pytest.approx(4.85, abs=0.005)
    draws = sampling.standard_normal([4_000_000], SEED, bits=16).numpy()
    assert np.abs(draws).max() <= r_max * (1 + 1e-6)
    # Full precision reaches further into the tails (P(|z| > 4.85) = 1.2e-6 per draw).
    full = sampling.standard_normal([4_000_000], SEED).numpy()
    assert np.abs(full).max() > r_max


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_box_muller_is_finite_at_the_extreme_uniforms(dtype):
    # Regression: a u that rounds to 0 or 1 gives log(0) = -inf (a NaN path in a long SDE run).
    extremes = tf.constant([0, 0xFFFFFFFF], tf.uint32)
    u = sampling.unit_interval_from_bits(extremes, dtype, extremes)
    assert np.all(u.numpy() > 0.0) and np.all(u.numpy() < 1.0)
    lattice = sampling._lattice_midpoints(tf.constant([0, 0xFFFF], tf.uint32), 16, dtype)
    for uniforms in (u, lattice):
        pairs = sampling.box_muller(uniforms, uniforms)
        assert pairs.shape == (2, 2) and np.all(np.isfinite(pairs.numpy()))


def test_box_muller_matches_its_formula():
    u1, u2 = np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.25, 0.7])
    first, second = sampling.box_muller(tf.constant(u1), tf.constant(u2)).numpy()
    radius = np.sqrt(-2 * np.log(u1))
    np.testing.assert_allclose(first, radius * np.cos(2 * np.pi * u2), rtol=1e-12)
    np.testing.assert_allclose(second, radius * np.sin(2 * np.pi * u2), rtol=1e-12, atol=1e-15)
    grid = sampling.box_muller(tf.fill([3, 4], 0.5), tf.fill([3, 4], 0.125))
    assert grid.shape == (2, 3, 4)


def test_bits_other_than_none_or_16_is_an_error():
    with pytest.raises(ValueError, match="`bits`"):
        sampling.standard_normal([3], SEED, bits=8)
