"""Every optimizer of the library through the same Keras behaviours (one table, as optax's alias_test).

One replica here (no strategy; ElasticSGD and Parle run with n = 1); the
replica-local cases on 2 replicas are tests/distribute/test_replica_options.py.
Small variables and models, so that the whole table stays fast.
"""

import copy
import pickle

import keras
import numpy as np
import pytest
import tensorflow as tf

import control_opt

# Each with a short inner loop (2), no noise: deterministic, and an outer step every other call.
OPTIMIZERS = {
    "entropy_sgd": lambda **kw: control_opt.EntropySGD(**{"learning_rate": 0.5, "langevin_steps": 2, "noise": 0.0,
                                                          **kw}),
    "entropy_adam": lambda **kw: control_opt.EntropyAdam(**{"learning_rate": 0.1, "langevin_steps": 2,
                                                            "noise": 0.0, **kw}),
    "hopf_lax": lambda **kw: control_opt.HopfLaxSGD(**{"learning_rate": 0.5, "inner_steps": 2, **kw}),
    "elastic_sgd": lambda **kw: control_opt.ElasticSGD(**{"learning_rate": 0.1, **kw}),
    "parle": lambda **kw: control_opt.Parle(**{"learning_rate": 0.5, "langevin_steps": 2, **kw}),
    "parle_authors_code": lambda **kw: control_opt.Parle(**{"learning_rate": 0.5, "langevin_steps": 2,
                                                            "authors_code": True, **kw}),
}
NAMES = sorted(OPTIMIZERS)
GRADIENTS = [np.array(g, np.float32) for g in ([3.0, -4.0, 12.0], [0.3, 0.2, -0.1], [-6.0, 8.0, 0.0],
                                                [1.0, 1.0, 1.0], [0.5, -0.5, 2.0], [2.0, 0.1, 0.1])]


def run(optimizer, gradients=GRADIENTS, dtype="float32", start=(1.0, -2.0, 0.5)):
    variable = tf.Variable(np.asarray(start, dtype))
    for g in gradients:
        optimizer.apply_gradients([(tf.constant(g.astype(dtype)), variable)])
    optimizer.finalize_variable_values([variable])
    return variable.numpy()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("option", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_clipping(name, option):
    limit = 2.0
    if option == "clipvalue":
        clipped = [np.clip(g, -limit, limit) for g in GRADIENTS]
    else:  # one variable: norm and global norm agree
        clipped = [g * min(1.0, limit / np.linalg.norm(g)) for g in GRADIENTS]
    with_option = run(OPTIMIZERS[name](**{option: limit}))
    np.testing.assert_allclose(with_option, run(OPTIMIZERS[name](), clipped), rtol=1e-5, atol=1e-6)
    assert not np.allclose(with_option, run(OPTIMIZERS[name]()), atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_gradients_equal_their_dense_form(name):
    variable_dense, variable_sparse = tf.Variable(tf.ones((4, 2))), tf.Variable(tf.ones((4, 2)))
    dense_opt, sparse_opt = OPTIMIZERS[name](), OPTIMIZERS[name]()
    for step in range(4):
        values = tf.constant([[0.5, -1.0], [2.0, 0.25]]) * (step + 1)
        sparse = tf.IndexedSlices(values, tf.constant([1, 3]), tf.constant([4, 2]))
        dense_opt.apply_gradients([(tf.convert_to_tensor(sparse), variable_dense)])
        sparse_opt.apply_gradients([(sparse, variable_sparse)])
    np.testing.assert_allclose(variable_sparse.numpy(), variable_dense.numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(variable_sparse.numpy(), 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_a_frozen_variable_does_not_move(name):
    trained, frozen = tf.Variable([1.0, -1.0]), tf.Variable([2.0, 3.0])
    optimizer = OPTIMIZERS[name]()
    optimizer.build([trained, frozen])
    for g in GRADIENTS[:5]:
        optimizer.apply_gradients([(tf.constant(g[:2]), trained)])
    optimizer.finalize_variable_values([trained, frozen])
    np.testing.assert_array_equal(frozen.numpy(), [2.0, 3.0])
    assert not np.allclose(trained.numpy(), [1.0, -1.0])


@pytest.mark.parametrize("name", [n for n in NAMES if n != "parle_authors_code"])
def test_a_schedule_is_read_at_every_step(name):
    # (The authors' Parle steps from the probe: with eta = 0 its anchor still becomes the probe.)
    # The rate falls to 0 after the first outer step (2 calls): later steps must leave the reported weights.
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [0.5, 0.0])  # steps 0, 1: 0.5
    after_two = run(OPTIMIZERS[name](learning_rate=schedule), GRADIENTS[:2])
    after_six = run(OPTIMIZERS[name](learning_rate=schedule), GRADIENTS)
    np.testing.assert_allclose(after_six, after_two, rtol=0, atol=1e-7)
    assert not np.allclose(after_two, [1.0, -2.0, 0.5])


def test_elastic_sgd_under_a_schedule_is_the_momentum_form_it_states():
    # v <- m v + g ; x <- x - eta_t (g + m v) (Nesterov; the rate outside the buffer), from v = 0.
    rates = [0.1, 0.1, 0.05, 0.05, 0.02, 0.02]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.02])
    for nesterov in (True, False):
        x, v = np.array([1.0, -2.0, 0.5]), np.zeros(3)
        for eta, g in zip(rates, GRADIENTS):
            v = 0.9 * v + g
            x = x - eta * (g + 0.9 * v if nesterov else v)
        ours = run(control_opt.ElasticSGD(learning_rate=schedule, momentum=0.9, nesterov=nesterov))
        np.testing.assert_allclose(ours, x, rtol=1e-5, atol=1e-6)
        keras_sgd = tf.Variable([1.0, -2.0, 0.5])
        sgd = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, nesterov=nesterov)
        for g in GRADIENTS:
            sgd.apply_gradients([(tf.constant(g), keras_sgd)])
        assert np.abs(keras_sgd.numpy() - ours).max() > 1e-2  # Keras' form puts the rate inside the buffer


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_acts_or_is_refused(name):
    if name == "hopf_lax":
        with pytest.raises(ValueError, match="weight_decay.*l2"):
            OPTIMIZERS[name](weight_decay=0.1)
        return
    decayed, plain = run(OPTIMIZERS[name](weight_decay=0.5)), run(OPTIMIZERS[name]())
    assert np.abs(decayed - plain).max() > 1e-3


