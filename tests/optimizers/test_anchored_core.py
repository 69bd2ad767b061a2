"""The anchored core beyond the plain update: mixed precision, subsets of variables,
sparse gradients, weight decay, Keras options we reject, warnings, saving."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import keras

import control_opt
from control_opt.optimizers import find_anchored_optimizer


def data(n=48, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d,)) > 0).astype("int32")
    return x, y


def make_model(optimizer, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def entropy_sgd(**kwargs):
    base = dict(learning_rate=0.5, langevin_steps=4, langevin_learning_rate=0.1, gamma=0.03, noise=1e-3, seed=5)
    base.update(kwargs)
    return control_opt.EntropySGD(**base)


# ----------------------------------------------------------------- mixed precision
@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_anchor_swap_and_finalize_work_through_the_loss_scale_wrapper(mixed_float16):
    x, y = data()
    xv, yv = data(24, seed=1)
    model = make_model(entropy_sgd())
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    opt = find_anchored_optimizer(model)
    assert isinstance(opt, control_opt.EntropySGD)
    hist = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, validation_data=(xv, yv),
                     callbacks=[control_opt.AnchorSwap()])
    assert int(opt.inner_step) != 0  # 6 steps, L = 4: probe != anchor
    assert opt.anchor_in_model
    # Validation inside fit ran at the anchor, which the model holds now.
    np.testing.assert_allclose(hist.history["val_loss"][0], model.evaluate(xv, yv, verbose=0), rtol=1e-5)
    anchor = [w.numpy() for w in model.trainable_weights]
    assert opt.swap_in_probe()
    assert abs(model.evaluate(xv, yv, verbose=0) - hist.history["val_loss"][0]) > 1e-4
    for a, b in zip(opt.anchors, anchor):
        np.testing.assert_array_equal(a.numpy(), b)

    # Without the callback, Keras' finalize_variable_values reaches the inner optimizer.
    model = make_model(entropy_sgd())
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert find_anchored_optimizer(model).anchor_in_model


# ------------------------------------------------------------- subsets of variables
def test_variables_not_updated_never_move():
    opt = entropy_sgd(noise=0.0, langevin_steps=3)
    a = keras.Variable(np.array([0.5, -0.3], np.float32))
    b = keras.Variable(np.array([1.5, 0.7], np.float32))
    opt.build([a, b])
    opt.apply_gradients([(tf.constant([1.0, 2.0]), a), (tf.constant([-1.0, 0.5]), b)])
    with pytest.warns(UserWarning, match="before the first outer step"):
        opt.finalize_variable_values([a, b])  # the model holds the anchor; slots the probes
    held = b.numpy().copy()
    for _ in range(4):  # b frozen: only a is updated (past an outer step)
        opt.apply_gradients([(tf.constant([1.0, 2.0]), a)])
        np.testing.assert_array_equal(b.numpy(), held)
    assert opt.swap_in_anchor()
    np.testing.assert_array_equal(b.numpy(), held)
    assert opt.swap_in_probe()
    np.testing.assert_array_equal(b.numpy(), held)
    # Unfrozen again, b trains from where it is, its chain restarted there.
    opt.apply_gradients([(tf.constant([1.0, 2.0]), a), (tf.constant([-1.0, 0.5]), b)])
    assert not np.allclose(b.numpy(), held)
    assert np.all(np.isfinite(b.numpy()))


def test_freezing_a_layer_and_recompiling_with_the_built_optimizer():
    x, y = data()
    opt = entropy_sgd()
    model = make_model(opt)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # finalized: anchor in model
    model.layers[0].trainable = False
    frozen = [w.numpy().copy() for w in model.layers[0].weights]
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[control_opt.AnchorSwap()])
    for w, before in zip(model.layers[0].weights, frozen):
        np.testing.assert_array_equal(w.numpy(), before)
    opt.swap_in_probe()
    for w, before in zip(model.layers[0].weights, frozen):
        np.testing.assert_array_equal(w.numpy(), before)


# ------------------------------------------------------------------ sparse gradients
OPTIMIZERS = {
    "entropy_sgd": lambda: entropy_sgd(langevin_momentum=0.9, momentum=0.5),
    "entropy_adam": lambda: control_opt.EntropyAdam(learning_rate=0.01, langevin_steps=3, gamma=0.03,
                                                    noise=1e-3, seed=2),
    "hopf_lax": lambda: control_opt.HopfLaxSGD(learning_rate=0.5, inner_steps=3, gamma=2.0),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sparse_gradients_give_the_dense_result(name):
    rows = tf.IndexedSlices(values=tf.constant([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]]),
                            indices=tf.constant([0, 2, 0]), dense_shape=tf.constant([4, 2]))
    dense = tf.convert_to_tensor(rows)
    results = []
    for grad in (rows, dense):
        opt = OPTIMIZERS[name]()
        var = keras.Variable(np.arange(8, dtype=np.float32).reshape(4, 2) / 8.0)
        for _ in range(4):
            opt.apply_gradients([(grad, var)])
        results.append((var.numpy(), opt.anchors[0].numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_embedding_model_trains(name):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(20, 4),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model.compile(optimizer=OPTIMIZERS[name](), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, size=(32, 5)), rng.integers(0, 2, size=32)
    before = model.layers[0].embeddings.numpy().copy()
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    assert not np.allclose(model.layers[0].embeddings.numpy(), before)


# ------------------------------------------------------ no outer step before the end
def test_warns_once_when_fit_ends_before_the_first_outer_step():
    x, y = data()
    model = make_model(entropy_sgd(langevin_steps=50))
    initial = [w.numpy().copy() for w in model.trainable_weights]
    with pytest.warns(UserWarning, match="langevin_steps"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 6 steps < 50
    for w, w0 in zip(model.trainable_weights, initial):
        np.testing.assert_array_equal(w.numpy(), w0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # once per optimizer
    opt = control_opt.HopfLaxSGD(inner_steps=10)
    var = keras.Variable(np.zeros(2, np.float32))
    opt.apply_gradients([(tf.ones(2), var)])
    with pytest.warns(UserWarning, match="inner_steps"):
        opt.finalize_variable_values([var])


def test_no_warning_after_an_outer_step():
    x, y = data()
    model = make_model(entropy_sgd(langevin_steps=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)


# ------------------------------------------------------- Keras options we reject
@pytest.mark.parametrize("cls", [control_opt.EntropySGD, control_opt.EntropyAdam, control_opt.HopfLaxSGD])
def test_rejects_ema_and_gradient_accumulation(cls):
    with pytest.raises(ValueError, match="`use_ema=True`"):
        cls(use_ema=True)
    with pytest.raises(ValueError, match="`gradient_accumulation_steps`"):
        cls(gradient_accumulation_steps=2)
    cls(use_ema=False, gradient_accumulation_steps=None)  # Keras' defaults are fine


# ---------------------------------------------------------------- weight decay
def test_weight_decay_acts_on_the_probe_after_a_finalized_fit():
    # L = 3, no noise, no momentum, gamma = 0: an inner step is w' <- w' - eta' g.
    eta, eta_in, wd = 0.5, 0.1, 0.2
    opt = control_opt.EntropySGD(learning_rate=eta, langevin_steps=3, langevin_learning_rate=eta_in,
                                 langevin_momentum=0.0, langevin_nesterov=False, gamma=0.0, scoping=0.0,
                                 noise=0.0, weight_decay=wd, seed=0)
    w0 = np.array([1.0, -2.0], np.float64)
    g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 0.25])
    var = keras.Variable(w0.astype(np.float32))
    opt.apply_gradients([(tf.constant(g1, tf.float32), var)])
    probe1 = w0 * (1 - eta * wd) - eta_in * g1  # Keras decays first, then the step
    np.testing.assert_allclose(var.numpy(), probe1, rtol=1e-6)
    with pytest.warns(UserWarning, match="before the first outer step"):
        opt.finalize_variable_values([var])  # end of fit: the anchor w0 in the model
    np.testing.assert_allclose(var.numpy(), w0, rtol=1e-7)
    opt.apply_gradients([(tf.constant(g2, tf.float32), var)])  # the next fit's first step
    np.testing.assert_allclose(var.numpy(), probe1 * (1 - eta * wd) - eta_in * g2, rtol=1e-6)
    np.testing.assert_allclose(opt.anchors[0].numpy(), w0, rtol=1e-7)  # the anchor is not decayed


# -------------------------------------------------------------------------- saving
def test_plain_callable_gamma_is_refused_at_save_time_with_the_reason(tmp_path):
    opt = control_opt.EntropySGD(gamma=lambda k: 0.01 * (k + 1))
    with pytest.raises(ValueError, match="`gamma` is a plain callable.*LearningRateSchedule.*register_keras_serializable"):
        opt.get_config()
    model = make_model(opt)
    with pytest.raises(ValueError, match="`gamma` is a plain callable"):
        model.save(tmp_path / "m.keras")


@keras.saving.register_keras_serializable(package="control_opt_tests")
def registered_gamma(k):
    return 0.01 * (1.0 + tf.cast(k, tf.float32))


def test_registered_callable_gamma_round_trips():
    opt = control_opt.EntropySGD(gamma=registered_gamma)
    clone = control_opt.EntropySGD.from_config(opt.get_config())
    np.testing.assert_allclose(float(clone.scope(3)), 0.04, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_update_step_called_directly_is_one_apply_step(name):
    grads = [tf.constant([1.0, -2.0]), tf.constant([0.5, 0.3]), tf.constant([-1.0, 0.25])]
    a, b = OPTIMIZERS[name](), OPTIMIZERS[name]()
    va, vb = (keras.Variable(np.array([0.4, -0.9], np.float32)) for _ in range(2))
    a.build([va])
    b.build([vb])
    for grad in grads:  # crosses the outer step (L = 3)
        a.apply_gradients([(grad, va)])
        b.update_step(grad, vb, b.learning_rate)
        b.iterations.assign_add(1)
        np.testing.assert_allclose(vb.numpy(), va.numpy(), rtol=1e-6)
        np.testing.assert_allclose(b.anchors[0].numpy(), a.anchors[0].numpy(), rtol=1e-6)
