"""ElasticSGD and Parle without a strategy (one replica): reductions, errors, saving."""

import numpy as np
import pytest
import keras

import control_opt

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(n=48, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d,)) > 0).astype("int32")
    return x, y


def make_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss=LOSS)
    return model


def trained(optimizer, epochs=2, **fit_kwargs):
    x, y = data()
    model = make_model(optimizer)
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, **fit_kwargs)
    return model


def assert_weights_close(a, b, rtol=1e-5, atol=1e-6):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


@pytest.mark.parametrize("rho", [0.0, 3.0])
def test_elastic_sgd_on_one_replica_is_keras_sgd(rho):
    # One replica: xbar = x, so the coupling vanishes whatever rho.
    elastic = trained(control_opt.ElasticSGD(learning_rate=0.1, momentum=0.9, nesterov=True, rho=rho))
    sgd = trained(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True))
    assert_weights_close(elastic, sgd)


def test_parle_with_one_replica_and_rho_zero_is_entropy_sgd():
    common = dict(learning_rate=0.5, momentum=0.9, nesterov=True, langevin_steps=3, langevin_learning_rate=0.1,
                  gamma=0.03, scoping=0.01, noise=1e-3, mean_decay=0.75, seed=4)
    parle = trained(control_opt.Parle(rho=0.0, gamma_max=10.0, **common), callbacks=[control_opt.AnchorSwap()])
    entropy = trained(control_opt.EntropySGD(**common), callbacks=[control_opt.AnchorSwap()])
    assert_weights_close(parle, entropy)
    # The control: the coupling, here toward the running mean, changes the trajectory.
    coupled = trained(control_opt.Parle(rho=5.0, **common))
    assert not np.allclose(coupled.get_weights()[0], entropy.get_weights()[0], atol=1e-4)


@pytest.mark.parametrize("nesterov", [False, True])
def test_parle_with_one_langevin_step_and_no_scope_is_elastic_sgd(nesterov):
    eta, eta_l, m_l, beta1, rho = 0.3, 0.1, 0.5, 0.75, 0.4
    c = (1 - beta1) * eta_l * ((1 + m_l) if nesterov else 1.0)
    parle = trained(control_opt.Parle(learning_rate=eta, langevin_steps=1, langevin_learning_rate=eta_l,
                                      langevin_momentum=m_l, langevin_nesterov=nesterov, gamma=0.0, rho=rho,
                                      scoping=0.0, mean_decay=beta1, reference="weights"))
    elastic = trained(control_opt.ElasticSGD(learning_rate=eta * c, rho=rho / c))
    assert_weights_close(parle, elastic, rtol=1e-4, atol=1e-6)


def test_parle_scoping_is_capped():
    opt = control_opt.Parle(gamma=0.5, rho=2.0, scoping=1.0, gamma_max=1.0, rho_max=10.0)
    for k, gamma, rho in [(0, 0.5, 2.0), (1, 1.0, 4.0), (2, 1.0, 8.0), (3, 1.0, 10.0), (9, 1.0, 10.0)]:
        scalars = opt._chain_scalars(k, np.float32)
        assert float(scalars["gamma"]) == pytest.approx(gamma)
        assert float(scalars["rho"]) == pytest.approx(rho)


def test_default_rho_is_the_authors_0_01_L_n():
    model = trained(control_opt.Parle(langevin_steps=4), epochs=1)
    assert model.optimizer._resolved_rho() == pytest.approx(0.01 * 4)
    model = trained(control_opt.ElasticSGD(), epochs=1)
    assert model.optimizer._resolved_rho() == pytest.approx(0.01)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rho=-1.0), "rho"),
    (dict(communication_period=0), "communication_period"),
    (dict(communication_period=1.5), "communication_period"),
    (dict(center_moving_rate=0.0), "center_moving_rate"),
    (dict(center_moving_rate=1.5), "center_moving_rate"),
    (dict(learning_rate=-0.1), "learning_rate"),
    (dict(momentum=1.0), "momentum"),
])
def test_elastic_sgd_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        control_opt.ElasticSGD(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rho=-0.1), "rho"),
    (dict(gamma=-1.0), "gamma"),
    (dict(gamma=lambda k: 0.1), "gamma"),
    (dict(gamma_max=-1.0), "gamma_max"),
    (dict(rho_max=float("inf")), "rho_max"),
    (dict(langevin_steps=0), "langevin_steps"),
    (dict(reference="center"), "reference"),
    (dict(mean_decay=1.0), "mean_decay"),
])
def test_parle_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        control_opt.Parle(**kwargs)


