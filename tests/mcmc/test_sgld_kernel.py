"""StochasticGradientLangevin: a tfp TransitionKernel whose step is local_entropy.langevin_step."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt.formulas import local_entropy
from control_opt._internal.keras_adaptor import keras_loss_fn, minibatch_fn, model_weights
from control_opt.mcmc.sgld_kernel import StochasticGradientLangevin, StochasticGradientLangevinResults
from tests.mcmc.conftest import Quadratic, gaussian_local_gibbs, mean_and_variance_errors


def kernel_for(q, **kwargs):
    args = dict(step_size=0.01, beta=10.0, gamma=1.0)
    args.update(kwargs)
    return StochasticGradientLangevin(q.loss, tf.ones(q.dim), **args)


def test_is_an_uncalibrated_transition_kernel(quadratic):
    kernel = kernel_for(quadratic)
    assert isinstance(kernel, tfp.mcmc.TransitionKernel)
    assert kernel.is_calibrated is False
    results = kernel.bootstrap_results(tf.zeros([3, quadratic.dim]))
    assert isinstance(results, StochasticGradientLangevinResults)
    with pytest.raises(AttributeError):
        results.step = 5  # immutable: update with _replace
    copy = kernel.copy(gamma=2.0)
    assert copy.gamma == 2.0 and copy.beta == kernel.beta
    # The copy's target uses the new gamma: log p(0) = -beta gamma/2 |0 - 1|^2 = -10 * 2/2 * 4.
    np.testing.assert_allclose(copy.target_log_prob_fn(tf.zeros([1, quadratic.dim])).numpy(), [-40.0], rtol=1e-6)
    np.testing.assert_allclose(kernel.target_log_prob_fn(tf.zeros([1, quadratic.dim])).numpy(), [-20.0], rtol=1e-6)


def test_parameters_map_to_entropy_sgd():
    # beta = 1/eps^2, h = 2 eps^2 eta' (docs/math.md section 3).
    f = lambda w: tf.reduce_sum(w**2)
    kernel = StochasticGradientLangevin.from_entropy_sgd(f, tf.ones(2), langevin_learning_rate=0.1, noise=0.01, gamma=0.03)
    np.testing.assert_allclose(kernel.beta, 1e4)
    np.testing.assert_allclose(kernel.step_size, 2 * 0.01**2 * 0.1)
    np.testing.assert_allclose(kernel.langevin_learning_rate, 0.1)
    np.testing.assert_allclose(kernel.noise, 0.01)


def test_step_is_the_langevin_step_in_law(quadratic, monkeypatch):
    """Many chains from one state: displacement mean -eta'(g + gamma (w' - w)), variance h per coordinate."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return local_entropy.langevin_step(*args, **kwargs)

    monkeypatch.setattr("control_opt.mcmc.sgld_kernel.langevin_step", spy)
    h, beta, gamma = 0.02, 5.0, 0.7
    kernel = kernel_for(quadratic, step_size=h, beta=beta, gamma=gamma)
    probe = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    state = tf.constant(np.tile(probe, (20000, 1)))
    new_state, results = kernel.one_step(state, kernel.bootstrap_results(state), seed=[4, 2])
    assert calls and np.isclose(calls[0]["learning_rate"], h * beta / 2)
    eta = h * beta / 2
    drift = -eta * (quadratic.a @ probe + gamma * (probe - 1.0))
    step = new_state.numpy() - probe
    np.testing.assert_allclose(step.mean(0), drift, atol=5 * np.sqrt(h / 20000))
    np.testing.assert_allclose(step.var(0), h, rtol=5 * np.sqrt(2 / 20000))
    np.testing.assert_allclose(results.gradient.numpy()[0], quadratic.a @ probe, rtol=1e-5)
    np.testing.assert_allclose(results.loss.numpy()[0], 0.5 * probe @ quadratic.a @ probe, rtol=1e-5)


def test_replaying_a_step_with_the_stored_seed_is_exact(quadratic):
    kernel = kernel_for(quadratic)
    state = tf.zeros([2, quadratic.dim])
    results = kernel.bootstrap_results(state)
    state, results = kernel.one_step(state, results, seed=[7, 8])
    before, previous = state, results
    after, results = kernel.one_step(before, previous, seed=[9, 10])
    replayed, replayed_results = kernel.one_step(before, previous, seed=results.seed)
    np.testing.assert_array_equal(after.numpy(), replayed.numpy())
    np.testing.assert_array_equal(results.step.numpy(), [2, 2])  # one count per chain
    # ... also under tf.function / XLA.
    step = tf.function(lambda s, r, seed: kernel.one_step(s, r, seed=seed), jit_compile=True)
    compiled, _ = step(before, previous, results.seed)
    np.testing.assert_allclose(compiled.numpy(), after.numpy(), rtol=1e-5, atol=1e-6)