def test_elastic_sgd_weight_decay_is_keras_sgd():
    for decay in (0.1, 10.0):
        keras_sgd = tf.Variable([1.0, -2.0, 0.5])
        sgd = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=decay)
        for g in GRADIENTS[:3]:
            sgd.apply_gradients([(tf.constant(g), keras_sgd)])
        ours = run(control_opt.ElasticSGD(learning_rate=0.1, weight_decay=decay), GRADIENTS[:3])
        np.testing.assert_allclose(ours, keras_sgd.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_float64_keeps_float64_state_and_rates(name):
    optimizer = OPTIMIZERS[name]()
    result = run(optimizer, dtype="float64")
    slots = [v for v in optimizer.variables if len(v.shape) == 1]
    assert slots and all(v.dtype == "float64" for v in slots)
    # The same run in float32 agrees to float32 precision only: the float64 run is not rounded through float32.
    np.testing.assert_allclose(result, run(OPTIMIZERS[name]()), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_and_deepcopy(name):
    optimizer = OPTIMIZERS[name](clipnorm=1.0)
    for clone in (pickle.loads(pickle.dumps(optimizer)), copy.deepcopy(optimizer)):
        assert type(clone) is type(optimizer) and clone.get_config() == optimizer.get_config()
    # The clone trains as the original does.
    np.testing.assert_array_equal(run(pickle.loads(pickle.dumps(optimizer))), run(optimizer))


def _model(batch_norm=False, dtype=None):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", dtype=dtype)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization(dtype=dtype))
    return keras.Sequential(layers + [keras.layers.Dense(2, dtype=dtype)])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6)).astype("float32")
    return x, (x @ rng.normal(size=(6,)) > 0).astype("int32")


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize("name", NAMES)
def test_batch_norm_mixed_precision_save_load_continue(name, tmp_path):
    x, y = _data()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model(batch_norm=True)
        model.compile(optimizer=OPTIMIZERS[name](), loss=LOSS)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        path = str(tmp_path / "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        for m in (model, loaded):
            m.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)  # continued after loading = uninterrupted
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(v.dtype == "float32" for v in model.trainable_variables)
