"""simulate_sde against closed forms: Brownian motion, Ornstein-Uhlenbeck, a known control's cost."""

import numpy as np
import pytest
import tensorflow as tf

from control_opt.sde.controls import Control, GreedyControl
from control_opt.sde import simulate as simulate_module
from control_opt.sde.simulate import simulate_sde
from tests.mcmc.conftest import Quadratic


class ConstantControl(Control):
    """`a(w, s) = c`, with terminal cost `f(w) = 1/2 |w|^2`."""

    def __init__(self, c):
        super().__init__(lambda w: 0.5 * tf.reduce_sum(w**2))
        self.c = tf.constant(c, tf.float32)

    def evaluate(self, w, s, seed):
        return tf.zeros_like(w) + self.c


def zero_control(w, s, *, seed=None):
    return tf.nest.map_structure(tf.zeros_like, w)


def assert_mean_var(samples, mean, var, sigmas=5.0):
    """Sample mean and variance per coordinate within `sigmas` standard errors of the truth."""
    n = samples.shape[0]
    sample_mean, sample_var = samples.mean(0), samples.var(0, ddof=1)
    np.testing.assert_array_less(np.abs(sample_mean - mean), sigmas * np.sqrt(var / n))
    np.testing.assert_array_less(np.abs(sample_var - var), sigmas * var * np.sqrt(2.0 / (n - 1)))


def test_brownian_motion_variance_is_2t_over_beta():
    t_final, beta = 0.8, 4.0
    w0 = {"a": tf.constant([1.0, -2.0]), "b": tf.zeros([2, 2])}
    result = simulate_sde(zero_control, w0, t_final=t_final, dt=0.05, beta=beta, num_paths=4000, seed=[3, 4])
    for part, start in zip(tf.nest.flatten(result.final_state), tf.nest.flatten(w0)):
        samples = part.numpy().reshape(4000, -1)
        assert_mean_var(samples, start.numpy().reshape(-1), 2.0 * t_final / beta)
    np.testing.assert_allclose(result.running_cost.numpy(), 0.0)
    np.testing.assert_allclose(result.terminal_cost.numpy(), 0.0)  # a plain function has no loss_fn


def test_greedy_control_on_quadratic_is_ornstein_uhlenbeck():
    q = Quadratic(3, seed=1, condition=4.0)
    w0 = np.array([1.5, -1.0, 0.5])
    t_final, dt, beta = 1.0, 0.02, 5.0
    result = simulate_sde(GreedyControl(q.loss), tf.constant(w0, tf.float32), t_final=t_final, dt=dt, beta=beta,
                          num_paths=4000, seed=[5, 6])
    # Euler-Maruyama of dw = -A w ds + sqrt(2/beta) dB is the exact linear recursion
    # w_{n+1} = M w_n + sqrt(2 dt / beta) xi_n, M = I - dt A.
    m = np.eye(3) - dt * q.a
    mean, cov = w0.copy(), np.zeros((3, 3))
    for _ in range(round(t_final / dt)):
        mean, cov = m @ mean, m @ cov @ m.T + 2.0 * dt / beta * np.eye(3)
    samples = result.final_state.numpy()
    assert_mean_var(samples, mean, np.diag(cov))
    # ... which is O(dt) from the continuous Ornstein-Uhlenbeck law: mean e^{-AT} w0,
    # covariance (I - e^{-2AT}) A^-1 / beta.
    eigenvalues, vectors = np.linalg.eigh(q.a)
    expm = lambda s: (vectors * np.exp(-s * eigenvalues)) @ vectors.T
    ou_mean, ou_cov = expm(t_final) @ w0, (np.eye(3) - expm(2 * t_final)) @ np.linalg.inv(q.a) / beta
    np.testing.assert_allclose(mean, ou_mean, atol=0.05)
    np.testing.assert_allclose(np.diag(cov), np.diag(ou_cov), rtol=0.1)