def small_model_problem(batch_size=16):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.integers(0, 3, 64)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, keras_loss_fn(model, loss, x, y), minibatch_fn(x, y, batch_size), (x, y, loss)


def test_minibatch_chains_on_keras_weights_replay_and_run_in_sample_chain():
    model, loss_fn, batch_fn, _ = small_model_problem()
    anchor = model_weights(model)
    kernel = StochasticGradientLangevin(loss_fn, anchor, step_size=1e-4, beta=100.0, gamma=1.0, batch_fn=batch_fn)
    chains = [tf.stack([w, w]) for w in anchor]  # two chains, tfp's list-of-parts state
    results = kernel.bootstrap_results(chains)
    after, results = kernel.one_step(chains, results, seed=[1, 1])
    replayed, _ = kernel.one_step(chains, kernel.bootstrap_results(chains), seed=results.seed)
    for a, b in zip(after, replayed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert results.loss.shape == (2,)
    samples = tf.function(
        lambda: tfp.mcmc.sample_chain(5, chains, kernel=kernel, trace_fn=None, seed=[2, 3]), autograph=False
    )()
    assert [s.shape for s in samples] == [(5, 2) + tuple(w.shape) for w in anchor]


def test_momentum_keeps_a_velocity(quadratic):
    kernel = kernel_for(quadratic, momentum=0.9, nesterov=True)
    state = tf.zeros([2, quadratic.dim])
    results = kernel.bootstrap_results(state)
    state, results = kernel.one_step(state, results, seed=0)
    np.testing.assert_allclose(results.velocity.numpy(), results.gradient.numpy())  # v_1 = 0.9 * 0 + g_1
    first = results.velocity.numpy()
    _, results = kernel.one_step(state, results, seed=1)  # from a non-zero velocity, where the weights show
    np.testing.assert_allclose(results.velocity.numpy(), 0.9 * first + results.gradient.numpy(), rtol=1e-5, atol=1e-6)
    assert kernel_for(quadratic).bootstrap_results(state).velocity == ()


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(step_size=0.0), "`step_size`"),
        (dict(beta=-1.0), "`beta`"),
        (dict(gamma=0.0), "`gamma`"),
        (dict(momentum=1.0), "`momentum`"),
        (dict(batch_fn="batches"), "`batch_fn`"),
    ],
)
def test_bad_arguments_name_the_argument(quadratic, override, match):
    with pytest.raises(ValueError, match=match):
        kernel_for(quadratic, **override)


