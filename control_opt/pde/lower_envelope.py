"""Non-viscous Hamilton-Jacobi on a grid, exactly, by the Hopf-Lax formula.

    u_t = -1/2 |grad u|^2,   u(., 0) = f,

has the solution ([1] section 3; docs/math.md section 4)

    u(w, t) = min_y  f(y) + |w - y|^2 / (2 t)        (Moreau envelope of f)

whose minimizer `y*(w) = w - t grad u(w, t)` is the proximal point. Here `w`
and `y` both run over the grid, and the minimum is computed exactly: this is
the "distance transform" of `f` under the squared distance, which the lower
envelope of the parabolas `y -> f(y) + |w - y|^2/(2t)` gives in O(n) for n grid
points ([2] section 3, the algorithm `DT(f)`). In 2-D the squared distance
separates, `|w - y|^2 = (w_0 - y_0)^2 + (w_1 - y_1)^2`, so the 2-D transform is a
1-D transform along axis 0 (for every column) followed by one along axis 1 (for
every row), O(n0 n1) in all ([2] section 4); the argmins of both passes give
the 2-D proximal point.

`f = +inf` marks infeasible points (a hard constraint): they never minimize,
and a point whose every candidate is infeasible gets `u = +inf`, `prox = NaN`.

The lower envelope is a sequential stack algorithm. It runs as one XLA program
(`tf.function(jit_compile=True)`, `_envelope_kernel`): the stack pass is a
`tf.while_loop` over the points with an inner loop of pops, which XLA:CPU
compiles into a single function; the query is vectorized (a scatter-add and a
cumulative sum give every point its parabola). The 2-D transform does both
passes in the same program, all columns (then all rows) on one stack. The
intersections are computed with the formula, hence the rounding, of the Python
loop this replaces (`_python_stack_pass`, kept as the tests' reference), so the
argmins are the same.

Speed (bench/bench_hopf_lax.py, BENCHMARKS.md; 2 shared cores): `hopf_lax` on a
1-D grid of 10^6 points takes 33-43 ns a point end to end, depending on the
load (the Python loop it replaces: ~270-340 here, 585 when the issue measured
it), of which ~20 ns is the loop, ~7 the query and the rest the input checks and
the copies; time ~ n^1 from n ~ 10^5 on, ~0.2 ms a call below. The first call
for a size compiles the program for its bucket (sizes are padded to 2^k or
3 2^(k-1)): 0.2-0.7 s in 1-D, 0.6-0.9 s in 2-D. Why this method: it is the
algorithm itself, O(n) and exact, at compiled speed, with no new dependency.
Measured and dropped (10^6 points): a `tf.while_loop` whose body is one
pop-or-push step with selects runs ~2n iterations at ~19 ns (38 ns a point for
the pass alone); `tensor_scatter_nd_update` on the stack copies it at every
iteration (O(n^2)); a body too large for XLA:CPU's small-loop hoisting runs op
by op at 300-460 ns a point; a vectorized pre-pass dropping the points above the
chord of their neighbours halves this `f` but saved ~1 ms and cost 2.5 ms on a
convex `f` (and repeated to a fixed point it is O(n^2) at worst: a convex chain
before a low point loses one point per pass). Ruled out without a run: a
divide-and-conquer over the monotone argmin (O(n log n)); Qhull
(`scipy.spatial.ConvexHull`) on the points `(q, f[q] + c q^2)` (O(n log n),
and the `c q^2` the intersection form avoids); SciPy's distance transforms
(binary images only); numba (not installed, and LLVM as a new dependency for a
target already met).

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      Relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences 5, 30 (2018).
      https://arxiv.org/abs/1704.04932
  [2] P. F. Felzenszwalb, D. P. Huttenlocher. Distance transforms of sampled
      functions. Theory of Computing 8, 415-428 (2012).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from control_opt.pde import _envelope_kernel as _kernel
from control_opt.pde.grid import capped_ratio, check_grid, check_time, check_values

__all__ = ["HopfLaxSolution", "hopf_lax", "lower_envelope_transform"]

# The kernel's flat indices are int32, and the padded size is up to 3/2 of the size.
_MAX_POINTS = 2**30


@dataclasses.dataclass(frozen=True)
class HopfLaxSolution:
    """Result of `hopf_lax`.

    Attributes:
      u: `u(w, t)` at every grid point, shape of `values` (`+inf` where every
        candidate `y` is infeasible).
      prox: the minimizing `y*(w)`, the proximal point. 1-D: shape `(n,)`.
        2-D: shape `(2, n0, n1)`, `prox[0]` the axis-0 coordinate and `prox[1]`
        the axis-1 coordinate of `y*` at `(grid[0][i], grid[1][j])`. NaN where
        `u = +inf`. On an exact tie either minimizer may be returned.
    """

    u: np.ndarray
    prox: np.ndarray


def lower_envelope_transform(f, c):
    """`d[p] = min_q f[q] + c (p - q)^2` over integer indices, and its argmin.

    The Felzenszwalb-Huttenlocher lower envelope ([2] algorithm DT): the
    parabolas rooted at the feasible `q` are pushed on a stack in order of `q`;
    the parabola from `q` and the one on top of the stack, from `r`, intersect at

        s = (f[q] - f[r]) / (2 c (q - r)) + (q + r) / 2

    (the form without `c q^2 - c r^2`, which would cancel for large n), and
    parabolas hidden by the new one (`s <=` the left end of their interval) are
    popped. Then every `p` reads the parabola whose interval `[z[k], z[k+1]]`
    holds it. Both passes run as one XLA-compiled TensorFlow function
    (`_envelope_kernel`; module docstring).

    Args:
      f: 1-D float64 array, `+inf` allowed (never chosen).
      c: the curvature, > 0 (`h^2 / (2 t)` for grid step h and time t). With a
        huge `c` (up to the largest float) `2c` and `c (p - q)^2` may overflow
        to `inf`, which is the right limit: `s` is then the midpoint and far
        parabolas lose.

    Returns:
      `(d, arg)`: float64 values and int64 argmins (`-1` and `d = inf` where
      every `f` is inf).
    """
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 1:
        raise ValueError(f"`f` must be a 1-D array, got shape {f.shape}.")
    if f.size == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    _check_size(f.size)
    return _kernel.transform_1d(f, c)


def _check_size(n):
    """A ValueError past the kernel's range (int32 flat indices, padding included)."""
    if n > _MAX_POINTS:
        raise ValueError(f"at most {_MAX_POINTS} grid points are supported, got {n}.")


