"""Viscous HJ by Cole-Hopf on grids: closed forms, a dense 2-D oracle, the PDE."""

import numpy as np
import pytest

from control_opt.pde import hopf_lax, viscous_hj


def nonconvex(x):
    return np.cos(2.0 * x) + 0.3 * x**2


def quadratic_u(a, w, t, beta):
    """Viscous solution for f = a/2 w^2 (docs/math.md section 4)."""
    return a * w**2 / (2 * (1 + a * t)) + np.log(1 + a * t) / (2 * beta)


@pytest.mark.parametrize("a,t,beta", [(2.0, 0.5, 10.0), (0.5, 2.0, 1.0), (5.0, 0.1, 100.0)])
def test_quadratic_closed_form_1d(a, t, beta):
    # The normalisation must produce the additive log(1 + a t)/(2 beta).
    x = np.linspace(-8.0, 8.0, 1201)
    result = viscous_hj(0.5 * a * x**2, x, t, beta)
    inside = np.abs(x) < 2.0   # the truncation to the grid only shows near the edges
    np.testing.assert_allclose(result.u[inside], quadratic_u(a, x, t, beta)[inside], atol=1e-10)
    np.testing.assert_allclose(result.grad[inside], (a * x / (1 + a * t))[inside], atol=1e-10)


def test_quadratic_closed_form_2d_anisotropic():
    a0, a1, t, beta = 2.0, 0.5, 0.5, 10.0
    x0, x1 = np.linspace(-3.0, 3.0, 121), np.linspace(-4.0, 4.0, 101)
    w0, w1 = np.meshgrid(x0, x1, indexing="ij")
    result = viscous_hj(0.5 * (a0 * w0**2 + a1 * w1**2), (x0, x1), t, beta)
    inside = (np.abs(w0) < 1.5) & (np.abs(w1) < 2.0)
    exact = quadratic_u(a0, w0, t, beta) + quadratic_u(a1, w1, t, beta)
    assert result.grad.shape == (2, 121, 101)
    np.testing.assert_allclose(result.u[inside], exact[inside], atol=1e-10)
    np.testing.assert_allclose(result.grad[0][inside], (a0 * w0 / (1 + a0 * t))[inside], atol=1e-10)
    np.testing.assert_allclose(result.grad[1][inside], (a1 * w1 / (1 + a1 * t))[inside], atol=1e-10)


def test_truncation_shows_near_the_edges_only():
    # Documented behaviour: next to an edge the missing y's push u up.
    a, t, beta = 1.0, 1.0, 2.0
    x = np.linspace(-3.0, 3.0, 301)
    error = viscous_hj(0.5 * a * x**2, x, t, beta).u - quadratic_u(a, x, t, beta)
    assert error[0] > 1e-4 and error[-1] > 1e-4
    assert np.abs(error[np.abs(x) < 1.0]).max() < 1e-6   # 5 kernel widths from the edges


def dense_2d(f, x0, x1, t, beta):
    """Oracle: the discrete Cole-Hopf formula summed over all pairs of points."""
    w0, w1 = np.meshgrid(x0, x1, indexing="ij")
    p0, p1 = w0.ravel(), w1.ravel()
    z = -beta * f.ravel()[None, :] - beta * ((p0[:, None] - p0[None, :]) ** 2
                                             + (p1[:, None] - p1[None, :]) ** 2) / (2 * t)
    top = z.max(axis=1, keepdims=True)
    weights = np.exp(z - top)
    total = weights.sum(axis=1)
    log_theta = sum(np.log(np.sum(np.exp(-beta * (h * np.arange(-60, 61)) ** 2 / (2 * t))))
                    for h in (x0[1] - x0[0], x1[1] - x1[0]))
    u = -(top[:, 0] + np.log(total) - log_theta) / beta
    mean0 = weights @ p0 / total
    mean1 = weights @ p1 / total
    return (u.reshape(f.shape), np.stack([(p0 - mean0) / t, (p1 - mean1) / t]).reshape(2, *f.shape))


@pytest.mark.parametrize("beta", [0.5, 20.0, 1e4])
def test_separable_2d_matches_dense_oracle_on_random_nonconvex(beta):
    rng = np.random.default_rng(int(beta))
    x0, x1 = np.linspace(-1.0, 1.0, 17), np.linspace(0.0, 3.0, 23)
    f = rng.normal(size=(17, 23)) + np.sin(3 * x0)[:, None]
    u, grad = dense_2d(f, x0, x1, 0.3, beta)
    result = viscous_hj(f, (x0, x1), 0.3, beta)
    np.testing.assert_allclose(result.u, u, rtol=1e-10, atol=1e-10)   # edges included
    np.testing.assert_allclose(result.grad, grad, rtol=1e-8, atol=1e-8)


def test_pde_residual_shrinks_at_second_order():
    # u_t + 1/2 u_x^2 - u_xx/(2 beta) by central differences (dt = h) away from
    # the edges: the Cole-Hopf sum is spectrally accurate, so the residual is
    # the O(h^2) truncation error of the differences.
    t, beta = 0.2, 5.0
    steps, errors = [], []
    for n in (101, 201, 401):
        x = np.linspace(-4.0, 4.0, n)
        h = x[1] - x[0]
        u = {s: viscous_hj(nonconvex(x), x, s, beta).u for s in (t - h, t, t + h)}
        u_t = (u[t + h] - u[t - h])[1:-1] / (2 * h)
        u_x = (u[t][2:] - u[t][:-2]) / (2 * h)
        u_xx = (u[t][2:] - 2 * u[t][1:-1] + u[t][:-2]) / h**2
        residual = np.abs(u_t + 0.5 * u_x**2 - u_xx / (2 * beta))[np.abs(x[1:-1]) < 2.0]
        steps.append(h)
        errors.append(residual.max())
    order = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert errors[-1] < 5e-3
    assert 1.7 < order < 2.3, errors


