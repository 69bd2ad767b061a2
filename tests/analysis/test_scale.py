"""The analysis at scale (issue 21): block Krylov, the streamed Gram route, route planning, early-stopped Lanczos."""

import numpy as np
import pytest

from control_opt import analysis
from control_opt.analysis import block_krylov, gram, progress
from control_opt.analysis._problem import ModelProblem
from control_opt.analysis.diffusion import plan_route
from tests.analysis.models import dense_covariance as _dense_d
from tests.analysis.models import dense_hessian, loop_gradients, small_classifier

problem = pytest.fixture(scope="module", name="problem")(small_classifier)


@pytest.fixture(scope="module", name="hessian_spectrum")
def _hessian_spectrum(problem):
    """The eigenvalues of the dense Hessian of `problem`, descending (computed once per module)."""
    return np.linalg.eigvalsh(dense_hessian(*problem))[::-1]


def _spectrum_matrix(eigenvalues, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))[0]
    return basis @ np.diag(eigenvalues) @ basis.T, basis


def test_block_krylov_matches_eigh_with_honest_residuals():
    values = np.concatenate([np.linspace(10.0, 5.0, 12), np.linspace(1.0, 0.0, 188)])
    matrix, _ = _spectrum_matrix(values)
    result = block_krylov.block_krylov_eigenvalues(matrix, 8, block_size=6, max_blocks=30, seed=1, tol=1e-8,
                                                   return_eigenvectors=True)
    assert result.converged and result.num_products < 200
    np.testing.assert_allclose(result.eigenvalues, values[:8], rtol=1e-10)
    explicit = np.linalg.norm(matrix @ result.eigenvectors - result.eigenvectors * result.eigenvalues, axis=0)
    np.testing.assert_allclose(result.residuals, explicit, rtol=1e-6, atol=1e-13)
    assert np.all(result.residuals <= 1e-8 * 10.0)
    # The residual is a certificate: each value is within it of an eigenvalue.
    assert np.all(np.min(np.abs(result.eigenvalues[:, None] - values[None]), axis=1) <= result.residuals + 1e-12)


def test_block_krylov_stops_early_only_when_converged_and_reports_it():
    values = np.linspace(1.0, 0.9, 100)  # clustered: one small block cannot converge
    matrix, _ = _spectrum_matrix(values, seed=3)
    result = block_krylov.block_krylov_eigenvalues(matrix, 5, block_size=5, max_blocks=2, seed=0, tol=1e-10)
    assert not result.converged and result.num_blocks == 2 and result.num_products == 10
    assert np.max(result.residuals) > 1e-10  # honest: what it reports is what stopped it


def test_block_krylov_excludes_directions():
    values = np.array([100.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    matrix, basis = _spectrum_matrix(values, seed=2)
    result = block_krylov.block_krylov_eigenvalues(matrix, 3, block_size=2, seed=0, exclude=basis[:, :1])
    np.testing.assert_allclose(result.eigenvalues, [3.0, 2.0, 1.0], rtol=1e-10)


def test_block_krylov_on_the_hessian_of_a_model(problem, hessian_spectrum):
    model, loss, x, y = problem
    exact = hessian_spectrum
    op = analysis.hessian_operator(model, loss, x, y, chunk_size=10)
    result = block_krylov.block_krylov_eigenvalues(op, 3, block_size=4, seed=0, tol=1e-9)
    np.testing.assert_allclose(result.eigenvalues, exact[:3], rtol=1e-7)
    assert op.num_matvecs == result.num_products  # matvec fallback: one product per column


@pytest.mark.parametrize("chunk_size,cache", [(None, 0), (7, 0), (7, 10**9)])
def test_krylov_route_matches_the_dense_covariance(problem, chunk_size, cache, monkeypatch):
    model, loss, x, y = problem
    jac = loop_gradients(model, loss, x, y)
    dense = _dense_d(jac)
    exact = np.linalg.eigvalsh(dense)[::-1]
    real_plan = plan_route

    def plan_with_cache(*args, **kwargs):
        return real_plan(*args, **kwargs)._replace(cache_bytes=cache)

    monkeypatch.setattr(analysis.diffusion, "plan_route", plan_with_cache)
    spec = analysis.diffusion_spectrum(model, loss, x, y, k=6, method="krylov", chunk_size=chunk_size, seed=0,
                                       block_size=4, return_eigenvectors=True)
    assert spec.method == "krylov"
    np.testing.assert_allclose(spec.eigenvalues, exact[:6], rtol=1e-9)
    assert np.all(np.abs(spec.eigenvalues - exact[:6]) <= spec.residuals + 1e-15)
    for value, vector in zip(spec.eigenvalues, spec.eigenvectors.T):
        np.testing.assert_allclose(dense @ vector, value * vector, atol=1e-9 * exact[0])
    assert spec.trace == pytest.approx(np.trace(dense), rel=1e-10)
    np.testing.assert_allclose(spec.gradient, jac.mean(axis=0), rtol=1e-10, atol=1e-14)
    assert spec.num_products <= 24 and spec.num_passes >= 2


def test_krylov_route_counts_at_most_n_minus_one_and_subtracts_a_large_mean():
    """A large common gradient (nearly equal inputs, a target offset of 1e3) must be subtracted: the krylov
    eigenvalues match the dense centered covariance, and the constant direction of G is never counted."""
    import keras

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((3,), dtype="float64"), keras.layers.Dense(5, activation="tanh",
                                                                                     dtype="float64"),
                              keras.layers.Dense(1, dtype="float64")])
    rng = np.random.default_rng(4)
    x, y = 1.0 + 1e-3 * rng.standard_normal((10, 3)), 1e3 + 1e-2 * rng.standard_normal((10, 1))
    loss = keras.losses.MeanSquaredError(dtype="float64")
    jac = loop_gradients(model, loss, x, y)
    assert np.linalg.norm(jac.mean(axis=0)) > 100 * np.sqrt(np.trace(_dense_d(jac)))  # the mean dominates
    exact = np.linalg.eigvalsh(_dense_d(jac))[::-1]
    spec = analysis.diffusion_spectrum(model, loss, x, y, k=12, method="krylov", seed=0, eps=1e-300)
    np.testing.assert_allclose(spec.eigenvalues[:9], exact[:9], rtol=1e-7)
    assert np.all(spec.eigenvalues[9:] == 0) and spec.rank == 9  # rank D <= N - 1 for any tolerance


