"""EntropySGD / EntropyAdam: hand numbers, golden trajectory, reductions, closed form, config."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import control_opt
from tests.optimizers.reference import entropy_sgd_reference

NOISELESS = dict(noise=0.0, seed=0)


def quartic_grad(w):
    """Gradient of f(w) = sum(c_i w_i^2 / 2 + w_i^4 / 4): non-linear, separable."""
    c = np.array([1.0, 3.0, 0.5])[: w.shape[-1]]
    return c * w + w**3


def run(optimizer, w0, num_steps, grad_fn=quartic_grad, dtype="float32"):
    var = keras.Variable(np.array(w0, dtype=dtype))
    history = []
    for _ in range(num_steps):
        grad = tf.constant(grad_fn(var.numpy().astype(np.float64)), dtype=dtype)
        optimizer.apply_gradients([(grad, var)])
        history.append((var.numpy().copy(), optimizer.anchors[0].numpy().copy()))
    return history


def test_one_inner_step_and_one_outer_step_by_hand():
    # f = w^2 (g = 2w), w0 = 1, L = 2, eta' = 0.1, m' = 0.5 Nesterov, gamma = 0.2,
    # beta1 = 0.5, eta = 0.5, no outer momentum, no scoping.
    opt = control_opt.EntropySGD(learning_rate=0.5, langevin_steps=2, langevin_learning_rate=0.1,
                                 langevin_momentum=0.5, langevin_nesterov=True, gamma=0.2,
                                 scoping=0.0, mean_decay=0.5, **NOISELESS)
    var = keras.Variable(np.array([1.0], np.float32))
    opt.apply_gradients([(2 * var.value, var)])
    # Inner step 1: g = 2, v' = 2, d = 2 + 0.5*2 = 3, pull 0 -> w' = 1 - 0.3 = 0.7,
    # mu = 0.5*1 + 0.5*0.7 = 0.85.
    np.testing.assert_allclose(var.numpy(), [0.7], rtol=1e-6)
    np.testing.assert_allclose(opt.anchors[0].numpy(), [1.0])
    np.testing.assert_allclose(opt._means[0].numpy(), [0.85], rtol=1e-6)
    opt.apply_gradients([(2 * var.value, var)])
    hist = [None, (var.numpy(), opt.anchors[0].numpy())]
    # Inner step 2: g = 1.4, v' = 0.5*2 + 1.4 = 2.4, d = 1.4 + 0.5*2.4 = 2.6,
    # d -= 0.2*(1 - 0.7) -> 2.54, w' = 0.7 - 0.254 = 0.446, mu = 0.5*0.85 + 0.5*0.446 = 0.648.
    # Outer: a = 1 - 0.648 = 0.352, w = 1 - 0.5*0.352 = 0.824; probe, mean reset to w.
    np.testing.assert_allclose(hist[1][1], [0.824], rtol=1e-6)
    np.testing.assert_allclose(hist[1][0], [0.824], rtol=1e-6)
    np.testing.assert_allclose(opt._means[0].numpy(), [0.824], rtol=1e-6)
    np.testing.assert_allclose(opt._langevin_velocities[0].numpy(), [0.0])
    assert int(opt.outer_step) == 1 and int(opt.inner_step) == 0


GOLDEN_CASES = {
    "entropy_sgd_outer_nesterov": dict(
        cls=control_opt.EntropySGD,
        kwargs=dict(learning_rate=0.7, momentum=0.6, nesterov=True, langevin_steps=4,
                    langevin_learning_rate=0.05, langevin_momentum=0.9, langevin_nesterov=True,
                    gamma=0.3, scoping=0.1, mean_decay=0.75, l2=0.01),
        ref=dict(adam=None)),
    "entropy_sgd_heavy_ball_inside": dict(
        cls=control_opt.EntropySGD,
        kwargs=dict(learning_rate=0.5, momentum=0.4, nesterov=False, langevin_steps=3,
                    langevin_learning_rate=0.08, langevin_momentum=0.6, langevin_nesterov=False,
                    gamma=0.1, scoping=0.0, mean_decay=0.0),
        ref=dict(adam=None)),
    "entropy_adam": dict(
        cls=control_opt.EntropyAdam,
        kwargs=dict(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-7, langevin_steps=5,
                    langevin_learning_rate=0.05, langevin_momentum=0.9, langevin_nesterov=True,
                    gamma=0.03, scoping=1e-3, mean_decay=0.75, l2=0.001),
        ref=dict(adam=(0.8, 0.9, 1e-7))),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_golden_trajectory_matches_numpy_transcription(case, dtype):
    spec = GOLDEN_CASES[case]
    kwargs = spec["kwargs"]
    w0 = [0.8, -0.6, 1.2]
    opt = spec["cls"](**kwargs, **NOISELESS)
    got = run(opt, w0, 23, dtype=dtype)
    ref_kwargs = {k: v for k, v in kwargs.items() if k not in ("beta_1", "beta_2", "epsilon")}
    if spec["ref"]["adam"] is not None:
        ref_kwargs.update(momentum=0.0, nesterov=False)
    want = entropy_sgd_reference(quartic_grad, w0, 23, **ref_kwargs, adam=spec["ref"]["adam"])
    # Keras keeps the outer learning rate in a float32 variable, even for float64 weights.
    tol = 1e-5 if dtype == "float32" else 1e-7
    for step, ((probe, anchor), (ref_probe, ref_anchor)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(probe, ref_probe, rtol=tol, atol=tol, err_msg=f"probe, step {step}")
        np.testing.assert_allclose(anchor, ref_anchor, rtol=tol, atol=tol, err_msg=f"anchor, step {step}")
        assert probe.dtype == np.dtype(dtype)


def test_reduces_to_sgd_with_step_eta_times_eta_prime():
    eta, eta_in = 0.5, 0.2
    opt = control_opt.EntropySGD(learning_rate=eta, momentum=0.0, langevin_steps=1,
                                 langevin_learning_rate=eta_in, langevin_momentum=0.0,
                                 langevin_nesterov=False, gamma=0.0, scoping=0.0, mean_decay=0.0,
                                 **NOISELESS)
    got = run(opt, [0.8, -0.6, 1.2], 10)
    sgd = keras.optimizers.SGD(learning_rate=eta * eta_in)
    want = run_plain(sgd, [0.8, -0.6, 1.2], 10)
    for (probe, anchor), ref in zip(got, want):
        np.testing.assert_allclose(anchor, ref, rtol=1e-6)
        np.testing.assert_allclose(probe, ref, rtol=1e-6)


def run_plain(optimizer, w0, num_steps):
    var = keras.Variable(np.array(w0, dtype="float32"))
    out = []
    for _ in range(num_steps):
        optimizer.apply_gradients([(tf.constant(quartic_grad(var.numpy().astype(np.float64)), tf.float32), var)])
        out.append(var.numpy().copy())
    return out


@pytest.mark.parametrize("a,gamma", [(2.0, 1.0), (0.5, 4.0)])
def test_quadratic_control_approaches_gibbs_mean(a, gamma):
    # f = a/2 w^2, noise off: the chain settles at argmin f(w') + gamma/2 (w - w')^2
    # = gamma w / (a + gamma), so after L steps with eta = 1 the new anchor is the mean.
    w0 = np.array([1.5, -0.7])
    opt = control_opt.EntropySGD(learning_rate=1.0, langevin_steps=300, langevin_learning_rate=0.05,
                                 langevin_momentum=0.0, langevin_nesterov=False, gamma=gamma,
                                 scoping=0.0, mean_decay=0.75, **NOISELESS)
    hist = run(opt, w0, 300, grad_fn=lambda w: a * w)
    control = w0 - hist[-1][1]
    np.testing.assert_allclose(control, w0 - gamma * w0 / (a + gamma), rtol=1e-5)


def test_scope_grows_with_outer_steps_and_accepts_schedules():
    opt = control_opt.EntropySGD(gamma=0.03, scoping=0.5)
    np.testing.assert_allclose(float(opt.scope(3)), 0.03 * 1.5**3, rtol=1e-6)
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=2.0)
    opt = control_opt.EntropySGD(gamma=sched)
    np.testing.assert_allclose(float(opt.scope(2)), 0.4, rtol=1e-6)
    restored = control_opt.EntropySGD.from_config(opt.get_config())
    np.testing.assert_allclose(float(restored.scope(2)), 0.4, rtol=1e-6)


def test_noise_is_seeded_and_has_the_langevin_scale():
    def draws(seed):
        opt = control_opt.EntropySGD(langevin_steps=50, langevin_momentum=0.0, langevin_nesterov=False,
                                     gamma=0.0, noise=0.5, langevin_learning_rate=0.02, seed=seed)
        var = keras.Variable(np.zeros(20000, np.float32))
        opt.apply_gradients([(tf.zeros(20000), var)])
        return var.numpy()

    a, b, c = draws(7), draws(7), draws(8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # w' = 0 - 0 + eps sqrt(2 eta') xi: standard deviation 0.5 * sqrt(0.04) = 0.1.
    assert abs(a.std() - 0.1) < 0.003 and abs(a.mean()) < 0.003


def test_set_random_seed_makes_default_seed_reproducible():
    keras.utils.set_random_seed(3)
    s1 = control_opt.EntropySGD().seed
    keras.utils.set_random_seed(3)
    assert control_opt.EntropySGD().seed == s1


@pytest.mark.parametrize("cls", [control_opt.EntropySGD, control_opt.EntropyAdam])
def test_config_round_trip(cls):
    opt = cls(learning_rate=0.3, langevin_steps=7, gamma=0.05, noise=1e-3, l2=1e-4, seed=11)
    config = opt.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(opt)
    assert serialized["registered_name"] == f"control_opt>{cls.__name__}"
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is cls and again.get_config() == config
    assert keras.optimizers.deserialize(keras.optimizers.serialize(opt)).get_config() == config


BAD_ARGS = [
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(langevin_learning_rate=0.0), "langevin_learning_rate"),
    (dict(langevin_steps=0), "langevin_steps"),
    (dict(langevin_steps=2.5), "langevin_steps"),
    (dict(mean_decay=1.0), "mean_decay"),
    (dict(mean_decay=-0.1), "mean_decay"),
    (dict(langevin_momentum=1.0), "langevin_momentum"),
    (dict(langevin_momentum=0.0, langevin_nesterov=True), "langevin_nesterov"),
    (dict(gamma=-1e-3), "gamma"),
    (dict(scoping=-1.0), "scoping"),
    (dict(noise=-1.0), "noise"),
    (dict(l2=-1.0), "l2"),
    (dict(seed="abc"), "seed"),
]


@pytest.mark.parametrize("kwargs,name", BAD_ARGS + [
    (dict(momentum=1.0), "momentum"), (dict(momentum=0.0, nesterov=True), "nesterov")])
def test_entropy_sgd_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}[`=]"):
        control_opt.EntropySGD(**kwargs)


@pytest.mark.parametrize("kwargs,name", BAD_ARGS + [
    (dict(beta_1=1.0), "beta_1"), (dict(beta_2=-0.5), "beta_2"), (dict(epsilon=0.0), "epsilon")])
def test_entropy_adam_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}[`=]"):
        control_opt.EntropyAdam(**kwargs)


def test_state_is_anchor_mean_and_momentum_buffers_only():
    var = keras.Variable(np.zeros((3, 4), np.float32))
    opt = control_opt.EntropySGD(momentum=0.9, nesterov=True)
    opt.build([var])
    per_param = [v for v in opt.variables if tuple(v.shape) == (3, 4)]
    names = sorted(v.name.split("_")[-1] if False else v.name for v in per_param)
    assert len(per_param) == 4, names  # anchor, mean, Langevin and outer velocity
    opt = control_opt.EntropySGD()  # the authors' defaults: no outer momentum
    opt.build([var])
    assert len([v for v in opt.variables if tuple(v.shape) == (3, 4)]) == 3


@pytest.mark.parametrize("langevin_nesterov", [True, False])
def test_inner_nesterov_and_heavy_ball_over_several_inner_steps(langevin_nesterov):
    # Several inner steps (the velocity is non-zero from the second on, where the
    # two forms differ), outer step off the first 5 steps: L = 6.
    kwargs = dict(learning_rate=0.5, langevin_steps=6, langevin_learning_rate=0.05, langevin_momentum=0.8,
                  langevin_nesterov=langevin_nesterov, gamma=0.4, scoping=0.0, mean_decay=0.75)
    w0 = [0.8, -0.6, 1.2]
    got = run(control_opt.EntropySGD(**kwargs, **NOISELESS), w0, 8, dtype="float64")
    want = entropy_sgd_reference(quartic_grad, w0, 8, **kwargs)
    other = entropy_sgd_reference(quartic_grad, w0, 8, **{**kwargs, "langevin_nesterov": not langevin_nesterov})
    for step in range(8):
        np.testing.assert_allclose(got[step][0], want[step][0], rtol=1e-12, atol=1e-12, err_msg=f"step {step}")
        np.testing.assert_allclose(got[step][1], want[step][1], rtol=1e-12, atol=1e-12, err_msg=f"step {step}")
    # The two forms give different numbers, on every inner step.
    for step in range(5):
        assert np.abs(want[step][0] - other[step][0]).max() > 1e-3, step


def test_swaps_exchange_exactly_and_never_copy():
    opt = control_opt.EntropySGD(learning_rate=0.5, langevin_steps=5, langevin_learning_rate=0.1, gamma=0.1,
                                 noise=1e-2, seed=1)
    var = keras.Variable(np.array([0.3, -1.7, 2.2], np.float32))
    for _ in range(2):
        opt.apply_gradients([(tf.constant([1.0, -2.0, 0.5]), var)])
    probe, anchor = var.numpy().copy(), opt.anchors[0].numpy().copy()
    assert not np.allclose(probe, anchor)
    assert opt.swap_in_anchor() and opt.anchor_in_model
    np.testing.assert_array_equal(var.numpy(), anchor)
    np.testing.assert_array_equal(opt.anchors[0].numpy(), probe)
    assert not opt.swap_in_anchor()  # already there: nothing moves
    np.testing.assert_array_equal(var.numpy(), anchor)
    assert opt.swap_in_probe() and not opt.anchor_in_model
    np.testing.assert_array_equal(var.numpy(), probe)
    np.testing.assert_array_equal(opt.anchors[0].numpy(), anchor)


def test_float64_scope_and_trajectory_are_float64():
    opt = control_opt.EntropySGD(gamma=0.1, scoping=0.1)
    want = np.float64(0.1) * np.float64(1.1) ** 3
    assert opt.scope(3, tf.float64).dtype == tf.float64
    np.testing.assert_allclose(float(opt.scope(3, tf.float64)), want, rtol=1e-15)
    assert abs(float(opt.scope(3, tf.float32)) - want) / want > 1e-9  # float32 would be visible
    # In the update: learning rates exact in float32, so float64 matches the reference to rounding.
    kwargs = dict(learning_rate=0.5, langevin_steps=2, langevin_learning_rate=0.25, langevin_momentum=0.75,
                  langevin_nesterov=True, gamma=1.1, scoping=0.1, mean_decay=0.625)
    w0 = [0.8, -0.6, 1.2]
    got = run(control_opt.EntropySGD(**kwargs, **NOISELESS), w0, 12, dtype="float64")
    want = entropy_sgd_reference(quartic_grad, w0, 12, **kwargs)
    for step, ((probe, anchor), (ref_probe, ref_anchor)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(probe, ref_probe, rtol=1e-13, atol=1e-13, err_msg=f"probe, step {step}")
        np.testing.assert_allclose(anchor, ref_anchor, rtol=1e-13, atol=1e-13, err_msg=f"anchor, step {step}")


def test_langevin_noise_scale_formula_is_the_inlined_double_constant():
    from control_opt.formulas import local_entropy

    scale = local_entropy.langevin_noise_scale(1e-3, 0.1)
    assert isinstance(scale, float) and scale == 1e-3 * (2.0 * 0.1) ** 0.5
    tensor = local_entropy.langevin_noise_scale(tf.constant(0.5, tf.float64), tf.constant(0.02, tf.float64))
    assert tensor.dtype == tf.float64
    np.testing.assert_allclose(float(tensor), 0.1, rtol=1e-15)