def hopf_lax(values, grid, t) -> HopfLaxSolution:
    """Solves `u_t = -1/2 |grad u|^2`, `u(., 0) = f` on a grid by Hopf-Lax.

        u(w, t) = min_y  f(y) + |w - y|^2 / (2 t),     prox(w) = argmin_y,

    with `w` and `y` on the grid, exactly and in O(n) (module docstring). The
    minimum is over grid points only, so `u` is exact for the loss restricted
    to the grid (`f = +inf` between grid points); against the continuous
    solution of a smooth `f` the error is `O(h^2)` and `grad u` is `O(h)`
    accurate. There are no boundary effects beyond that: a `w` near the edge
    sees every `y` of the grid, but none outside it.

    Example:
      >>> x = np.linspace(-1, 1, 5)
      >>> hopf_lax(np.abs(x), x, 1.0).u     # Huber: x^2/2 for |x| <= 1
      array([0.5  , 0.125, 0.   , 0.125, 0.5  ])

    Args:
      values: `f` on the grid, shape `(n,)` or `(n0, n1)`; `+inf` allowed.
      grid: a 1-D array of equally spaced increasing points, or a tuple of two.
      t: time, a normal float > 0 (at least `np.finfo(np.float64).tiny`, so
        that `1/t` is finite; `grid.check_time`, the same rule as `viscous_hj`).

    Returns:
      `HopfLaxSolution(u, prox)`.

    Raises:
      ValueError: a bad `grid`, `t <= 0` or subnormal, `values` of the wrong
        shape or with NaN or `-inf`.
    """
    axes = check_grid(grid)
    t = check_time(t)
    f = check_values(values, axes, allow_inf=True)
    # c = h^2 / (2t), capped at the largest float (the t -> 0 limit u = f) rather than inf.
    curvatures = [capped_ratio(((a[-1] - a[0]) / (a.size - 1)) ** 2, 2.0 * t) for a in axes]
    _check_size(f.size)
    if len(axes) == 1:
        u, prox = _kernel.hopf_lax_1d(f, axes[0], curvatures[0])
    else:
        # Axis 0 for every column j: g[i, j] = min_k f[k, j] + (x0_i - x0_k)^2/(2t);
        # then axis 1 for every row i: u[i, j] = min_l g[i, l] + (x1_j - x1_l)^2/(2t).
        u, prox = _kernel.hopf_lax_2d(f, axes[0], axes[1], *curvatures)
    return HopfLaxSolution(u=u, prox=prox)


