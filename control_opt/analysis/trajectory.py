"""Trajectory diagnostics: principal components, stochastic area, spectra, autocorrelation.

A trajectory is an array `[T, d]` (one path) or `[T, paths, d]` of states
recorded every `dt`: weights of a network (flattened; project them first
with `principal_components` or `project`) or the coordinates of a
low-dimensional SDE.

Stochastic area (Levy area) of coordinates `i, j` over `[0, t]`:

    A_ij(t) = 1/2 int (x_i dx_j - x_j dx_i)
            ~ 1/2 sum_n (x_i^n (x_j^{n+1} - x_j^n) - x_j^n (x_i^{n+1} - x_i^n)),

the signed area swept by the path in the `(i, j)` plane (the Ito and
Stratonovich sums agree: the antisymmetric combination cancels the
quadratic covariation). Its rate `A_ij(t) / t` converges to a nonzero value
iff the path circulates: at equilibrium (zero probability current) the
mean rate is 0; for the linear SDE it is `Q_ij` (`linear_sde`). The rate is
reported with a batch-means standard error: the time axis is cut into
`num_batches` contiguous batches, each batch of each path gives one rate,
and the standard error is their standard deviation over the square root of
their number (valid when a batch is much longer than the correlation time).

A limit cycle shows as a peak of the power spectrum (periodogram) of a
projected coordinate and as an oscillating autocorrelation.

References:
  P. Chaudhari and S. Soatto, ICLR 2018 (limit cycles of SGD);
  P. Levy (1940), stochastic area; H. Flyvbjerg and H. G. Petersen, Error
  estimates on averages of correlated data (1989), batch means.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from control_opt._internal import checks

__all__ = [
    "PrincipalComponents",
    "StochasticArea",
    "PowerSpectrum",
    "autocorrelation",
    "power_spectrum",
    "principal_components",
    "project",
    "stochastic_area",
]


def _trajectory(path, name="trajectory"):
    path = np.asarray(path, dtype=np.float64)
    if path.ndim == 2:
        path = path[:, None, :]
    if path.ndim != 3:
        raise ValueError(f"`{name}` must have shape [T, d] or [T, paths, d], got {path.shape}.")
    if not np.all(np.isfinite(path)):
        raise ValueError(f"`{name}` contains NaN or Inf.")
    return path


class PrincipalComponents(NamedTuple):
    """`projections` `[T, (paths,) k]`, `components` `[k, d]` (orthonormal rows), `explained_variance` `[k]`,
    `explained_ratio` `[k]` (of the total variance), `mean` `[d]`."""

    projections: Any
    components: Any
    explained_variance: Any
    explained_ratio: Any
    mean: Any


def principal_components(trajectory, k=2):
    """Projects a trajectory on its top-`k` principal components (SVD of the centered snapshots).

    Args:
      trajectory: `[T, d]` or `[T, paths, d]` (paths are pooled for the PCA).
      k: number of components, `<= min(T * paths, d)`.
    """
    path = _trajectory(trajectory)
    k = checks.check_int("k", k, 1)
    flat = path.reshape(-1, path.shape[-1])
    if k > min(flat.shape):
        raise ValueError(f"`k` ({k}) must be at most min(number of snapshots, d) = {min(flat.shape)}.")
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    variance = s**2 / max(flat.shape[0] - 1, 1)
    components = vt[:k]
    proj = (path - mean) @ components.T
    if np.ndim(trajectory) == 2:
        proj = proj[:, 0]
    total = variance.sum()
    return PrincipalComponents(proj, components, variance[:k], variance[:k] / total if total > 0 else variance[:k],
                               mean)


def project(trajectory, directions, origin=None):
    """Coordinates `(x - origin) . u_k` of a trajectory along given directions `[k, d]` (not orthonormalized)."""
    path = np.asarray(trajectory, dtype=np.float64)
    directions = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    if directions.shape[-1] != path.shape[-1]:
        raise ValueError(f"`directions` must have last axis {path.shape[-1]} (the trajectory's), "
                         f"got {directions.shape}.")
    origin = 0.0 if origin is None else np.asarray(origin, dtype=np.float64)
    return (path - origin) @ directions.T


class StochasticArea(NamedTuple):
    """What `stochastic_area` returns.

    Attributes:
      rate: `[d, d]` antisymmetric matrix of mean area rates
        `1/2 <x_i dx_j - x_j dx_i> / dt`.
      stderr: `[d, d]` batch-means standard errors.
      batch_rates: `[num_samples, d, d]` the per-batch (per path) rates.
      num_samples: number of batch rates (`num_batches * paths`).
      total_time: time covered per path.
    """

    rate: Any
    stderr: Any
    batch_rates: Any
    num_samples: int
    total_time: float

    def z_score(self, i=0, j=1, value=0.0):
        """`(rate_ij - value) / stderr_ij`."""
        return float((self.rate[i, j] - value) / self.stderr[i, j])


def stochastic_area(trajectory, dt, *, num_batches=20, burn_in=0, center=None):
    """Stochastic-area rate matrix `A_ij / t` of a trajectory, with batch-means standard errors.

    Example:
      >>> area = stochastic_area(paths, dt=0.01, num_batches=20)  # paths [T, num_paths, 2]
      >>> area.rate[0, 1], area.stderr[0, 1]

    Args:
      trajectory: `[T, d]` or `[T, paths, d]`, states every `dt`.
      dt: time between recorded states, `> 0`.
      num_batches: contiguous time batches per path (`>= 2` samples overall).
      burn_in: recorded states to drop at the start (transient).
      center: subtract this point from the states first (default none: the
        area is about the origin; the rate of a stationary path does not
        depend on the center, its fluctuations do).

    Returns:
      `StochasticArea`.
    """
    path = _trajectory(trajectory)
    dt = checks.check_positive("dt", dt)
    num_batches = checks.check_int("num_batches", num_batches, 1)
    burn_in = checks.check_int("burn_in", burn_in, 0)
    path = path[burn_in:]
    if center is not None:
        path = path - np.asarray(center, dtype=np.float64)
    steps = path.shape[0] - 1
    if steps < num_batches:
        raise ValueError(f"`trajectory` has {steps} steps after burn-in, fewer than `num_batches` ({num_batches}).")
    if num_batches * path.shape[1] < 2:
        raise ValueError("need at least two batch rates: use `num_batches >= 2` for a single path.")
    x, dx = path[:-1], np.diff(path, axis=0)
    per_step = 0.5 * (np.einsum("tpi,tpj->tpij", x, dx) - np.einsum("tpj,tpi->tpij", x, dx))
    length = steps // num_batches
    used = per_step[: length * num_batches].reshape((num_batches, length) + per_step.shape[1:])
    rates = used.sum(axis=1) / (length * dt)  # [batches, paths, d, d]
    rates = rates.reshape((-1,) + rates.shape[-2:])
    stderr = rates.std(axis=0, ddof=1) / np.sqrt(rates.shape[0])
    return StochasticArea(rates.mean(axis=0), stderr, rates, rates.shape[0], length * num_batches * dt)


class PowerSpectrum(NamedTuple):
    """`frequencies` (cycles per unit time), `power` `[F, ...]` (periodogram, averaged over paths),
    `peak_frequency` per coordinate (zero frequency excluded), `peak_power`."""

    frequencies: Any
    power: Any
    peak_frequency: Any
    peak_power: Any


def power_spectrum(signal, dt):
    """Periodogram `|FFT(x - mean)|^2 dt / T` of `[T]`, `[T, k]` or `[T, paths, k]` signals, averaged over paths.

    A limit cycle of period `tau` gives a peak at `1 / tau`.
    """
    dt = checks.check_positive("dt", dt)
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] < 4:
        raise ValueError(f"`signal` must have at least 4 time points along axis 0, got shape {x.shape}.")
    x = x - x.mean(axis=0)
    n = x.shape[0]
    power = np.abs(np.fft.rfft(x, axis=0)) ** 2 * dt / n
    if x.ndim == 3:
        power = power.mean(axis=1)
    freqs = np.fft.rfftfreq(n, dt)
    peak = np.argmax(power[1:], axis=0) + 1
    return PowerSpectrum(freqs, power, freqs[peak], np.take_along_axis(power, np.atleast_1d(peak)[None], 0)[0]
                         if power.ndim > 1 else power[peak])


def autocorrelation(signal, max_lag=None):
    """Normalized autocorrelation `C(l) / C(0)` of `[T]` or `[T, k]` signals, lags `0..max_lag` (FFT, mean removed)."""
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] < 2:
        raise ValueError(f"`signal` must have at least 2 time points along axis 0, got shape {x.shape}.")
    n = x.shape[0]
    max_lag = n - 1 if max_lag is None else min(checks.check_int("max_lag", max_lag, 0), n - 1)
    x = x - x.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), size, axis=0)[: max_lag + 1] / n
    return acov / np.where(acov[0] != 0, acov[0], 1.0)
