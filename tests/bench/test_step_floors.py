"""The contenders of bench_optimizer_step's floor rows and bench_xla_resources do what their rows say."""

import numpy as np
import tensorflow as tf

from bench import bench_xla_resources
from bench.bench_optimizer_step import SGDPlusNoise


def _trained(optimizer):
    variables = [tf.Variable(tf.ones((3, 2))), tf.Variable(tf.zeros((5,)))]
    grads = [tf.fill((3, 2), 0.5), tf.fill((5,), -1.0)]
    step = tf.function(lambda: optimizer.apply_gradients(zip(grads, variables)))
    for _ in range(3):
        step()
    return [v.numpy() for v in variables], optimizer


def test_the_floor_optimizers_take_sgds_step_plus_only_the_noise():
    import keras

    plain, _ = _trained(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    bits, bits_optimizer = _trained(SGDPlusNoise(0.1, momentum=0.9, nesterov=True, bits_only=True))
    loud = type("LoudSGDPlusNoise", (SGDPlusNoise,), {"SCALE": 1e-3})
    noisy, _ = _trained(loud(0.1, momentum=0.9, nesterov=True))
    for a, b, c in zip(plain, bits, noisy):
        np.testing.assert_array_equal(a, b)  # bits only: the weights are SGD's
        # The draw goes into every weight: 3 steps of 1e-3 N(0, 1).
        assert np.all(a != c) and np.abs(a - c).max() < 1e-3 * 3 * 5
    assert bits_optimizer._sink.shape == (6,) and np.any(bits_optimizer._sink.numpy() != 0)


def test_every_state_layout_computes_the_same_state_with_its_own_variable_count():
    counts, states = {}, {}
    for layout in ("none", "cond", "select", "flat"):
        step, counts[layout], state = bench_xla_resources.make_step(layout, slots=2)
        for _ in range(2 * bench_xla_resources.PERIOD - 1):  # make_step ran one call
            step()
        states[layout] = state()
    assert counts == {"none": 8 + 1, "cond": 8 + 16 + 1, "select": 8 + 16 + 1, "flat": 8 + 2 + 1}
    np.testing.assert_allclose(states["cond"], states["select"], rtol=1e-6)
    np.testing.assert_allclose(states["cond"], states["flat"], rtol=1e-6)
    # Two outer steps ran (each sets a slot to the mean of its group + 1): every slot entry is 3.
    size = 5210
    assert states["flat"].size == 3 * size
    np.testing.assert_array_equal(states["flat"][size:], 3.0)
    np.testing.assert_allclose(states["flat"][:size], 1.0 + 2 * bench_xla_resources.PERIOD * 1e-3, rtol=1e-5)


def test_the_benchmark_has_the_shapes_of_the_mnist1d_cnn():
    from control_opt import models

    model = models.build("mnist1d_cnn", seed=0)
    assert [tuple(w.shape) for w in model.trainable_weights] == bench_xla_resources.SHAPES
