"""The ready-made controls against their closed forms on quadratics (docs/math.md sections 3-4)."""

import numpy as np
import pytest
import tensorflow as tf

from control_opt.formulas import local_entropy
from control_opt.sde.controls import GreedyControl, HopfLaxControl, LocalEntropyControl
from control_opt.sde.simulate import simulate_sde
from tests.mcmc.conftest import Quadratic

LAMBDA = np.array([0.5, 2.0])


def diagonal_loss(w):
    return 0.5 * tf.reduce_sum(tf.constant(LAMBDA, tf.float32) * w**2)


def anchors(num_paths=3):
    return tf.constant(np.linspace([-1.0, 2.0], [1.5, -0.5], num_paths), tf.float32)


def test_greedy_control_is_the_gradient_per_path():
    w = anchors()
    np.testing.assert_allclose(GreedyControl(diagonal_loss)(w, 0.0).numpy(), LAMBDA * w.numpy(), rtol=1e-6)


def test_hopf_lax_control_is_the_moreau_envelope_gradient():
    # f = lambda/2 w^2: p* = lambda w / (1 + t lambda) (docs/math.md section 4).
    t, w = 0.5, anchors()
    control = HopfLaxControl(diagonal_loss, t=t, tolerance=1e-7)
    expected = LAMBDA * w.numpy() / (1.0 + t * LAMBDA)
    np.testing.assert_allclose(control(w, 0.0).numpy(), expected, rtol=1e-4, atol=1e-6)
    report = control.report(w, 0.0)
    assert report.converged.shape == w.shape[:1]  # one verdict per path
    assert bool(tf.reduce_all(report.converged))
    # A schedule t(s) is evaluated at the SDE time (t(0.5) = 0.25: neither t(0) nor 1 / t(0.5)).
    scheduled = HopfLaxControl(diagonal_loss, t=lambda s: 0.5 - 0.5 * s)
    np.testing.assert_allclose(scheduled(w, 0.5).numpy(), LAMBDA * w.numpy() / (1.0 + 0.25 * LAMBDA), rtol=1e-4,
                               atol=1e-6)


def test_local_entropy_control_matches_closed_form():
    # grad F_gamma(w) = gamma A w (A + gamma)^-1 ... on many paths sharing one anchor, averaged.
    q = Quadratic(3, seed=2, condition=4.0)
    gamma, beta = 0.6, 20.0  # not 1: gamma (w - mu) and w - mu must differ
    w_one = np.array([1.0, -0.5, 0.8])
    w = tf.constant(np.tile(w_one, (256, 1)), tf.float32)
    control = LocalEntropyControl(q.loss, gamma=gamma, beta=beta, step_size=0.01, num_steps=200, num_burnin_steps=100)
    a = control(w, 0.0, seed=[1, 2]).numpy()
    expected = gamma * (w_one - q.gibbs_mean(w_one, gamma))
    # Each path's estimate averages 200 correlated SGLD states; across 256 paths the spread gives the error bar.
    stderr = a.std(0) / np.sqrt(a.shape[0])
    np.testing.assert_array_less(np.abs(a.mean(0) - expected), 5 * stderr + 1e-3)
    # Same seed, same control; the estimate is per path (different anchors, different controls).
    np.testing.assert_array_equal(a, control(w, 0.0, seed=[1, 2]).numpy())


def test_local_entropy_control_with_entropy_sgd_running_mean():
    gamma = 0.5  # not 1: gamma (w - mu) and w - mu must differ
    control = LocalEntropyControl(diagonal_loss, gamma=gamma, beta=1e4, step_size=1e-4, num_steps=60, mean_decay=0.75)
    a = control(anchors(), 0.0, seed=3).numpy()
    # Near zero temperature the chain converges to the prox and mu follows it: a -> gamma lambda w / (lambda + gamma).
    expected = gamma * LAMBDA * anchors().numpy() / (LAMBDA + gamma)
    np.testing.assert_allclose(a, expected, rtol=0.05, atol=0.02)


def test_local_entropy_control_calls_the_one_langevin_step(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["learning_rate"])
        return local_entropy.langevin_step(*args, **kwargs)

    monkeypatch.setattr("control_opt.mcmc.sgld_kernel.langevin_step", spy)
    LocalEntropyControl(diagonal_loss, gamma=1.0, beta=10.0, num_steps=2)(anchors(), 0.0, seed=0)
    assert calls