def test_bad_states_and_losses_name_the_argument(quadratic):
    kernel = kernel_for(quadratic)
    with pytest.raises(ValueError, match="`init_state` contains NaN"):
        kernel.bootstrap_results(tf.constant([[np.nan, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="`current_state`.*`anchor`"):
        kernel.bootstrap_results([tf.zeros(quadratic.dim), tf.zeros(quadratic.dim)])
    with pytest.raises(ValueError, match="`current_state`"):
        kernel.bootstrap_results(tf.zeros([3, 2]))
    with pytest.raises(ValueError, match="`loss_fn`.*`anchor`"):
        StochasticGradientLangevin(lambda w: tf.reduce_sum(w["a"] ** 2), tf.ones(2), step_size=0.1, beta=1.0, gamma=1.0)
    with pytest.raises(ValueError, match="`anchor` contains NaN"):
        StochasticGradientLangevin(quadratic.loss, tf.constant([np.nan] * 4), step_size=0.1, beta=1.0, gamma=1.0)


def test_keras_loss_helpers_validate_weights_and_draw_seeded_batches():
    model, loss_fn, batch_fn, (x, y, loss) = small_model_problem(batch_size=8)
    np.testing.assert_allclose(float(loss_fn(model_weights(model))), float(loss(y, model(x))), rtol=1e-5)
    with pytest.raises(ValueError, match="`weights`"):
        loss_fn(model_weights(model)[:-1])
    with pytest.raises(ValueError, match=r"`weights\[0\]`"):
        loss_fn([tf.zeros([2, 2])] + model_weights(model)[1:])
    first, again = batch_fn(tf.constant([1, 2])), batch_fn(tf.constant([1, 2]))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    assert first[0].shape == (8, 5)
    with pytest.raises(ValueError, match="`batch_size`"):
        minibatch_fn(x, y, 0)


# --- Composition with tfp's kernels (TFP's conventions for uncalibrated kernels) ---------------------------------
# Target: f = a/2 |w|^2, whose local Gibbs measure is N(gamma w / (a + gamma), 1 / (beta (a + gamma))).
A, GAMMA_C, BETA_C = 3.0, 0.5, 2.0
ANCHOR_C = np.array([1.5, -0.8])
K = BETA_C * (A + GAMMA_C)  # curvature of -log p
TRUE_MEAN, TRUE_VAR = gaussian_local_gibbs(A, GAMMA_C, BETA_C, ANCHOR_C)


def gaussian_kernel(step_size, **kwargs):
    f = lambda w: 0.5 * A * tf.reduce_sum(w**2)
    return StochasticGradientLangevin(f, tf.constant(ANCHOR_C, tf.float32), step_size=step_size, beta=BETA_C,
                                      gamma=GAMMA_C, **kwargs)


def run_chains(kernel, num_results=1000, num_burnin_steps=300, seed=(1, 2)):
    run = tf.function(lambda: tfp.mcmc.sample_chain(num_results, tf.zeros([8, 2]), kernel=kernel,
                                                    num_burnin_steps=num_burnin_steps, trace_fn=lambda _, r: r,
                                                    seed=list(seed)), autograph=False)
    samples, results = run()
    return samples.numpy(), results


def unadjusted_variance(h, k):
    """Stationary variance of x <- x - h/2 k x + sqrt(h) xi: 1 / (k (1 - h k / 4))."""
    return 1.0 / (k * (1.0 - h * k / 4.0))


def test_metropolis_hastings_around_sgld_is_mala_with_the_exact_law():
    h = 0.3  # large: the unadjusted chain's variance is 2.1x the target's (1 / (1 - hK/4) with hK = 2.1)
    samples, results = run_chains(tfp.mcmc.MetropolisHastings(gaussian_kernel(h)))
    mean_z, var_z = mean_and_variance_errors(samples, TRUE_MEAN, TRUE_VAR)
    assert np.all(mean_z < 4) and np.all(var_z < 4), (mean_z, var_z)
    assert 0.3 < results.is_accepted.numpy().mean() < 0.95
    # Controls: a wrong mean (gamma ignored: the anchor itself) and the unadjusted chain's variance are rejected.
    assert np.all(mean_and_variance_errors(samples, ANCHOR_C, TRUE_VAR)[0] > 4)
    assert np.all(mean_and_variance_errors(samples, TRUE_MEAN, unadjusted_variance(h, K))[1] > 4)
    # ... and without the correction the same step does sample the unadjusted law (so MH did the correcting).
    raw, _ = run_chains(gaussian_kernel(h))
    assert np.all(mean_and_variance_errors(raw, TRUE_MEAN, unadjusted_variance(h, K))[1] < 4)
    assert np.all(mean_and_variance_errors(raw, TRUE_MEAN, TRUE_VAR)[1] > 4)


def test_log_acceptance_correction_is_the_langevin_proposal_ratio():
    h, x = 0.2, np.array([[0.3, -1.0]])
    kernel = gaussian_kernel(h)
    state = tf.constant(x, tf.float32)
    new, results = kernel.one_step(state, kernel.bootstrap_results(state), seed=[3, 4])
    y = new.numpy()
    grad = lambda z: -K * (z - TRUE_MEAN)  # grad log p, independently of the kernel
    log_q = lambda to, frm: -np.sum((to - frm - h / 2 * grad(frm)) ** 2) / (2 * h)
    np.testing.assert_allclose(results.log_acceptance_correction.numpy()[0], log_q(x, y) - log_q(y, x), rtol=1e-4, atol=1e-4)
    log_p = lambda z: -BETA_C * (0.5 * A * np.sum(z**2) + GAMMA_C / 2 * np.sum((z - ANCHOR_C) ** 2))
    np.testing.assert_allclose(results.target_log_prob.numpy()[0], log_p(y[0]), rtol=1e-5)
    np.testing.assert_allclose(results.grads_target_log_prob.numpy(), grad(y), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("adaptation", ["simple", "dual_averaging"])
def test_step_size_adaptation_tunes_mala_on_sgld(adaptation):
    inner = tfp.mcmc.MetropolisHastings(gaussian_kernel(0.01))  # a far too small initial step
    if adaptation == "simple":
        kernel = tfp.mcmc.SimpleStepSizeAdaptation(inner, num_adaptation_steps=250, target_accept_prob=0.6,
                                                  adaptation_rate=0.05)
    else:
        kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(inner, num_adaptation_steps=250, target_accept_prob=0.6)
    samples, results = run_chains(kernel)
    final_step = float(results.inner_results.accepted_results.step_size[-1])
    assert final_step > 0.1  # adapted (10x the initial step) ...
    assert 0.45 < results.inner_results.is_accepted.numpy().mean() < 0.75  # ... to about the target acceptance
    mean_z, var_z = mean_and_variance_errors(samples, TRUE_MEAN, TRUE_VAR)
    assert np.all(mean_z < 4) and np.all(var_z < 4), (mean_z, var_z)
    assert np.all(mean_and_variance_errors(samples, ANCHOR_C, TRUE_VAR)[0] > 4)  # control: wrong mean rejected
    assert np.all(mean_and_variance_errors(samples, TRUE_MEAN, 2 * TRUE_VAR)[1] > 4)  # control: 2x variance rejected


def test_transformed_transition_kernel_steps_in_the_unconstrained_coordinates():
    # x = 3 y: in y the target has curvature 9 K, and the unadjusted step's variance is that of y, times 9.
    h, scale = 0.02, 3.0
    samples, _ = run_chains(tfp.mcmc.TransformedTransitionKernel(gaussian_kernel(h), tfp.bijectors.Scale(scale)))
    expected_var = scale**2 * unadjusted_variance(h, scale**2 * K)
    mean_z, var_z = mean_and_variance_errors(samples, TRUE_MEAN, expected_var)
    assert np.all(mean_z < 4) and np.all(var_z < 4), (mean_z, var_z)
    # Control: the law of the untransformed chain at the same step is rejected.
    assert np.all(mean_and_variance_errors(samples, TRUE_MEAN, unadjusted_variance(h, K))[1] > 4)
    # With the Metropolis correction inside, the transformed chain has the exact law.
    exact, _ = run_chains(tfp.mcmc.TransformedTransitionKernel(tfp.mcmc.MetropolisHastings(gaussian_kernel(0.05)),
                                                               tfp.bijectors.Scale(scale)))
    mean_z, var_z = mean_and_variance_errors(exact, TRUE_MEAN, TRUE_VAR)
    assert np.all(mean_z < 4) and np.all(var_z < 4), (mean_z, var_z)


def test_minibatch_and_momentum_chains_refuse_a_metropolis_correction():
    batches = lambda seed: tf.random.stateless_uniform([], seed=seed, minval=0.5, maxval=1.5)
    f = lambda w, c: 0.5 * A * c * tf.reduce_sum(w**2)
    minibatch = StochasticGradientLangevin(f, tf.constant(ANCHOR_C, tf.float32), step_size=0.1, beta=BETA_C,
                                           gamma=GAMMA_C, batch_fn=batches)
    for kernel in (minibatch, gaussian_kernel(0.1, momentum=0.5)):
        _, results = run_chains(tfp.mcmc.MetropolisHastings(kernel), num_results=20, num_burnin_steps=0)
        assert np.all(np.isnan(results.proposed_results.log_acceptance_correction.numpy()))
        assert not results.is_accepted.numpy().any()  # every proposal rejected: no silently wrong law
    assert minibatch.target_log_prob_fn is None
    with pytest.raises(ValueError, match="`batch_fn`"):
        tfp.mcmc.TransformedTransitionKernel(minibatch, tfp.bijectors.Scale(2.0)).bootstrap_results(tf.zeros([2, 2]))


def test_a_nan_or_integer_loss_is_named_before_any_step():
    with pytest.raises(ValueError, match="`loss_fn` is nan at `anchor`.*not finite at the starting point"):
        StochasticGradientLangevin(lambda w: tf.reduce_sum(tf.math.log(w)), tf.constant([-1.0, 1.0]),
                                   step_size=0.1, beta=1.0, gamma=1.0)
    with pytest.raises(ValueError, match="gradient of `loss_fn`.*`anchor`"):
        StochasticGradientLangevin(lambda w: tf.reduce_sum(tf.sqrt(w)), tf.constant([0.0, 1.0]),
                                   step_size=0.1, beta=1.0, gamma=1.0)
    with pytest.raises(ValueError, match="`loss_fn` must return a floating-point value.*int32"):
        StochasticGradientLangevin(lambda w: tf.reduce_sum(tf.cast(w > 0, tf.int32)), tf.ones(2),
                                   step_size=0.1, beta=1.0, gamma=1.0)
