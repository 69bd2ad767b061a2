"""HopfLaxSGD: hand-computed outer step, fixed point on a quadratic, SGD limit, Keras guarantees."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import control_opt


def run(optimizer, w0, num_steps, grad_fn):
    var = keras.Variable(np.array(w0, dtype="float32"))
    hist = []
    for _ in range(num_steps):
        optimizer.apply_gradients([(tf.constant(grad_fn(var.numpy()), tf.float32), var)])
        hist.append((var.numpy().copy(), optimizer.anchors[0].numpy().copy()))
    return hist


def test_one_outer_step_by_hand():
    # f = w^2 (g = 2w), w = 1, gamma = 2 (t = 0.5), beta1 = 0.5, L = 2, eta = 0.1, no momentum.
    opt = control_opt.HopfLaxSGD(learning_rate=0.1, momentum=0.0, nesterov=False, inner_steps=2,
                                 gamma=2.0, scoping=0.0, mean_decay=0.5)
    hist = run(opt, [1.0], 2, lambda w: 2 * w)
    # l = 0: p = g(1) = 2; probe = 1 - 0.5*2 = 0.
    np.testing.assert_allclose(hist[0][0], [0.0], atol=1e-7)
    # l = 1: g(0) = 0; p = 0.5*2 + 0.5*0 = 1; outer: w = 1 - 0.1*1 = 0.9; probe reset to 0.9.
    np.testing.assert_allclose(hist[1][1], [0.9], rtol=1e-6)
    np.testing.assert_allclose(hist[1][0], [0.9], rtol=1e-6)


@pytest.mark.parametrize("a,gamma", [(2.0, 1.0), (1.0, 4.0)])
def test_fixed_point_reaches_moreau_gradient_on_quadratic(a, gamma):
    # p* = a w / (1 + t a), t = 1/gamma; with eta = 1 the new anchor is w - p*.
    w0 = np.array([1.2, -0.4], np.float32)
    opt = control_opt.HopfLaxSGD(learning_rate=1.0, momentum=0.0, nesterov=False, inner_steps=200,
                                 gamma=gamma, scoping=0.0, mean_decay=0.75)
    hist = run(opt, w0, 200, lambda w: a * w)
    t = 1.0 / gamma
    np.testing.assert_allclose(w0 - hist[-1][1], a * w0 / (1 + t * a), rtol=1e-5)


def test_infinite_gamma_with_one_inner_step_is_sgd_with_momentum():
    grad = lambda w: w**3 + np.array([1.0, 2.0], np.float32) * w
    opt = control_opt.HopfLaxSGD(learning_rate=0.05, momentum=0.9, nesterov=True, inner_steps=1,
                                 gamma=1e12, scoping=0.0)
    got = run(opt, [0.9, -1.1], 15, grad)
    sgd = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    var = keras.Variable(np.array([0.9, -1.1], np.float32))
    for probe_anchor in got:
        sgd.apply_gradients([(tf.constant(grad(var.numpy())), var)])
        np.testing.assert_allclose(probe_anchor[1], var.numpy(), rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_saving(tmp_path):
    opt = control_opt.HopfLaxSGD(learning_rate=0.2, inner_steps=3, gamma=5.0, l2=1e-4)
    config = opt.get_config()
    assert control_opt.HopfLaxSGD.from_config(config).get_config() == config
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=opt, loss="mse", jit_compile=True)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    model.fit(x, x[:, :2], batch_size=4, epochs=1, verbose=0, callbacks=[control_opt.AnchorSwap()])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is control_opt.HopfLaxSGD
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    assert opt.anchor_in_model


@pytest.mark.parametrize("kwargs,name", [
    (dict(learning_rate=0.0), "learning_rate"), (dict(inner_steps=0), "inner_steps"),
    (dict(gamma=0.0), "gamma"), (dict(scoping=-1.0), "scoping"), (dict(mean_decay=1.0), "mean_decay"),
    (dict(momentum=1.0), "momentum"), (dict(momentum=0.0, nesterov=True), "nesterov"), (dict(l2=-1.0), "l2")])
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}[`=]"):
        control_opt.HopfLaxSGD(**kwargs)


def quartic_grad(w):
    c = np.array([1.0, 3.0, 0.5])[: w.shape[-1]]
    return c * w + w**3


def run_dtype(optimizer, w0, num_steps, grad_fn, dtype):
    var = keras.Variable(np.array(w0, dtype=dtype))
    hist = []
    for _ in range(num_steps):
        grad = tf.constant(grad_fn(var.numpy().astype(np.float64)), dtype=dtype)
        optimizer.apply_gradients([(grad, var)])
        hist.append((var.numpy().copy(), optimizer.anchors[0].numpy().copy()))
    return hist


HOPF_LAX_GOLDEN = {
    # l2 > 0 and scoping > 0: L2 counted once, t_k = 1/gamma_k shrinking with k.
    "l2_scoping_nesterov": dict(learning_rate=0.5, momentum=0.75, nesterov=True, inner_steps=3, gamma=2.5,
                                scoping=0.3, mean_decay=0.6, l2=0.2),
    "l2_scoping_plain": dict(learning_rate=0.25, momentum=0.0, nesterov=False, inner_steps=4, gamma=3.5,
                             scoping=0.5, mean_decay=0.25, l2=0.3),
}


@pytest.mark.parametrize("case", sorted(HOPF_LAX_GOLDEN))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_golden_trajectory_matches_numpy_transcription(case, dtype):
    from tests.optimizers.reference import hopf_lax_reference

    kwargs = HOPF_LAX_GOLDEN[case]
    w0 = [0.8, -0.6, 1.2]
    got = run_dtype(control_opt.HopfLaxSGD(**kwargs, seed=0), w0, 17, quartic_grad, dtype)
    want = hopf_lax_reference(quartic_grad, w0, 17, **kwargs)
    # The learning rates are powers of two (exact in Keras' float32 variable), so
    # float64 must match to rounding: this also checks t_k is computed in float64.
    tol = 2e-5 if dtype == "float32" else 1e-12
    for step, ((probe, anchor), (ref_probe, ref_anchor)) in enumerate(zip(got, want)):
        np.testing.assert_allclose(probe, ref_probe, rtol=tol, atol=tol, err_msg=f"probe, step {step}")
        np.testing.assert_allclose(anchor, ref_anchor, rtol=tol, atol=tol, err_msg=f"anchor, step {step}")
    # The parameters are off neutral values: without scoping or L2 the trajectory differs.
    for neutral in (dict(scoping=0.0), dict(l2=0.0)):
        other = hopf_lax_reference(quartic_grad, w0, 17, **{**kwargs, **neutral})
        assert not np.allclose(other[-1][1], want[-1][1], rtol=1e-3), neutral


def test_proximal_time_is_computed_in_the_variable_dtype():
    opt = control_opt.HopfLaxSGD(gamma=0.1, scoping=0.1)
    t64 = opt.proximal_time(3, tf.float64)
    assert t64.dtype == tf.float64
    want = 1.0 / (np.float64(0.1) * np.float64(1.1) ** 3)
    np.testing.assert_allclose(float(t64), want, rtol=1e-15)
    # The float32 value is off by more than float64 rounding: the test above can tell them apart.
    assert abs(float(opt.proximal_time(3, tf.float32)) - want) / want > 1e-9