def test_controls_drive_an_sde_on_a_structure_of_weights():
    loss = lambda w: 0.5 * tf.reduce_sum(w["a"] ** 2) + 0.5 * tf.reduce_sum(w["b"] ** 2)
    w0 = {"a": tf.ones([2]), "b": tf.ones([2, 2])}
    # f = 1/2 |w|^2: greedy a = w, Hopf-Lax a = w / (1 + t): E w(T) = (1 - c dt)^N w0 for the Euler recursion
    # (t = 0.25, not 1, where t and 1/t agree).
    for control, c in ((GreedyControl(loss), 1.0), (HopfLaxControl(loss, t=0.25), 0.8),
                       (LocalEntropyControl(loss, gamma=1.0, beta=10.0, num_steps=5), None)):
        result = simulate_sde(control, w0, t_final=0.2, dt=0.05, beta=100.0, num_paths=400, seed=0)
        assert result.final_state["b"].shape == (400, 2, 2)
        assert np.all(np.isfinite(result.control_cost.numpy()))
        if c is not None:
            for part in ("a", "b"):
                x = result.final_state[part].numpy().reshape(400, -1)
                sd = np.sqrt(2 * 0.05 / 100.0 * sum((1 - c * 0.05) ** (2 * k) for k in range(4)))
                np.testing.assert_array_less(np.abs(x.mean(0) - (1 - c * 0.05) ** 4), 5 * sd / np.sqrt(400))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: LocalEntropyControl(diagonal_loss, gamma=0.0, beta=1.0), "`gamma`"),
        (lambda: LocalEntropyControl(diagonal_loss, gamma=1.0, beta=-1.0), "`beta`"),
        (lambda: LocalEntropyControl(diagonal_loss, gamma=1.0, beta=1.0, step_size=0.0), "`step_size`"),
        (lambda: LocalEntropyControl(diagonal_loss, gamma=1.0, beta=1.0, num_steps=0), "`num_steps`"),
        (lambda: LocalEntropyControl(diagonal_loss, gamma=1.0, beta=1.0, mean_decay=1.0), "`mean_decay`"),
        (lambda: HopfLaxControl(diagonal_loss, t=-1.0), "`t`"),
        (lambda: GreedyControl("not a function"), "`loss_fn`"),
    ],
)
def test_bad_arguments_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_local_entropy_control_needs_a_seed():
    with pytest.raises(ValueError, match="`seed`"):
        LocalEntropyControl(diagonal_loss, gamma=1.0, beta=1.0)(anchors(), 0.0)


def test_local_entropy_control_carries_the_factor_gamma():
    # f = lambda/2 w^2: a = gamma (w - <w'>) = lambda gamma w / (lambda + gamma) (docs/math.md section 3), gamma != 1.
    gamma, beta = 2.5, 50.0
    w_one = np.array([1.0, -0.6])
    w = tf.constant(np.tile(w_one, (256, 1)), tf.float32)
    control = LocalEntropyControl(diagonal_loss, gamma=gamma, beta=beta, step_size=0.002, num_steps=200,
                                  num_burnin_steps=100)
    a = control(w, 0.0, seed=[2, 2]).numpy()
    expected = LAMBDA * gamma * w_one / (LAMBDA + gamma)
    stderr = a.std(0) / np.sqrt(a.shape[0])
    np.testing.assert_array_less(np.abs(a.mean(0) - expected), 5 * stderr + 1e-3)
    # Control: without gamma (a = w - <w'> = lambda w / (lambda + gamma)) the closed form is missed.
    assert np.all(np.abs(a.mean(0) - LAMBDA * w_one / (LAMBDA + gamma)) > 5 * stderr + 1e-3)
    # A schedule gamma(s) is evaluated at the SDE time s.
    scheduled = LocalEntropyControl(diagonal_loss, gamma=lambda s: 1.0 + s, beta=beta, step_size=0.002, num_steps=200,
                                    num_burnin_steps=100)
    b = scheduled(w, 1.5, seed=[2, 2]).numpy()
    np.testing.assert_array_less(np.abs(b.mean(0) - expected), 5 * b.std(0) / np.sqrt(256) + 1e-3)