def test_config_round_trip_and_save_load_continue(tmp_path):
    x, y = data()
    make = lambda: control_opt.Parle(langevin_steps=4, gamma=0.03, noise=1e-3, seed=2, rho=0.3)  # noqa: E731
    straight = make_model(make())
    straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[control_opt.AnchorSwap()])
    first = make_model(make())
    first.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[control_opt.AnchorSwap()])
    assert int(first.optimizer.inner_step) != 0  # saved mid outer loop
    path = str(tmp_path / "parle.keras")
    first.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is control_opt.Parle
    assert loaded.optimizer.get_config() == first.optimizer.get_config()
    loaded.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
               callbacks=[control_opt.AnchorSwap()])
    assert_weights_close(loaded, straight, rtol=1e-6, atol=1e-7)
    config = control_opt.ElasticSGD(rho=0.2, communication_period=3, center_moving_rate=0.5).get_config()
    assert control_opt.ElasticSGD.from_config(config).get_config() == config


def test_model_holds_the_center_after_fit_and_the_probe_during_it():
    x, y = data()
    model = make_model(control_opt.Parle(langevin_steps=4, gamma=0.03, rho=0.3, noise=0.0))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 6 steps: mid outer loop
    opt = model.optimizer
    assert opt.anchor_in_model
    for w, anchor in zip(model.get_weights(), opt.anchors):
        np.testing.assert_array_equal(w, anchor.numpy())  # one replica: the center is x_1
    opt.swap_in_probe()
    assert not np.allclose(model.get_weights()[0], opt.anchors[0].numpy())


@pytest.mark.parametrize("make", [
    lambda: control_opt.Parle(langevin_steps=3, gamma=0.03, rho=0.3, noise=1e-3, seed=1),
    lambda: control_opt.ElasticSGD(rho=0.3, communication_period=2),
], ids=["parle", "elastic_sgd"])
def test_graph_xla_and_steps_per_execution_agree_with_eager(make):
    x, y = data()

    def run(**compile_kwargs):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
        model.compile(optimizer=make(), loss=LOSS, **compile_kwargs)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    reference = run(run_eagerly=True)
    for mode in (dict(), dict(jit_compile=True), dict(steps_per_execution=4)):
        for a, b in zip(reference, run(**mode)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=str(mode))


@pytest.mark.parametrize("make", [control_opt.ElasticSGD, lambda: control_opt.Parle(langevin_steps=2)],
                         ids=["elastic_sgd", "parle"])
def test_state_of_the_earlier_layout_is_refused_by_name(make):
    # Layout 1 (before issue 17's state reduction: anchor, gradient and held_probe slots) had no "layout"
    # entry; its state must not be read into the smaller layout slot by slot.
    model = trained(make(), epochs=1)
    store = {}
    model.optimizer.save_own_variables(store)
    assert int(store["layout"]) == 2
    del store["layout"]
    with pytest.raises(ValueError, match="layout 1.*layout 2.*compile=False"):
        model.optimizer.load_own_variables(store)


@pytest.mark.parametrize("kwargs", [dict(center_moving_rate=0.5, communication_period=2),
                                    dict(communication_period=3), dict()],
                         ids=["moving_center", "mean_tau3", "mean_tau1"])
def test_elastic_sgd_saved_inside_fit_loads_and_continues_exactly(tmp_path, kwargs):
    # Saved after 3 of 6 steps with each replica's weights in the model (no AnchorSwap): they travel in
    # the optimizer's state; the center (EASGD's moving one, or the mean kept between communications)
    # must survive the load as well.
    x, y = data()
    make = lambda: control_opt.ElasticSGD(rho=0.3, **kwargs)  # noqa: E731
    path = str(tmp_path / "mid.keras")

    class SaveAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.save(path)

    straight = trained(make(), epochs=2)
    trained(make(), epochs=1, callbacks=[SaveAt()])
    loaded = keras.models.load_model(path)
    # AnchorSwap puts the weights back before the first gradient of each fit (without it, that gradient
    # would be taken at the center the end of the previous fit put in the model).
    for rows in (slice(24, None), slice(None)):
        loaded.fit(x[rows], y[rows], batch_size=8, epochs=1, shuffle=False, verbose=0,
                   callbacks=[control_opt.AnchorSwap()])
    for a, b in zip(loaded.optimizer.variables + loaded.trainable_variables,
                    straight.optimizer.variables + straight.trainable_variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


@pytest.mark.parametrize("make", [lambda: control_opt.ElasticSGD(rho=0.3),
                                  lambda: control_opt.Parle(langevin_steps=2, rho=0.3)], ids=["elastic_sgd", "parle"])
def test_a_layer_frozen_after_the_optimizer_is_built_stays_and_the_rest_trains(make):
    # The step then updates a subset of the optimizer's variables: the coupling must pair each control
    # with its own variable's weights and center (it used to pair them by position in the subset).
    x, y = data()
    model = trained(make(), epochs=1)
    model.layers[0].trainable = False
    frozen = [w.numpy().copy() for w in model.layers[0].weights]
    before = [w.numpy().copy() for w in model.layers[1].weights]
    model.compile(optimizer=model.optimizer, loss=LOSS)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for w, f in zip(model.layers[0].weights, frozen):
        np.testing.assert_array_equal(w.numpy(), f)
    assert all(np.all(np.isfinite(w.numpy())) for w in model.layers[1].weights)
    assert max(float(np.abs(w.numpy() - b).max()) for w, b in zip(model.layers[1].weights, before)) > 1e-4
