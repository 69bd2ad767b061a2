"""StochasticGradientLangevin: a tfp TransitionKernel whose step is local_entropy.langevin_step."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt.formulas import local_entropy
from control_opt._internal.keras_adaptor import keras_loss_fn, minibatch_fn, model_weights
from control_opt.mcmc.sgld_kernel import StochasticGradientLangevin, StochasticGradientLangevinResults
from tests.sde.conftest import Quadratic


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


def test_parameters_map_to_entropy_sgd():
    # beta = 1/eps^2, h = 2 eps^2 eta' (DESIGN.md section 3).
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
    assert int(results.step) == 2
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
    _, results = kernel.one_step(state, results, seed=0)
    np.testing.assert_allclose(results.velocity.numpy(), results.gradient.numpy())
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
