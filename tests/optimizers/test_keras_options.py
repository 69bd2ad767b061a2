"""Keras' own optimizer options on the anchored optimizers: clipping acts on the minibatch gradient."""

import numpy as np
import pytest
import tensorflow as tf

import control_opt

OPTIMIZERS = {
    "entropy_sgd": lambda **kw: control_opt.EntropySGD(learning_rate=0.5, langevin_steps=2, noise=0.0, **kw),
    "entropy_adam": lambda **kw: control_opt.EntropyAdam(learning_rate=0.1, langevin_steps=2, noise=0.0, **kw),
    "hopf_lax": lambda **kw: control_opt.HopfLaxSGD(learning_rate=0.5, inner_steps=2, **kw),
}


def _run(make, gradients, **kwargs):
    variable = tf.Variable([1.0, -2.0, 0.5])
    optimizer = make(**kwargs)
    for g in gradients:
        optimizer.apply_gradients([(tf.constant(g), variable)])
    optimizer.finalize_variable_values([variable])
    return variable.numpy()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("option", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_clipping_equals_the_run_on_clipped_gradients(name, option):
    gradients = [np.array([3.0, -4.0, 12.0], np.float32), np.array([0.3, 0.2, -0.1], np.float32),
                 np.array([-6.0, 8.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32)]
    limit = 2.0
    if option == "clipvalue":
        clipped = [np.clip(g, -limit, limit) for g in gradients]
    else:  # one variable: the norm and the global norm agree
        clipped = [g * min(1.0, limit / np.linalg.norm(g)) for g in gradients]
    with_option = _run(OPTIMIZERS[name], gradients, **{option: limit})
    by_hand = _run(OPTIMIZERS[name], clipped)
    unclipped = _run(OPTIMIZERS[name], gradients)
    np.testing.assert_allclose(with_option, by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(with_option, unclipped, atol=1e-3)  # the option did something
