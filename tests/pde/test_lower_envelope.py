"""The compiled lower envelope (`lower_envelope_transform`, `pde._envelope_kernel`)
against slow oracles: the O(n^2) direct minimum, and the Felzenszwalb-Huttenlocher
stack pass as the plain Python loop that the XLA loop replaced
(`lower_envelope._python_stack_pass`)."""

import re

import numpy as np
import pytest
import tensorflow as tf

from control_opt.pde import _envelope_kernel, hopf_lax
from control_opt.pde.lower_envelope import _python_stack_pass, lower_envelope_transform
from tests.pde.brute_force import brute_force_2d

FLOAT_MAX = float(np.finfo(np.float64).max)
CURVATURES = [1e-300, 1e-12, 1e-3, 0.3, 10.0, 1e200, FLOAT_MAX]


def direct_minimum(f, c, points=None):
    """`min_q f[q] + c (p - q)^2` and the first argmin, for p in `points` (default all)."""
    n = f.size
    points = np.arange(n) if points is None else np.asarray(points)
    d, arg = np.empty(points.size), np.empty(points.size, dtype=np.int64)
    q = np.arange(n)
    block = max(1, (1 << 22) // n)
    with np.errstate(over="ignore"):
        for start in range(0, points.size, block):
            p = points[start:start + block, None]
            objective = f[None, :] + c * (p - q[None, :]).astype(np.float64) ** 2
            k = np.argmin(objective, axis=1)
            d[start:start + block] = objective[np.arange(k.size), k]
            arg[start:start + block] = np.where(np.isposinf(f).all(), -1, k)
    return d, arg


def assert_exact(f, c, d, arg, points=None):
    """`d` is the minimum at every p of `points` (to the tolerance of the other
    Hopf-Lax tests) and `arg` attains it; `arg = -1` exactly where all f is inf."""
    points = np.arange(f.size) if points is None else np.asarray(points)
    expected, first = direct_minimum(f, c, points)
    d, arg = d[points], arg[points]
    np.testing.assert_array_equal(arg == -1, first == -1)
    np.testing.assert_array_equal(np.isposinf(d), np.isposinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(d[finite], expected[finite], rtol=1e-12, atol=1e-12)
    ok = arg >= 0
    with np.errstate(over="ignore"):
        attained = f[arg[ok]] + c * (points[ok] - arg[ok]).astype(np.float64) ** 2
    np.testing.assert_array_equal(np.isposinf(attained), np.isposinf(expected[ok]))
    fin = np.isfinite(expected[ok])
    np.testing.assert_allclose(attained[fin], expected[ok][fin], rtol=1e-12, atol=1e-12)


def random_case(rng):
    n = int(rng.integers(1, 300))
    kind = rng.integers(4)
    if kind == 0:
        f = rng.normal(size=n) * rng.uniform(0.1, 5.0)
    elif kind == 1:                 # many exact ties
        f = rng.integers(0, 3, size=n).astype(np.float64)
    elif kind == 2:                 # non-convex with a trend
        x = np.linspace(-2.0, 3.0, n)
        f = np.sin(7 * x) + 0.3 * x**2 + 0.1 * rng.normal(size=n)
    else:                           # convex: every parabola is on the envelope
        f = 0.01 * (np.arange(n) - n / 3.0) ** 2
    f[rng.uniform(size=n) < rng.choice([0.0, 0.3, 0.9])] = np.inf
    return f, float(rng.choice(CURVATURES))


def test_matches_the_direct_minimum_and_the_python_stack_pass():
    rng = np.random.default_rng(0)
    for _ in range(150):
        f, c = random_case(rng)
        d, arg = lower_envelope_transform(f, c)
        assert d.dtype == np.float64 and arg.dtype == np.int64 and d.shape == arg.shape == f.shape
        assert_exact(f, c, d, arg)
        # The same intersections and pop rule as the Python loop: the same argmins.
        d_ref, arg_ref = _python_stack_pass(f, c)
        np.testing.assert_array_equal(arg, arg_ref)
        np.testing.assert_allclose(d, d_ref, rtol=1e-14, atol=1e-14)


def test_ties_infeasible_and_degenerate_inputs():
    # An exact tie at p = 1 between q = 0 and q = 2: either is right.
    d, arg = lower_envelope_transform(np.array([0.0, np.inf, 0.0]), 1.0)
    np.testing.assert_array_equal(d, [0.0, 1.0, 0.0])
    assert arg[0] == 0 and arg[1] in (0, 2) and arg[2] == 2
    # A constant f: every point is its own minimizer.
    d, arg = lower_envelope_transform(np.full(50, 2.5), 0.7)
    np.testing.assert_array_equal(d, np.full(50, 2.5))
    np.testing.assert_array_equal(arg, np.arange(50))
    # All infeasible, a single point, a single feasible point, nothing.
    d, arg = lower_envelope_transform(np.full(7, np.inf), 0.3)
    assert np.all(np.isposinf(d)) and np.all(arg == -1)
    d, arg = lower_envelope_transform(np.array([4.0]), 0.3)
    np.testing.assert_array_equal(d, [4.0])
    np.testing.assert_array_equal(arg, [0])
    f = np.full(9, np.inf)
    f[6] = -1.0
    d, arg = lower_envelope_transform(f, 0.5)
    np.testing.assert_array_equal(arg, np.full(9, 6))
    np.testing.assert_array_equal(d, -1.0 + 0.5 * (np.arange(9) - 6.0) ** 2)
    d, arg = lower_envelope_transform(np.empty(0), 1.0)
    assert d.shape == arg.shape == (0,)
    with pytest.raises(ValueError, match="1-D"):
        lower_envelope_transform(np.zeros((2, 3)), 1.0)


def test_huge_and_tiny_curvature():
    rng = np.random.default_rng(1)
    f = rng.normal(size=40)
    f[rng.uniform(size=40) < 0.3] = np.inf
    # The largest float: 2c overflows; each feasible point keeps its own value.
    d, arg = lower_envelope_transform(f, FLOAT_MAX)
    np.testing.assert_array_equal(d[np.isfinite(f)], f[np.isfinite(f)])
    assert_exact(f, FLOAT_MAX, d, arg)
    # A tiny c: the intersections overflow to +-inf; the global minimum wins everywhere
    # (plus at most c n^2, far below the rounding of f).
    d, arg = lower_envelope_transform(f, 1e-300)
    np.testing.assert_array_equal(arg, np.full(40, np.nanargmin(np.where(np.isfinite(f), f, np.nan))))
    assert_exact(f, 1e-300, d, arg)


@pytest.mark.parametrize("c", [4e-11, 0.3])
def test_large_grid_spot_checks(c):
    # 2^20 + 3 points (not a bucket size), non-convex, with constraints; c = 4e-11
    # is that of the benchmark (t = 0.05, h = 2e-6): few parabolas, long intervals,
    # many pops. Every p checked against the direct minimum is exact.
    rng = np.random.default_rng(2)
    n = (1 << 20) + 3
    x = np.linspace(-1.0, 1.0, n)
    f = np.sin(25.0 * x) + 0.5 * x**2 + 0.1 * rng.normal(size=n)
    f[rng.uniform(size=n) < 0.2] = np.inf
    f[:5] = np.inf
    d, arg = lower_envelope_transform(f, c)
    points = np.concatenate([np.arange(8), n - 1 - np.arange(8), rng.integers(0, n, size=48)])
    assert_exact(f, c, d, arg, points)
    # The envelope is piecewise constant in arg, non-decreasing (a property of the exact answer).
    assert np.all(np.diff(arg[5:]) >= 0)


def test_oracle_rejects_wrong_answers():
    """The checks above fail on a wrong implementation: a windowed minimum that
    misses far parabolas, and a query that is one point off at a boundary."""
    rng = np.random.default_rng(3)
    f = rng.normal(size=200)
    c = 1e-3
    d, arg = lower_envelope_transform(f, c)
    assert_exact(f, c, d, arg)
    window = np.stack([np.roll(f, k) + c * k**2 for k in (-1, 0, 1)])   # nearest neighbours only
    with pytest.raises(AssertionError):
        assert_exact(f, c, window.min(axis=0), np.arange(200))
    boundary = int(np.flatnonzero(np.diff(arg))[0]) + 1    # first point of the second interval
    shifted = arg.copy()
    shifted[boundary] = arg[boundary - 1]
    with np.errstate(over="ignore"):
        wrong_d = f[shifted] + c * (np.arange(200) - shifted) ** 2
    with pytest.raises(AssertionError):
        assert_exact(f, c, wrong_d, shifted)


@pytest.mark.parametrize("shape", [(2, 400), (400, 2), (37, 23)])
def test_2d_batched_rows_and_columns(shape):
    # One stack for all the rows of a pass: empty rows and columns, rows of two
    # points, and a transposed layout must not leak from one row into the next.
    rng = np.random.default_rng(sum(shape))
    x0, x1 = np.linspace(-1.0, 2.0, shape[0]), np.linspace(0.0, 1.5, shape[1])
    f = rng.normal(size=shape) * 2.0
    f[rng.uniform(size=shape) < 0.3] = np.inf
    f[:, 1] = np.inf
    f[1, :] = np.inf
    for t in (0.003, 0.2, 3.0):
        result = hopf_lax(f, (x0, x1), t)
        expected = brute_force_2d(f, x0, x1, t)
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(np.isfinite(result.u), finite)
        np.testing.assert_allclose(result.u[finite], expected[finite], rtol=1e-12, atol=1e-12)
        k = np.rint((result.prox[0] - x0[0]) / (x0[1] - x0[0]))[finite].astype(int)
        l = np.rint((result.prox[1] - x1[0]) / (x1[1] - x1[0]))[finite].astype(int)
        w0, w1 = np.meshgrid(x0, x1, indexing="ij")
        attained = f[k, l] + ((w0[finite] - x0[k]) ** 2 + (w1[finite] - x1[l]) ** 2) / (2.0 * t)
        np.testing.assert_allclose(attained, expected[finite], rtol=1e-12, atol=1e-12)
        assert np.all(np.isnan(result.prox[:, ~finite]))


def test_bucket_sizes_bound_the_padding():
    for n in list(range(1, 5000, 7)) + [2**20, 2**20 + 1, 3 * 2**19, 3 * 2**19 + 1, 10**6]:
        size = _envelope_kernel.bucket_size(n)
        assert n <= size <= max(1024, 1.5 * n)
        assert size in (1024, *(2**k for k in range(11, 32)), *(3 * 2**k for k in range(9, 31)))


def test_one_trace_per_function_for_all_shapes():
    x = np.linspace(0.0, 1.0, 3000)
    for n in (5, 600, 3000):
        hopf_lax(np.cos(x[:n]), x[:n], 0.1)
        lower_envelope_transform(np.cos(x[:n]), 0.1)
    assert _envelope_kernel._hopf_lax_1d_xla.experimental_get_tracing_count() == 1
    assert _envelope_kernel._transform_1d_xla.experimental_get_tracing_count() == 1


def test_stack_pass_loops_compile_to_single_functions():
    """XLA:CPU runs a while loop op by op (about 10x slower here) unless its body
    is small enough to be hoisted into one compiled function, which it marks
    `xla_cpu_small_call`. The point loop and the pop loop of every transform
    must stay so: two per 1-D transform, four for the two passes in 2-D."""
    f = tf.zeros([1024], tf.float64)
    i, c = tf.constant(16), tf.constant(0.5, tf.float64)
    for function, args, loops in (
            (_envelope_kernel._transform_1d_xla, (f, i, c), 2),
            (_envelope_kernel._hopf_lax_1d_xla, (f, i, c, f), 2),
            (_envelope_kernel._hopf_lax_2d_xla, (f, i, i, c, c, f, f), 4)):
        with tf.device("/CPU:0"):
            hlo = function.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
        assert len(re.findall(r'xla_cpu_small_call="true"', hlo)) == loops, function.__name__
