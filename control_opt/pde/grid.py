"""Validation of the grids, times and loss values handed to the grid solvers.

A grid is a 1-D array of equally spaced, strictly increasing points, or a tuple
of two such arrays for a 2-D grid, with `values` of shape
`(len(grid[0]), len(grid[1]))` (`values[i, j] = f(grid[0][i], grid[1][j])`,
numpy's "ij" indexing). Every check raises a `ValueError` naming the argument.
"""

from __future__ import annotations

import numpy as np

from control_opt._internal.checks import check_positive

__all__ = ["capped_ratio", "check_grid", "check_time", "check_values"]

_FLOAT_MAX = float(np.finfo(np.float64).max)

# Relative tolerance on the spacing: `np.linspace` and `np.arange` grids are
# uniform to rounding (~1e-15 relative), a grid built by hand may be less exact.
_SPACING_RTOL = 1e-6


def _is_axis(a):
    return np.ndim(a) == 1 and not isinstance(a, (str, bytes))


def _check_axis(axis, name):
    try:
        x = np.asarray(axis, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{name}` must be an array of real numbers: {e}") from None
    if x.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of grid points, got shape {x.shape}.")
    if x.size < 2:
        raise ValueError(f"`{name}` must hold at least 2 points, got {x.size}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` must hold finite points.")
    steps = np.diff(x)
    if not np.all(steps > 0):
        raise ValueError(f"`{name}` must be sorted in strictly increasing order "
                         f"(step {steps.min():.6g} found).")
    h = (x[-1] - x[0]) / (x.size - 1)
    if np.max(np.abs(steps - h)) > _SPACING_RTOL * h:
        raise ValueError(f"`{name}` must be equally spaced: steps range from {steps.min():.6g} "
                         f"to {steps.max():.6g}.")
    return x


def check_grid(grid):
    """Returns the grid as a tuple of float64 axes (one for 1-D, two for 2-D).

    Raises:
      ValueError: `grid` is neither a 1-D array nor a tuple of two 1-D arrays,
        has fewer than 2 points per axis, non-finite, unsorted or non-uniform points.
    """
    if isinstance(grid, (tuple, list)) and len(grid) == 2 and all(_is_axis(a) for a in grid):
        return (_check_axis(grid[0], "grid[0]"), _check_axis(grid[1], "grid[1]"))
    if isinstance(grid, (tuple, list)) and len(grid) > 0 and all(_is_axis(a) for a in grid):
        raise ValueError(f"`grid` must be a 1-D array or a tuple of two 1-D arrays, "
                         f"got a tuple of {len(grid)} arrays.")
    try:
        ndim = np.ndim(grid)
    except (TypeError, ValueError):
        ndim = None
    if ndim != 1:
        shape = np.shape(grid) if ndim is not None else type(grid).__name__
        raise ValueError(f"`grid` must be a 1-D array or a tuple of two 1-D arrays, got shape {shape}.")
    return (_check_axis(grid, "grid"),)


def check_values(values, axes, *, allow_inf):
    """Returns `values` as a float64 array after checking it against the grid.

    Args:
      values: the loss `f` on the grid.
      axes: the output of `check_grid`.
      allow_inf: whether `+inf` (a hard constraint, `f = +inf` outside the
        feasible set) is legitimate.

    Raises:
      ValueError: shape mismatch (both shapes are named), NaN, `-inf`, or `+inf`
        when not allowed.
    """
    try:
        f = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`values` must be an array of real numbers: {e}") from None
    expected = tuple(a.size for a in axes)
    if f.shape != expected:
        raise ValueError(f"`values` has shape {f.shape} but the grid has shape {expected}; "
                         "they must match (2-D: `values[i, j] = f(grid[0][i], grid[1][j])`).")
    if np.isnan(f).any():
        raise ValueError("`values` must not contain NaN.")
    if np.isneginf(f).any():
        raise ValueError("`values` must not contain -inf (the minimum would be unbounded).")
    if not allow_inf and np.isposinf(f).any():
        raise ValueError("`values` must be finite here (+inf constraints are supported by "
                         "`hopf_lax` only: exp(-beta f) would vanish and the log be -inf).")
    return f


def check_time(t):
    """The time of both grid solvers, as a float: finite, > 0 and normal.

    One rule for `hopf_lax` and `viscous_hj`: `t` must be at least
    `np.finfo(np.float64).tiny` (about 2.2e-308), so that `1/t` is finite. A
    subnormal `t` (say 1e-310) is rejected rather than silently turned into
    `inf * 0 = NaN` by the kernels' curvatures `h^2/(2t)` and `beta/(2t)`.
    Every normal `t` is accepted: where a curvature still overflows (a tiny
    `t` on a coarse grid, or a huge `beta`) it is capped by `capped_ratio`,
    which gives the `t -> 0` limit `u = f` exactly.

    Raises:
      ValueError: naming `t`, when it is not a finite normal float > 0.
    """
    return check_positive("t", t, normal=True)


def capped_ratio(numerator, denominator):
    """`numerator / denominator` for positive floats, capped at the largest
    finite float64 instead of overflowing to `inf`.

    A curvature `c` multiplies squared distances that are zero on the diagonal;
    `inf * 0` would be NaN, `c_max * 0` is 0, and `c_max * d^2 = inf` for any
    `d^2 >= 1` (or a huge value below) which rules that point out exactly as an
    infinite curvature would.
    """
    with np.errstate(over="ignore"):
        ratio = float(numerator) / float(denominator)
    return min(ratio, _FLOAT_MAX)