def test_grad_matches_difference_quotient_of_u():
    x = np.linspace(-4.0, 4.0, 801)
    h = x[1] - x[0]
    result = viscous_hj(nonconvex(x), x, 0.3, 4.0)
    inside = np.abs(x[1:-1]) < 2.0
    difference = (result.u[2:] - result.u[:-2]) / (2 * h)
    np.testing.assert_allclose(difference[inside], result.grad[1:-1][inside], atol=1e-3)


def test_semigroup_away_from_the_edges():
    t, s, beta = 0.3, 0.5, 4.0
    x = np.linspace(-6.0, 6.0, 481)
    direct = viscous_hj(nonconvex(x), x, t + s, beta).u
    composed = viscous_hj(viscous_hj(nonconvex(x), x, t, beta).u, x, s, beta).u
    inside = np.abs(x) < 2.0
    np.testing.assert_allclose(composed[inside], direct[inside], atol=1e-8)


def test_tends_to_f_as_t_goes_to_zero():
    x = np.linspace(-3.0, 3.0, 301)
    f = nonconvex(x)
    errors = [np.abs(viscous_hj(f, x, t, 3.0).u - f)[np.abs(x) < 2].max()
              for t in (1e-1, 1e-2, 1e-3, 1e-6)]
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:]))
    assert errors[-1] < 1e-12   # the kernel fits inside one grid step: u = f


def test_tends_to_hopf_lax_as_beta_goes_to_infinity():
    x = np.linspace(-3.0, 3.0, 601)
    f = nonconvex(x) + 0.2 * np.abs(x)
    hl = hopf_lax(f, x, 0.4).u
    inside = np.abs(x) < 2.0
    errors = [np.abs(viscous_hj(f, x, 0.4, beta).u - hl)[inside].max()
              for beta in (1.0, 10.0, 100.0, 1e4, 1e8)]
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-7


@pytest.mark.parametrize("beta", [1e6, 1e12, 1e300])
def test_stable_for_large_beta(beta):
    x = np.linspace(-3.0, 3.0, 201)
    f = nonconvex(x) * 100.0
    result = viscous_hj(f, x, 0.4, beta)
    assert np.all(np.isfinite(result.u)) and np.all(np.isfinite(result.grad))
    hl = hopf_lax(f, x, 0.4)
    # log(n) / beta bounds the gap between the log-sum-exp and its largest term.
    np.testing.assert_allclose(result.u, hl.u, atol=np.log(201) / beta + 1e-9)


def quadrature_u(f, w, t, beta, lo, hi, n=120001):
    """Independent reference: the continuous Cole-Hopf formula
    `u = -1/beta log( int G_{t/beta}(w - y) exp(-beta f(y)) dy )`, `G_s` the
    Gaussian density of variance s, by brute-force quadrature on a fine grid
    of [lo, hi] (log-sum-exp; the integrand is negligible beyond it)."""
    y = np.linspace(lo, hi, n)
    s = t / beta
    z = -((w[:, None] - y[None, :]) ** 2) / (2 * s) - beta * f(y)[None, :]
    top = z.max(axis=1, keepdims=True)
    integral = np.exp(z - top).sum(axis=1) * (y[1] - y[0]) / np.sqrt(2 * np.pi * s)
    return -(top[:, 0] + np.log(integral)) / beta


@pytest.mark.parametrize("f,curvature", [(lambda y: 1.5 * y**2, 3.0), (nonconvex, 4.6)],
                         ids=["quadratic", "nonconvex"])
@pytest.mark.parametrize("width", [0.6, 0.7, 0.75, 1.0])
def test_kernel_width_near_one_grid_step(f, curvature, width):
    # The kernel width sqrt(t/beta) = width * h puts a = beta h^2/(2t) = 1/(2 width^2)
    # on either side of the switch between the direct sum of Theta (a >= 1:
    # widths 0.6, 0.7) and its Poisson dual (widths 0.75, 1). Against the
    # continuous formula the lattice sum is off by aliasing only, by Poisson
    # summation at most eps(s) = 2.02 exp(-2 pi^2 s/h^2) relatively, for the
    # kernel (s = t/beta, Theta) and for the integrand (a Gaussian of variance
    # s' >= s / (1 + t max f''), the sum): |du| <= (eps(s) + eps(s')) / beta.
    # Dropping one side of Theta's sum (1 + sum instead of 1 + 2 sum) shifts u
    # by log((1 + 2S)/(1 + S))/beta with S ~ exp(-a): about 0.1 here.
    beta = 2.0
    x = np.linspace(-3.0, 3.0, 61)
    h = x[1] - x[0]
    s = (width * h) ** 2
    t = beta * s
    bound = sum(2.02 * np.exp(-2 * np.pi**2 * v / h**2) for v in (s, s / (1 + t * curvature))) / beta
    inside = np.abs(x) < 2.0
    u = viscous_hj(f(x), x, t, beta).u[inside]
    reference = quadrature_u(f, x[inside], t, beta, -6.0, 6.0)
    assert np.abs(u - reference).max() <= bound
    assert bound < 0.01   # ten times below the one-sided mutation's shift
    if curvature == 3.0:   # f = a/2 w^2, a = 3: the closed form agrees with the quadrature
        exact = quadratic_u(3.0, x[inside], t, beta)
        np.testing.assert_allclose(reference, exact, rtol=0, atol=1e-10)
        assert np.abs(u - exact).max() <= bound
