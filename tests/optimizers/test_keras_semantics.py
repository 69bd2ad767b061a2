"""Keras semantics: fit modes agree, validation/saving at the anchor, exact resume."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import control_opt

L = 3  # inner steps; 10 steps per epoch below is not a multiple of it.


def data(n=80, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d,)) > 0).astype("int32")
    return x, y


def make_model(optimizer, seed=0, dtype="float32", **compile_kwargs):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,), dtype=dtype),
                              keras.layers.Dense(8, activation="tanh", dtype=dtype),
                              keras.layers.Dense(2, dtype=dtype)])
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **compile_kwargs)
    return model


def optimizer(**kwargs):
    base = dict(learning_rate=0.5, langevin_steps=L, gamma=0.03, noise=1e-3, seed=5)
    base.update(kwargs)
    return control_opt.EntropySGD(**base)


def weights(model):
    return [w.numpy() for w in model.trainable_weights]


MODES = {"eager": dict(run_eagerly=True), "graph": {}, "xla": dict(jit_compile=True),
         "spe4": dict(steps_per_execution=4), "xla_spe4": dict(jit_compile=True, steps_per_execution=4)}


def fit_in_mode(mode, **opt_kwargs):
    x, y = data()
    model = make_model(optimizer(**opt_kwargs), **MODES[mode])
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return weights(model) + [model.optimizer.anchors[0].numpy()]


def test_eager_graph_xla_and_steps_per_execution_agree():
    reference = fit_in_mode("eager", noise=0.0)
    for mode in ("graph", "xla", "spe4", "xla_spe4"):
        for a, b in zip(reference, fit_in_mode(mode, noise=0.0)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=mode)


def test_hopf_lax_sgd_agrees_in_eager_graph_xla_and_steps_per_execution():
    def fit(mode):
        x, y = data()
        model = make_model(control_opt.HopfLaxSGD(learning_rate=0.5, inner_steps=L, gamma=2.0), **MODES[mode])
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return weights(model) + [model.optimizer.anchors[0].numpy()]

    reference = fit("eager")
    for mode in ("graph", "xla", "spe4"):
        for a, b in zip(reference, fit(mode)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=mode)


def test_noise_stream_is_the_same_in_eager_graph_xla_and_steps_per_execution():
    reference = fit_in_mode("eager")
    for mode in ("graph", "xla", "spe4", "xla_spe4"):
        for a, b in zip(reference, fit_in_mode(mode)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=mode)
    # The control: another seed gives another trajectory.
    for a, b in zip(reference, fit_in_mode("eager", seed=6)):
        assert not np.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_xla_noise_is_seeded_and_reproducible():
    first, second = fit_in_mode("xla"), fit_in_mode("xla")
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_float64_model_trains():
    x, y = data()
    model = make_model(control_opt.EntropyAdam(learning_rate=0.01, langevin_steps=L, seed=1), dtype="float64")
    hist = model.fit(x.astype("float64"), y, batch_size=8, epochs=3, verbose=0)
    assert model.optimizer.anchors[0].dtype == "float64"
    assert np.isfinite(hist.history["loss"]).all()


def test_validation_inside_fit_sees_the_anchor_and_model_keeps_it_after_fit():
    x, y = data()
    xv, yv = data(40, seed=1)
    model = make_model(optimizer())
    hist = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                     validation_data=(xv, yv), callbacks=[control_opt.AnchorSwap()])
    opt = model.optimizer
    assert int(opt.inner_step) != 0  # fit stopped mid inner loop: probe != anchor
    assert opt.anchor_in_model
    np.testing.assert_allclose(hist.history["val_loss"][0], model.evaluate(xv, yv, verbose=0)[0], rtol=1e-5)
    # The control: the probe, swapped back in, gives another loss.
    opt.swap_in_probe()
    assert abs(model.evaluate(xv, yv, verbose=0)[0] - hist.history["val_loss"][0]) > 1e-4


def test_without_the_callback_validation_would_see_the_probe():
    x, y = data()
    xv, yv = data(40, seed=1)
    model = make_model(optimizer())
    hist = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, validation_data=(xv, yv))
    assert abs(hist.history["val_loss"][0] - model.evaluate(xv, yv, verbose=0)[0]) > 1e-4


def test_save_load_and_resume_continue_the_same_trajectory(tmp_path):
    x, y = data()
    straight = make_model(optimizer())
    straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[control_opt.AnchorSwap()])

    first = make_model(optimizer())
    first.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[control_opt.AnchorSwap()])
    path = str(tmp_path / "m.keras")
    first.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    assert type(loaded.optimizer) is control_opt.EntropySGD
    assert loaded.optimizer.get_config() == first.optimizer.get_config()
    for a, b in zip(weights(loaded), weights(first)):
        np.testing.assert_array_equal(a, b)  # the anchor
    assert int(loaded.optimizer.iterations) == 10
    loaded.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
               callbacks=[control_opt.AnchorSwap()])
    for a, b in zip(weights(loaded), weights(straight)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_second_fit_without_callback_swaps_probe_back():
    x, y = data()
    model = make_model(optimizer(noise=0.0))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    opt = model.optimizer
    assert opt.anchor_in_model
    anchor = weights(model)
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, shuffle=False, verbose=0)
    # One more inner step (10 -> 11, still inside outer step 3): the anchor must not move.
    assert int(opt.iterations) == 11 and int(opt.inner_step) == 2
    for a, b in zip(weights(model), anchor):
        np.testing.assert_array_equal(a, b)


# Data parallelism on two logical CPUs (every copy equal, the one-device run, a frozen layer after
# recompiling): tests/distribute/test_replicas.py::test_data_parallel_entropy_sgd_draws_the_same_noise_on_every_replica.

