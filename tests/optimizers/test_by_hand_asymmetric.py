"""One outer step of Entropy-SGD and of HopfLaxSGD by hand, every hyper-parameter distinct.

The by-hand tests of test_entropy_sgd.py and test_hopf_lax_sgd.py use
beta1 = 0.5 (and Entropy-SGD's eta = m' = 0.5), where `beta1` and `1 - beta1`
coincide: the running mean with its two weights swapped passes them (only
the golden trajectories caught it). Here beta1 = 0.75 and no two
hyper-parameters are equal, so each one's role is checked by the arithmetic.
The rules are docs/math.md sections 3 and 4 (tests/optimizers/reference.py).
"""

import keras
import numpy as np
import tensorflow as tf

import control_opt

NOISELESS = dict(noise=0.0)


def test_entropy_sgd_one_outer_step_by_hand():
    # f = w^2 (g = 2w), w0 = 1, L = 2, eta' = 0.1, m' = 0.6 Nesterov, gamma = 0.2,
    # beta1 = 0.75, eta = 0.3, no outer momentum, no scoping.
    opt = control_opt.EntropySGD(learning_rate=0.3, langevin_steps=2, langevin_learning_rate=0.1,
                                 langevin_momentum=0.6, langevin_nesterov=True, gamma=0.2,
                                 scoping=0.0, mean_decay=0.75, momentum=0.0, **NOISELESS)
    var = keras.Variable(np.array([1.0], np.float32))
    opt.apply_gradients([(2 * var.value, var)])
    # Inner step 1: g = 2, v' = 2, d = 2 + 0.6*2 = 3.2, pull 0 -> w' = 1 - 0.32 = 0.68,
    # mu = 0.75*1 + 0.25*0.68 = 0.92 (swapped weights: 0.76).
    np.testing.assert_allclose(var.numpy(), [0.68], rtol=1e-6)
    np.testing.assert_allclose(opt.anchors[0].numpy(), [1.0])
    opt.apply_gradients([(2 * var.value, var)])
    # Inner step 2: g = 1.36, v' = 0.6*2 + 1.36 = 2.56, d = 1.36 + 0.6*2.56 = 2.896,
    # d -= 0.2*(1 - 0.68) -> 2.832, w' = 0.68 - 0.2832 = 0.3968,
    # mu = 0.75*0.92 + 0.25*0.3968 = 0.7892 (swapped: 0.4876).
    # Outer: a = 1 - 0.7892 = 0.2108, w = 1 - 0.3*0.2108 = 0.93676 (swapped: 0.84628);
    # the probe restarts at w.
    np.testing.assert_allclose(opt.anchors[0].numpy(), [0.93676], rtol=1e-6)
    np.testing.assert_allclose(var.numpy(), [0.93676], rtol=1e-6)
    assert int(opt.outer_step) == 1 and int(opt.inner_step) == 0


def test_hopf_lax_sgd_one_outer_step_by_hand():
    # f = w^2 (g = 2w), w = 1, gamma = 4 (t = 0.25), beta1 = 0.75, L = 3, eta = 0.3, no momentum.
    opt = control_opt.HopfLaxSGD(learning_rate=0.3, momentum=0.0, nesterov=False, inner_steps=3,
                                 gamma=4.0, scoping=0.0, mean_decay=0.75)
    var = keras.Variable(np.array([1.0], np.float32))
    probes = []
    for _ in range(3):
        opt.apply_gradients([(tf.constant(2 * var.numpy()), var)])
        probes.append(float(var.numpy()[0]))
    # l = 0: p = g(1) = 2, w' = 1 - 0.25*2 = 0.5.
    # l = 1: g(0.5) = 1, p = 0.75*2 + 0.25*1 = 1.75 (swapped: 1.25), w' = 1 - 0.25*1.75 = 0.5625.
    # l = 2: g = 1.125, p = 0.75*1.75 + 0.25*1.125 = 1.59375 (swapped: 1.34375);
    #        outer: w = 1 - 0.3*1.59375 = 0.521875 (swapped: 0.596875); the probe restarts at w.
    np.testing.assert_allclose(probes, [0.5, 0.5625, 0.521875], rtol=1e-6)
    np.testing.assert_allclose(opt.anchors[0].numpy(), [0.521875], rtol=1e-6)
