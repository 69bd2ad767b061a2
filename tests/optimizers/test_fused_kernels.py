"""The in-place Langevin step and running mean (TensorFlow's fused training kernels)
against the tensor formulas they stand for, and the per-step noise draw."""

import numpy as np
import pytest
import tensorflow as tf

import control_opt
from control_opt._internal import sampling
from control_opt.formulas import local_entropy

TOLERANCE = {tf.float32: 2e-6, tf.float64: 1e-14}  # relative: a few ulp of the distributed products


def _state(dtype, seed=0, shape=(5, 7)):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=shape), dtype) for _ in range(5)]


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("with_noise", [False, True])
def test_in_place_langevin_step_is_the_tensor_formula(dtype, momentum, nesterov, with_noise):
    probe, velocity, gradient, anchor, noise = _state(dtype)
    noise = 1e-2 * noise if with_noise else None
    kwargs = dict(learning_rate=0.1, gamma=tf.constant(0.3, dtype), momentum=momentum, nesterov=nesterov,
                  noise=noise)
    expected_probe, expected_velocity = local_entropy.langevin_step(probe, gradient, anchor, velocity, **kwargs)
    probe_var, velocity_var = tf.Variable(probe), tf.Variable(velocity)
    returned = local_entropy.langevin_step_in_place(probe_var, velocity_var if momentum else None, gradient,
                                                    anchor, **kwargs)
    scale = float(tf.reduce_max(tf.abs(expected_probe)))
    np.testing.assert_allclose(probe_var.numpy(), expected_probe.numpy(), rtol=0, atol=TOLERANCE[dtype] * scale)
    np.testing.assert_array_equal(returned.numpy(), probe_var.numpy())
    if momentum:
        np.testing.assert_allclose(velocity_var.numpy(), expected_velocity.numpy(), rtol=TOLERANCE[dtype])
    else:
        np.testing.assert_array_equal(velocity_var.numpy(), velocity.numpy())  # untouched


def test_the_comparison_tells_nesterov_from_heavy_ball():
    # Control: the tolerance above is far below the difference between two different steps.
    probe, velocity, gradient, anchor, _ = _state(tf.float32)
    kwargs = dict(learning_rate=0.1, gamma=0.3, momentum=0.9)
    heavy, _ = local_entropy.langevin_step(probe, gradient, anchor, velocity, nesterov=False, **kwargs)
    probe_var = tf.Variable(probe)
    local_entropy.langevin_step_in_place(probe_var, tf.Variable(velocity), gradient, anchor, nesterov=True, **kwargs)
    assert np.abs(probe_var.numpy() - heavy.numpy()).max() > 1e3 * TOLERANCE[tf.float32]


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_in_place_running_mean_is_the_tensor_formula(dtype):
    mean, probe = _state(dtype)[:2]
    variable = tf.Variable(mean)
    local_entropy.running_mean_in_place(variable, probe, 0.75)
    np.testing.assert_allclose(variable.numpy(), local_entropy.running_mean(mean, probe, 0.75).numpy(),
                               rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_step_noise_is_one_draw_per_dtype_split_across_the_variables():
    optimizer = control_opt.EntropySGD(noise=1e-3, langevin_learning_rate=0.1, seed=7)
    variables = [tf.Variable(tf.zeros((3, 4))), tf.Variable(tf.zeros((5,))), tf.Variable(tf.zeros((2,), tf.float64)),
                 tf.Variable(tf.zeros((2, 2)))]
    optimizer.build(variables)
    step = tf.constant(11, tf.int64)
    noise = optimizer.draw_step_noise(variables, step, 2.0)
    assert sorted(noise) == [0, 1, 2, 3]
    # float32 stream 0: one draw of 12 + 5 + 4 numbers, split in the optimizer's variable order.
    flat = sampling.standard_normal([21], optimizer._noise_seed_of(0, step), tf.float32, bits=16)
    np.testing.assert_array_equal(noise[0].numpy(), 2.0 * flat[:12].numpy().reshape(3, 4))
    np.testing.assert_array_equal(noise[1].numpy(), 2.0 * flat[12:17].numpy())
    np.testing.assert_array_equal(noise[3].numpy(), 2.0 * flat[17:].numpy().reshape(2, 2))
    # float64: a stream of its own.
    assert noise[2].dtype == tf.float64
    expected = 2.0 * sampling.standard_normal([2], optimizer._noise_seed_of(1, step), tf.float64, bits=16)
    np.testing.assert_array_equal(noise[2].numpy(), expected.numpy())
    # The next step draws other numbers; the same step the same (stateless).
    again = optimizer.draw_step_noise(variables, step, 2.0)
    np.testing.assert_array_equal(again[0].numpy(), noise[0].numpy())
    other = optimizer.draw_step_noise(variables, step + 1, 2.0)
    assert not np.allclose(other[0].numpy(), noise[0].numpy())


def test_on_one_device_the_outer_step_is_a_function_call_not_switch_merge():
    """The per-step conditionals (`AnchoredOptimizer._step_cond`) stay unlowered `If`s on one
    device, so the untaken outer step is not walked as dead ops; the step is unchanged."""
    variables = [tf.Variable(tf.ones((3,))), tf.Variable(tf.ones((2, 2)))]
    grads = [tf.fill((3,), 0.5), tf.fill((2, 2), -0.25)]

    def trained(optimizer_class):
        optimizer = optimizer_class(learning_rate=0.5, langevin_steps=2, noise=0.0, seed=1)
        for variable, value in zip(variables, (tf.ones((3,)), tf.ones((2, 2)))):
            variable.assign(value)
        step = tf.function(lambda: optimizer.apply_gradients(zip(grads, variables)))
        for _ in range(5):
            step()
        ifs = [op for op in step.get_concrete_function().graph.get_operations() if op.type in ("If", "StatelessIf")]
        return [v.numpy() for v in variables], ifs

    unlowered, ifs = trained(control_opt.EntropySGD)
    assert len(ifs) == 2  # restore probes, outer step
    assert all(op.get_attr("_lower_using_switch_merge") is False for op in ifs)
    # The control: the same optimizer with plain tf.cond (lowered) takes the same steps.
    lowered_class = type("LoweredEntropySGD", (control_opt.EntropySGD,), {"_UNLOWERED_CONDS": False})
    lowered, lowered_ifs = trained(lowered_class)
    assert all(op.get_attr("_lower_using_switch_merge") is True for op in lowered_ifs)
    for a, b in zip(unlowered, lowered):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(unlowered[0], 1.0)