def test_control_cost_of_a_constant_control_matches_closed_form():
    c, w0, t_final, beta = np.array([0.5, -1.0]), np.array([1.0, 1.0]), 1.0, 2.0
    result = simulate_sde(ConstantControl(c), tf.constant(w0, tf.float32), t_final=t_final, dt=0.1, beta=beta,
                          num_paths=4000, seed=7)
    # w(T) = w0 - c T + sqrt(2/beta) B(T):  E f(w(T)) = 1/2 (|w0 - cT|^2 + d 2T/beta);  running cost 1/2 |c|^2 T.
    running = 0.5 * np.sum(c**2) * t_final
    expected = 0.5 * (np.sum((w0 - c * t_final) ** 2) + 2 * 2 * t_final / beta) + running
    np.testing.assert_allclose(result.running_cost.numpy(), running, rtol=1e-5)
    assert abs(float(result.cost_mean) - expected) < 5 * float(result.cost_stderr)
    np.testing.assert_allclose(result.control_cost.numpy(), result.terminal_cost.numpy() + result.running_cost.numpy())


def test_same_seed_same_paths_eager_tf_function_and_xla():
    q = Quadratic(2)
    args = dict(t_final=0.5, dt=0.05, beta=10.0, num_paths=16, seed=[1, 2])
    first = simulate_sde(GreedyControl(q.loss), tf.ones(2), **args).final_state
    again = simulate_sde(GreedyControl(q.loss), tf.ones(2), **args).final_state
    other = simulate_sde(GreedyControl(q.loss), tf.ones(2), **dict(args, seed=[1, 3])).final_state
    traced = tf.function(lambda: simulate_sde(GreedyControl(q.loss), tf.ones(2), **args).final_state)()
    compiled = simulate_sde(GreedyControl(q.loss), tf.ones(2), jit_compile=True, **args).final_state
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    np.testing.assert_allclose(first.numpy(), traced.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.numpy(), compiled.numpy(), rtol=1e-5, atol=1e-6)  # same noise under XLA
    assert not np.allclose(first.numpy(), other.numpy())


def test_recorded_paths_start_at_w0_and_end_at_final_state():
    q = Quadratic(2)
    result = simulate_sde(GreedyControl(q.loss), tf.ones(2), t_final=1.0, dt=0.1, beta=10.0, num_paths=5,
                          seed=0, record_paths=True, record_every=3)
    np.testing.assert_allclose(result.times.numpy(), [0.0, 0.3, 0.6, 0.9, 1.0], atol=1e-6)
    assert result.paths.shape == (5, 5, 2)
    np.testing.assert_array_equal(result.paths[0].numpy(), np.ones((5, 2)))
    np.testing.assert_array_equal(result.paths[-1].numpy(), result.final_state.numpy())


def test_per_path_initial_states():
    w0 = tf.constant([[0.0], [10.0]])
    result = simulate_sde(zero_control, w0, t_final=0.1, dt=0.1, beta=1e6, num_paths=2, seed=0, per_path_w0=True)
    np.testing.assert_allclose(result.final_state.numpy(), w0.numpy(), atol=0.01)


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(beta=0.0), "`beta`"),
        (dict(dt=-0.1), "`dt`"),
        (dict(t_final=0.0), "`t_final`"),
        (dict(num_paths=0), "`num_paths`"),
        (dict(dt=2.0), "`dt`"),
        (dict(dt=1.4), "`dt`.*must not exceed `t_final`"),
        (dict(w0=tf.constant([1.0, np.nan])), "`w0`"),
        (dict(seed=None), "`seed`"),
        (dict(control=lambda w, s, seed=None: [w, w]), "`control`"),
        (dict(control=lambda w, s, seed=None: w[:, :1]), "`control`"),
    ],
)
def test_bad_input_names_the_argument(override, match):
    args = dict(control=zero_control, w0=tf.ones(2), t_final=1.0, dt=0.1, beta=1.0, num_paths=4, seed=0)
    args.update(override)
    control = args.pop("control")
    with pytest.raises(ValueError, match=match):
        simulate_sde(control, args.pop("w0"), **args)


def test_terminal_cost_with_a_mismatched_structure_names_loss_and_w0():
    loss = lambda w: tf.reduce_sum(w["a"] ** 2)  # expects a dict
    with pytest.raises(ValueError, match="`terminal_cost`.*`w0`"):
        simulate_sde(GreedyControl(loss), tf.ones(2), t_final=1.0, dt=0.1, beta=1.0, num_paths=2, seed=0)


def test_divergence_is_an_error_not_a_nan_result():
    steep = GreedyControl(lambda w: 50.0 * tf.reduce_sum(w**2))
    with pytest.raises(ValueError, match="NaN or Inf"):
        simulate_sde(steep, tf.ones(2), t_final=20.0, dt=0.5, beta=1.0, num_paths=2, seed=0)