def test_auto_picks_a_route_that_fits_and_names_the_sizes_when_none_does():
    assert plan_route(24, 67, 6).method == "gram"
    lenet = plan_route(4096, 431_220, 100, max_memory=6e9)
    assert lenet.method == "krylov" and lenet.needs["gram"] > 6e9 >= lenet.needs["krylov"]
    assert lenet.chunk_size < 4096
    # the Gram route is never taken when it does not fit, even for a small N
    assert plan_route(2000, 431_220, 10, max_memory=2e9).method != "gram"
    with pytest.raises(MemoryError, match=r"N = 4096 examples, P = 431220 weights.*gram .*krylov .*operator"):
        plan_route(4096, 431_220, 100, max_memory=1e8)
    with pytest.raises(MemoryError, match="the 'gram' route"):
        plan_route(4096, 431_220, 100, method="gram", max_memory=6e9)
    with pytest.raises(ValueError, match="max_memory"):
        plan_route(10, 10, 1, max_memory=-1)


def test_auto_route_on_a_model_and_the_memory_error(problem):
    model, loss, x, y = problem
    assert analysis.diffusion_spectrum(model, loss, x, y, k=3).method == "gram"
    small = analysis.diffusion_spectrum(model, loss, x, y, k=3, max_memory=60_000, seed=0)
    assert small.method == "krylov"
    np.testing.assert_allclose(small.eigenvalues, analysis.diffusion_spectrum(model, loss, x, y, k=3).eigenvalues,
                               rtol=1e-8)
    with pytest.raises(MemoryError, match="memory budget"):
        analysis.diffusion_spectrum(model, loss, x, y, k=3, max_memory=100)


def test_analyze_takes_the_planned_route_and_refuses_when_none_fits(problem, monkeypatch):
    """experiments.analyze's diffusion step: the whole spectrum on the Gram route when it fits, the top few on
    the route "auto" plans when it does not, and a MemoryError naming the flags when nothing fits."""
    from control_opt.analysis import memory
    from experiments import analysis_run

    model, _, x, y = problem
    config = analysis_run.AnalysisConfig(chunk_size=8, seed=0)
    full = analysis_run.diffusion_analysis(model, x, y, config)
    assert full["method"] == "gram" and len(full["eigenvalues"]) == len(x) - 1
    monkeypatch.setattr(analysis_run, "_PARTIAL_K", 4)
    monkeypatch.setattr(memory, "available_memory", lambda: 400_000)  # budget: half of it
    part = analysis_run.diffusion_analysis(model, x, y, config)
    assert part["method"] == "krylov" and len(part["eigenvalues"]) == 4
    np.testing.assert_allclose(part["eigenvalues"], full["eigenvalues"][:4], rtol=1e-8)
    assert np.all(np.asarray(part["residuals"]) <= 1e-4 * full["eigenvalues"][0])
    monkeypatch.setattr(memory, "available_memory", lambda: 400)
    with pytest.raises(MemoryError, match=r"--diffusion_examples.*--chunk_size.*no route fits"):
        analysis_run.diffusion_analysis(model, x, y, config)


