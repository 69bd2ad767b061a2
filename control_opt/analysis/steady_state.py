"""Steady states of 2-D diffusions: Fokker-Planck grid solver and long simulation.

The SDE `dx = b(x) dt + sqrt(2 beta^-1 D(x)) dB` (for SGD, `b = -grad f`,
`beta^-1 = eta / (2b)`, `D` the gradient covariance) has the Fokker-Planck
equation (Ito)

    d rho / dt = -div J,     J_i = b_i rho - beta^-1 sum_j d_j (D_ij rho),

and a steady state `rho*` with `div J = 0`. Write `rho* ∝ exp(-beta Phi)`:
the implied potential is `Phi = -beta^-1 log rho*` (up to a constant). If
`D = I` and `b = -grad f`, the dynamics are reversible, `J = 0` and `Phi = f`.
With a non-isotropic `D`, in general `Phi != f` and `J != 0` (a
non-equilibrium steady state; Chaudhari and Soatto 2018): the most likely
trajectories circulate (limit cycles).

Grid solver (finite volumes, conservative): cells of a rectangle, unknowns
the cell averages of `rho`; the flux through each interior face is
`b_face * mean(rho)` (central) minus the diffusive flux
`beta^-1 (d_n (D_nn rho) + d_t (D_nt rho))` (normal difference, and the
tangential central difference averaged over the two cells); no flux
through the boundary, so mass is conserved exactly (every face flux leaves
one cell and enters its neighbor: the generator's columns sum to 0). The
steady state is the null vector of the generator `L` (`d rho/dt = L rho`),
found by a sparse solve with one equation replaced by the normalization
`sum rho h1 h2 = 1`. The scheme is second-order; central differencing of the
drift stays positive for cell Peclet numbers `|b| h / (beta^-1 D) < 2` (a
warning is raised otherwise). The domain must hold essentially all the mass.

Simulation: Euler-Maruyama with general `D(x)` (`simulate_diffusion`), for
arbitrary dimension, and histogram estimates of the density.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from absl import logging

from control_opt._internal import checks

__all__ = [
    "FokkerPlanckSolution",
    "compare_potentials",
    "fokker_planck_steady_state",
    "histogram_density",
    "simulate_diffusion",
]


def _diffusion_field(diffusion, points):
    """`D` at `points` `[..., d]` as `[..., d, d]` (a constant matrix is broadcast)."""
    d = points.shape[-1]
    if diffusion is None:
        value = np.eye(d)
    elif callable(diffusion):
        value = np.asarray(diffusion(points), dtype=np.float64)
    else:
        value = np.asarray(diffusion, dtype=np.float64)
    if value.shape[-2:] != (d, d):
        raise ValueError(f"`diffusion` must be a {d}x{d} matrix or a callable returning [..., {d}, {d}], "
                         f"got shape {value.shape}.")
    return np.broadcast_to(value, points.shape[:-1] + (d, d))


def _drift_field(drift, points):
    value = np.asarray(drift(points), dtype=np.float64)
    if value.shape != points.shape:
        raise ValueError(f"`drift(x)` must return the shape of `x` {points.shape}, got {value.shape}.")
    return value


class FokkerPlanckSolution(NamedTuple):
    """What `fokker_planck_steady_state` returns.

    Attributes:
      x1, x2: cell centers along each axis (`[n1]`, `[n2]`).
      density: `rho*` on the cells, `[n1, n2]`, integrating to 1 (`sum rho h1 h2`).
      potential: `Phi = -beta^-1 log rho*`, shifted to minimum 0 (inf where rho <= 0).
      current: `J = b rho - beta^-1 div(D rho)` at the cell centers, `[n1, n2, 2]`.
      residual: `max |L rho|` relative to `max |L| max rho`.
      generator: the sparse generator `L` (`d rho/dt = L rho`, cells in C order).
      peclet: the largest cell Peclet number `|b_k| h_k / (beta^-1 D_kk)`.
    """

    x1: Any
    x2: Any
    density: Any
    potential: Any
    current: Any
    residual: float
    generator: Any
    peclet: float


def _one_d(n, h):
    """Face average, face difference (interior faces) and center central difference, 1-D sparse."""
    avg = scipy.sparse.diags([0.5 * np.ones(n - 1), 0.5 * np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    diff = scipy.sparse.diags([-np.ones(n - 1) / h, np.ones(n - 1) / h], [0, 1], shape=(n - 1, n))
    central = scipy.sparse.diags([-np.ones(n - 1) / (2 * h), np.ones(n - 1) / (2 * h)], [-1, 1], shape=(n, n))
    return avg, diff, central


def fokker_planck_steady_state(drift, diffusion=None, *, bounds, num_cells, beta=1.0, verbose=False):
    """Stationary density, implied potential and current of `dx = b dt + sqrt(2 beta^-1 D) dB` in 2-D.

    Example (reversible: the steady state is `exp(-beta f) / Z`):
      >>> grad_f = lambda x: np.stack([x[..., 0] ** 3 - x[..., 0], x[..., 1]], -1)
      >>> sol = fokker_planck_steady_state(lambda x: -grad_f(x), bounds=[(-3, 3), (-3, 3)],
      ...                                  num_cells=(120, 120), beta=2.0)

    Args:
      drift: `b(x)`, vectorized: `[..., 2] -> [..., 2]` (for a gradient flow, `-grad f`).
      diffusion: `D`, a constant 2x2 symmetric PSD matrix, or a callable
        `[..., 2] -> [..., 2, 2]`; default the identity.
      bounds: `[(low1, high1), (low2, high2)]`, the domain (reflecting, zero-flux boundary).
      num_cells: `(n1, n2)` cells (or one int for both), each `>= 3`.
      beta: inverse temperature `> 0` (noise `sqrt(2 beta^-1 D)`).

    Returns:
      `FokkerPlanckSolution`.
    """
    beta = checks.check_positive("beta", beta)
    if not callable(drift):
        raise ValueError(f"`drift` must be a callable `b(x)` on [..., 2] arrays, got {type(drift).__name__}.")
    bounds = np.asarray(bounds, dtype=np.float64)
    if bounds.shape != (2, 2) or not np.all(bounds[:, 1] > bounds[:, 0]) or not np.all(np.isfinite(bounds)):
        raise ValueError(f"`bounds` must be [(low1, high1), (low2, high2)] with low < high, got {bounds.tolist()}.")
    cells = (num_cells, num_cells) if np.ndim(num_cells) == 0 else tuple(num_cells)
    if len(cells) != 2:
        raise ValueError(f"`num_cells` must be an int or a pair, got {num_cells!r}.")
    n1, n2 = (checks.check_int("num_cells", c, 3) for c in cells)
    h1, h2 = (bounds[:, 1] - bounds[:, 0]) / np.array([n1, n2])
    x1 = bounds[0, 0] + h1 * (np.arange(n1) + 0.5)
    x2 = bounds[1, 0] + h2 * (np.arange(n2) + 0.5)
    centers = np.stack(np.meshgrid(x1, x2, indexing="ij"), -1)
    temp = 1.0 / beta
    dfield = temp * _diffusion_field(diffusion, centers)
    if np.any(dfield[..., 0, 0] < 0) or np.any(dfield[..., 1, 1] < 0):
        raise ValueError("`diffusion` must have non-negative diagonal entries.")
    faces1 = np.stack(np.meshgrid(x1[:-1] + h1 / 2, x2, indexing="ij"), -1)  # [n1-1, n2]
    faces2 = np.stack(np.meshgrid(x1, x2[:-1] + h2 / 2, indexing="ij"), -1)  # [n1, n2-1]
    b1 = _drift_field(drift, faces1)[..., 0].reshape(-1)
    b2 = _drift_field(drift, faces2)[..., 1].reshape(-1)
    bc = _drift_field(drift, centers)
    if not (np.all(np.isfinite(b1)) and np.all(np.isfinite(b2)) and np.all(np.isfinite(dfield))):
        raise ValueError("`drift` or `diffusion` is not finite on the grid.")

    avg1, diff1, cen1 = _one_d(n1, h1)
    avg2, diff2, cen2 = _one_d(n2, h2)
    eye1, eye2 = scipy.sparse.identity(n1), scipy.sparse.identity(n2)
    diag = lambda v: scipy.sparse.diags(v.reshape(-1))  # noqa: E731
    flux1 = (diag(b1) @ scipy.sparse.kron(avg1, eye2) - scipy.sparse.kron(diff1, eye2) @ diag(dfield[..., 0, 0])
             - scipy.sparse.kron(avg1, cen2) @ diag(dfield[..., 0, 1]))
    flux2 = (diag(b2) @ scipy.sparse.kron(eye1, avg2) - scipy.sparse.kron(eye1, diff2) @ diag(dfield[..., 1, 1])
             - scipy.sparse.kron(cen1, avg2) @ diag(dfield[..., 1, 0]))
    generator = (scipy.sparse.kron(diff1, eye2).T @ flux1 + scipy.sparse.kron(eye1, diff2).T @ flux2).tocsr()

    dmin = np.minimum(dfield[..., 0, 0], dfield[..., 1, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        peclet = float(np.nanmax(np.maximum(np.abs(bc[..., 0]) * h1, np.abs(bc[..., 1]) * h2) / dmin))
    if peclet >= 2.0:
        warnings.warn(f"cell Peclet number {peclet:.3g} >= 2: the central scheme may give negative densities; "
                      "refine the grid.", RuntimeWarning, stacklevel=2)

    # Null vector: replace the equation of the middle cell by the normalization.
    system = generator.tolil()
    row = (n1 // 2) * n2 + n2 // 2
    system[row, :] = h1 * h2
    rhs = np.zeros(n1 * n2)
    rhs[row] = 1.0
    rho = scipy.sparse.linalg.spsolve(system.tocsc(), rhs)
    scale = abs(generator).max() * max(np.abs(rho).max(), np.finfo(float).tiny)
    residual = float(np.abs(generator @ rho).max() / scale)
    if verbose:
        logging.info("Fokker-Planck: %dx%d cells, residual %.3g, min rho %.3g", n1, n2, residual, rho.min())
    if rho.min() < -1e-6 * rho.max():
        warnings.warn(f"the steady state has negative values (min {rho.min():.3g}, max {rho.max():.3g}): refine the "
                      "grid or enlarge the domain.", RuntimeWarning, stacklevel=2)
    density = rho.reshape(n1, n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        potential = np.where(density > 0, -temp * np.log(np.where(density > 0, density, 1.0)), np.inf)
    potential = potential - potential[np.isfinite(potential)].min()
    drho1 = dfield[..., 0, 0] * density, dfield[..., 0, 1] * density
    drho2 = dfield[..., 1, 0] * density, dfield[..., 1, 1] * density
    grad1 = lambda a: np.gradient(a, h1, axis=0)  # noqa: E731
    grad2 = lambda a: np.gradient(a, h2, axis=1)  # noqa: E731
    current = np.stack([bc[..., 0] * density - grad1(drho1[0]) - grad2(drho1[1]),
                        bc[..., 1] * density - grad1(drho2[0]) - grad2(drho2[1])], -1)
    return FokkerPlanckSolution(x1, x2, density, potential, current, residual, generator, peclet)


def compare_potentials(phi, f, density, *, mass=0.99):
    """Distance between two potentials up to an additive constant, where the density lives.

    Restricted to the smallest set of cells holding a fraction `mass` of the
    density, the constant is the density-weighted mean of `phi - f`.

    Returns:
      `(max_abs, weighted_rms)` of `phi - f - constant` on those cells.
    """
    phi, f, density = (np.asarray(a, dtype=np.float64) for a in (phi, f, density))
    if phi.shape != f.shape or phi.shape != density.shape:
        raise ValueError(f"`phi`, `f` and `density` must have one shape, got {phi.shape}, {f.shape}, {density.shape}.")
    mass = checks.check_unit_interval("mass", mass) if mass < 1 else 1.0
    order = np.argsort(density.reshape(-1))[::-1]
    cumulative = np.cumsum(density.reshape(-1)[order])
    keep = order[: int(np.searchsorted(cumulative, mass * cumulative[-1])) + 1]
    diff = (phi - f).reshape(-1)[keep]
    weights = density.reshape(-1)[keep]
    diff = diff - np.average(diff, weights=weights)
    return float(np.abs(diff).max()), float(np.sqrt(np.average(diff**2, weights=weights)))


def simulate_diffusion(drift, diffusion=None, x0=None, *, dt, num_steps, num_paths=1, beta=1.0, seed=None,
                       record_every=1, burn_in=0):
    """Euler-Maruyama paths of `dx = b(x) dt + sqrt(2 beta^-1 D(x)) dB` (numpy, any dimension).

    `x_{n+1} = x_n + b(x_n) dt + sqrt(2 dt / beta) D(x_n)^{1/2} xi_n`, with
    `D^{1/2}` the symmetric square root (so singular `D` are allowed). For a
    gradient drift with isotropic noise, `control_opt.simulate_sde` does the
    same in TensorFlow; this one takes any `D(x)`.

    Args:
      drift: `b(x)`, `[paths, d] -> [paths, d]`.
      diffusion: constant `d x d` symmetric PSD matrix, callable `[paths, d] ->
        [paths, d, d]`, or None (identity).
      x0: start, `[d]` or `[paths, d]`.
      dt: step `> 0`. num_steps: steps after the burn-in.
      num_paths: independent paths. beta: inverse temperature.
      seed: integer seed (numpy).
      record_every: keep every this many states.
      burn_in: steps run (and discarded) before recording starts.

    Returns:
      `[num_recorded, num_paths, d]` states (the first is the state after burn-in).
    """
    dt = checks.check_positive("dt", dt)
    beta = checks.check_positive("beta", beta)
    num_steps = checks.check_int("num_steps", num_steps, 1)
    num_paths = checks.check_int("num_paths", num_paths, 1)
    record_every = checks.check_int("record_every", record_every, 1)
    burn_in = checks.check_int("burn_in", burn_in, 0)
    if x0 is None:
        raise ValueError("`x0` must be given (a [d] or [paths, d] array).")
    x = np.array(np.broadcast_to(np.asarray(x0, dtype=np.float64), (num_paths, np.shape(x0)[-1])))
    d = x.shape[-1]
    rng = np.random.default_rng(checks.resolve_seed(seed))

    def sqrt_psd(matrix):
        lam, vec = np.linalg.eigh(matrix)
        return (vec * np.sqrt(np.maximum(lam, 0.0))[..., None, :]) @ np.swapaxes(vec, -1, -2)

    constant = None if callable(diffusion) else sqrt_psd(_diffusion_field(diffusion, np.zeros(d))).T
    scale = np.sqrt(2.0 * dt / beta)
    out = [x.copy()] if burn_in == 0 else []
    for n in range(1, burn_in + num_steps + 1):
        noise = rng.standard_normal((num_paths, d))
        if constant is not None:
            noise = noise @ constant
        else:
            noise = np.einsum("pij,pj->pi", sqrt_psd(_diffusion_field(diffusion, x)), noise)
        x = x + _drift_field(drift, x) * dt + scale * noise
        if n >= burn_in and (n - burn_in) % record_every == 0:
            out.append(x.copy())
    path = np.stack(out)
    if not np.all(np.isfinite(path)):
        raise FloatingPointError("the simulation diverged (NaN/Inf): reduce `dt`.")
    return path


def histogram_density(samples, bins, bounds):
    """Normalized 2-D histogram `[n1, n2]` of samples `[..., 2]` (density on the same cells as the grid solver
    when `bins = num_cells` and `bounds` agree). Samples outside `bounds` count toward the normalization."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    bounds = np.asarray(bounds, dtype=np.float64)
    hist, e1, e2 = np.histogram2d(samples[:, 0], samples[:, 1], bins=bins, range=bounds)
    area = (e1[1] - e1[0]) * (e2[1] - e2[0])
    return hist / (samples.shape[0] * area)