def test_the_control_is_evaluated_at_the_left_end_of_each_step():
    # a(w, s) = s + w/2, noise off: Euler gives w_{n+1} = w_n (1 - dt/2) - s_n dt with s_n = n dt (not (n+1) dt),
    # running cost 1/2 sum_n a(w_n, s_n)^2 dt. Reference: the recursion written out here.
    control = lambda w, s, *, seed=None: s + 0.5 * w
    t_final, dt, w0 = 1.0, 0.1, 2.0
    result = simulate_sde(control, tf.constant([w0]), t_final=t_final, dt=dt, beta=1e12, num_paths=2, seed=0,
                          record_paths=True)
    w, path, running = w0, [w0], 0.0
    for n in range(10):
        a = n * dt + 0.5 * w
        running += 0.5 * a**2 * dt
        w = w - a * dt
        path.append(w)
    np.testing.assert_allclose(result.paths.numpy()[:, 0, 0], path, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.running_cost.numpy(), running, rtol=1e-5)
    np.testing.assert_allclose(result.times.numpy(), np.arange(11) * dt, atol=1e-6)


@pytest.mark.parametrize("dt, steps", [(1.0, 1), (0.7, 1), (0.3, 3), (0.26, 4), (0.1, 10)])
def test_dt_rule_round_t_over_dt_steps_of_size_t_over_n(dt, steps):
    result = simulate_sde(zero_control, tf.ones(1), t_final=1.0, dt=dt, beta=1.0, num_paths=2, seed=0,
                          record_paths=True)
    assert result.dt == pytest.approx(1.0 / steps)
    assert result.times.shape == (steps + 1,)


def test_repeated_simulations_with_new_numbers_trace_once():
    control = GreedyControl(lambda w: 0.5 * tf.reduce_sum(w**2))
    before = simulate_module.TRACE_COUNT["simulate_sde"]
    for i, (t_final, dt, beta) in enumerate([(1.0, 0.1, 10.0), (0.5, 0.05, 3.0), (2.0, 0.25, 1e6)]):
        result = simulate_sde(control, tf.constant([1.0 + i]), t_final=t_final, dt=dt, beta=beta, num_paths=4000,
                              seed=[i, 1])
        # The traced function uses the new numbers: mean (1 - dt)^N w0 of the Euler recursion.
        steps = round(t_final / dt)
        mean = (1 - dt) ** steps * (1.0 + i)
        var = 2 * dt / beta * sum((1 - dt) ** (2 * k) for k in range(steps))
        assert_mean_var(result.final_state.numpy(), np.array([mean]), np.array([var]))
    assert simulate_module.TRACE_COUNT["simulate_sde"] - before == 1


def test_a_nan_or_integer_loss_is_named_not_blamed_on_dt():
    with pytest.raises(ValueError, match="`terminal_cost` is nan at `w0`.*not finite at the starting point"):
        simulate_sde(GreedyControl(lambda w: tf.reduce_sum(tf.math.log(w))), tf.constant([-1.0]), t_final=1.0,
                     dt=0.1, beta=1.0, num_paths=2, seed=0)
    with pytest.raises(ValueError, match="`terminal_cost` is inf at `w0\\[1\\]`"):
        simulate_sde(GreedyControl(lambda w: -tf.reduce_sum(tf.math.log(w))), tf.constant([[1.0], [0.0]]),
                     t_final=1.0, dt=0.1, beta=1.0, num_paths=2, seed=0, per_path_w0=True)
    with pytest.raises(ValueError, match="`terminal_cost` must return a floating-point value.*int32"):
        simulate_sde(GreedyControl(lambda w: tf.reduce_sum(tf.cast(w > 0, tf.int32))), tf.ones(1), t_final=1.0,
                     dt=0.1, beta=1.0, num_paths=2, seed=0)


def test_the_trace_cache_does_not_keep_controls_alive():
    import gc
    import weakref

    control = GreedyControl(lambda w: 0.5 * tf.reduce_sum(w**2))
    ref = weakref.ref(control)
    simulate_sde(control, tf.ones(2), t_final=0.2, dt=0.1, beta=10.0, num_paths=3, seed=0)
    del control
    gc.collect()
    assert ref() is None