def test_gram_operator_cache_gives_the_same_products_with_fewer_evaluations(problem):
    model, loss, x, y = problem
    prob = ModelProblem(model, loss, x, y, chunk_size=5)
    shift = prob.gradient()[1]
    u = np.random.default_rng(0).standard_normal((24, 3))
    u -= u.mean(axis=0)
    plain, cached = gram.GramOperator(prob, shift), gram.GramOperator(prob, shift, cache_bytes=10**9)
    np.testing.assert_allclose(cached.matmat(u), plain.matmat(u), rtol=1e-12, atol=1e-16)
    cached.matmat(u)
    plain.matmat(u)
    assert plain.num_chunk_evaluations == 4 * 5 and cached.num_chunk_evaluations == 5


def test_lanczos_default_run_stops_when_converged(problem, hessian_spectrum):
    model, loss, x, y = problem
    exact = hessian_spectrum
    eig = analysis.hessian_eigenvalues(model, loss, x, y, k=2, seed=0, return_eigenvectors=True)
    assert 12 <= eig.num_steps < 32  # the cap is max(4k, k + 30) = 32
    np.testing.assert_allclose(eig.top, exact[:2], rtol=1e-8)
    assert np.all(eig.top_residuals <= 1e-4 * exact[0])
    fixed = analysis.hessian_eigenvalues(model, loss, x, y, k=2, seed=0, num_steps=30)
    assert fixed.num_steps == 30  # an explicit step count is honoured
    ten = analysis.hessian_eigenvalues(model, loss, x, y, k=10, seed=0)  # the bench's top 10, default stopping
    # it stopped because the top 10 converged to the default 1e-5 relative residual, or at the cap
    assert ten.num_steps == 40 or np.all(ten.top_residuals <= 1e-5 * ten.top[0])
    np.testing.assert_allclose(ten.top, exact[:10], rtol=1e-6)
    # the stated residuals are certificates: each value is within its residual of an eigenvalue of H
    assert np.all(np.min(np.abs(ten.top[:, None] - exact[None]), axis=1) <= ten.top_residuals + 1e-12 * exact[0])
    bottom = analysis.lanczos_eigenvalues(np.diag(np.arange(1.0, 201.0)), 3, which="bottom", seed=0)
    assert bottom.num_steps <= 43
    assert np.all(np.abs(bottom.eigenvalues - [1.0, 2.0, 3.0]) <= bottom.residuals + 1e-9)


def test_default_stop_is_set_by_the_tolerance_on_a_model_that_needs_it():
    """A 103-weight model whose top 4 need 28 of the 34 allowed Lanczos steps to reach the default tolerance:
    stopping earlier (a loosened `DEFAULT_TOL`, or a smaller minimum) leaves values off by far more than 1e-8.
    The control (an explicit `tol=3e-2`) shows that this model tells the two apart."""
    from control_opt.analysis.lanczos import DEFAULT_TOL, default_space

    model, loss, x, y = small_classifier(num_inputs=6, hidden=10, num_classes=3, num_examples=40)
    op = analysis.hessian_operator(model, loss, x, y)
    exact = np.linalg.eigvalsh(op.to_dense())[::-1]  # the operator's dense matrix (checked against
    # dense_hessian in test_hessian.py)
    k = 4
    eig = analysis.hessian_eigenvalues(model, loss, x, y, k=k, seed=0)
    assert max(2 * k, k + 10) < eig.num_steps < default_space(k) == 34  # stopped by the tolerance, neither
    # at the minimum nor at the cap
    np.testing.assert_allclose(eig.top, exact[:k], rtol=0, atol=1e-8 * exact[0])
    assert np.all(eig.top_residuals <= DEFAULT_TOL * eig.top[0])
    assert np.all(np.min(np.abs(eig.top[:, None] - exact[None]), axis=1) <= eig.top_residuals + 1e-12 * exact[0])
    loose = analysis.hessian_eigenvalues(model, loss, x, y, k=k, seed=0, tol=3e-2)
    assert loose.num_steps < eig.num_steps
    assert np.max(np.abs(loose.top - exact[:k])) > 1e-4 * exact[0]  # what a loosened tolerance gives here
    # a loose run's stated residuals still hold
    assert np.all(np.min(np.abs(loose.top[:, None] - exact[None]), axis=1) <= loose.top_residuals + 1e-12 * exact[0])


def test_progress_is_quiet_by_default_and_logs_the_time_left(monkeypatch):
    lines = []
    monkeypatch.setattr(progress.logging, "info", lambda fmt, *args: lines.append(fmt % args))
    quiet = progress.Progress(3, "steps")
    for _ in range(3):
        quiet.step()
    assert not lines
    loud = progress.Progress(4, "products", verbose=True, interval=0.0)
    for _ in range(4):
        loud.step("detail")
    assert len(lines) == 4 and "products: 4 / 4" in lines[-1] and "left" in lines[0] and "detail" in lines[0]