def _python_stack_pass(f, c):
    """The former implementation of `lower_envelope_transform`: the same stack
    pass as a plain Python loop (~0.3 us a point), the query by `np.searchsorted`.
    A slow reference for the tests and the benchmark's baseline.

    The one change: a stack's bottom parabola is kept when an intersection
    overflows to `-inf` (a tiny `c`; the loop used to pop the bottom and fail).
    """
    f = np.asarray(f, dtype=np.float64)
    n = f.shape[0]
    feasible = np.flatnonzero(np.isfinite(f))
    if feasible.size == 0:
        return np.full(n, np.inf), np.full(n, -1, dtype=np.int64)
    fl, c = f.tolist(), float(c)
    with np.errstate(over="ignore"):
        two_c = 2.0 * c
        q0 = int(feasible[0])
        v = [q0]          # roots of the parabolas of the envelope
        z = [-np.inf]     # z[k]: left end of the interval where parabola v[k] is lowest
        fv = fl[q0]
        top = q0
        for q in feasible[1:].tolist():
            fq = fl[q]
            s = (fq - fv) / (two_c * (q - top)) + 0.5 * (q + top)
            while s <= z[-1] and len(v) > 1:
                v.pop()
                z.pop()
                top = v[-1]
                fv = fl[top]
                s = (fq - fv) / (two_c * (q - top)) + 0.5 * (q + top)
            v.append(q)
            z.append(s)
            top, fv = q, fq
        roots = np.asarray(v, dtype=np.int64)
        # Parabola k is lowest on [z[k], z[k+1]]; p belongs to the first k with z[k+1] >= p.
        arg = roots[np.searchsorted(np.asarray(z[1:]), np.arange(n), side="left")]
        return f[arg] + c * (np.arange(n) - arg) ** 2, arg


def _brute_force(values, grid, t):
    """O(n^2) oracle for tests and benchmarks: `hopf_lax` by direct minimum.

    1-D only (a 2-D oracle is a 1-D one on the flattened grid with the 2-D
    distance; the tests build it). Rows are done in blocks to bound memory.
    Returns `(u, prox)`; `prox` is the first minimizer, NaN where `u = +inf`.
    """
    (x,) = check_grid(grid)
    t = check_time(t)
    f = check_values(values, (x,), allow_inf=True)
    u = np.empty_like(f)
    prox = np.empty_like(f)
    block = max(1, (1 << 22) // x.size)
    for start in range(0, x.size, block):
        w = x[start:start + block, None]
        objective = f[None, :] + (w - x[None, :]) ** 2 / (2.0 * t)
        k = np.argmin(objective, axis=1)
        u[start:start + block] = objective[np.arange(k.size), k]
        prox[start:start + block] = x[k]
    prox[~np.isfinite(u)] = np.nan
    return u, prox
