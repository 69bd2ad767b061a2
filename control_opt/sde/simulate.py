"""Euler-Maruyama simulation of the controlled training SDE and its control cost.

Training as stochastic optimal control (Chaudhari et al., Deep Relaxation [1],
section 2; DESIGN.md section 1):

    dw = -a(w, s) ds + sqrt(2 / beta) dB(s),      0 <= s <= T,

with cost, per path,

    C = f(w(T)) + 1/2 ∫_0^T |a(w(s), s)|^2 ds.

Euler-Maruyama with `N = T / dt` steps, `s_n = n dt`:

    w_{n+1} = w_n - a(w_n, s_n) dt + sqrt(2 dt / beta) xi_n,     xi_n ~ N(0, I),

and the running cost by the left-point rule `1/2 sum_n |a(w_n, s_n)|^2 dt`.
All paths are one batch (a leading paths axis on every part of `w`), the loop
is a `tf.while_loop` inside one `tf.function`, and step `n` draws its noise
and the control's seed from `fold_in(seed, n)`: the same seed gives the same
paths, in eager mode, under `tf.function` and under XLA.

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
      https://arxiv.org/abs/1704.04932
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal import checks, sampling, structures

__all__ = ["SDEResult", "simulate_sde"]


class SDEResult(NamedTuple):
    """What `simulate_sde` returns.

    Attributes:
      final_state: `w(T)`, the structure of `w0` with a leading paths axis.
      control_cost: `C` per path, shape `[num_paths]`.
      cost_mean: mean of `C` over paths.
      cost_stderr: its standard error, `std(C) / sqrt(num_paths)`.
      running_cost: `1/2 ∫ |a|^2 ds` per path.
      terminal_cost: `f(w(T))` per path (zeros without a terminal cost).
      times: the recorded times, shape `[num_recorded]` (only `[T]` without paths).
      paths: with `record_paths`, the structure of `w0` with leading axes
        `[num_recorded, num_paths]` (including `w(0)`); else None.
      dt: the step actually used, `T / N`.
    """

    final_state: Any
    control_cost: Any
    cost_mean: Any
    cost_stderr: Any
    running_cost: Any
    terminal_cost: Any
    times: Any
    paths: Any
    dt: float


def _num_steps(t_final, dt):
    steps = int(round(float(t_final) / float(dt)))
    if steps < 1:
        raise ValueError(f"`dt` ({dt}) must not exceed `t_final` ({t_final}).")
    return steps


def simulate_sde(
    control,
    w0,
    *,
    t_final,
    dt,
    beta,
    num_paths,
    seed,
    terminal_cost=None,
    record_paths=False,
    record_every=1,
    per_path_w0=False,
    jit_compile=False,
):
    """Simulates `dw = -a(w, s) ds + sqrt(2/beta) dB` on `num_paths` independent paths.

    Example:
      >>> f = lambda w: 0.5 * tf.reduce_sum(w ** 2)
      >>> result = simulate_sde(GreedyControl(f), tf.ones(3), t_final=1.0, dt=0.01,
      ...                       beta=10.0, num_paths=256, seed=[0, 1])
      >>> result.cost_mean, result.cost_stderr

    Args:
      control: `control(w, s, *, seed) -> a` (see `control_opt.sde.controls`);
        `w` and `a` carry a leading paths axis.
      w0: the initial weights, a tensor or nested structure, shared by every
        path (or, with `per_path_w0`, already carrying the paths axis).
      t_final: horizon `T > 0`.
      dt: step `> 0`; rounded so that `N = round(T / dt)` steps tile `[0, T]`.
      beta: inverse temperature `> 0` (noise `sqrt(2/beta) dB`).
      num_paths: number of independent paths, a positive integer.
      seed: a stateless seed (int or shape-[2] int tensor).
      terminal_cost: `f` for the cost's `f(w(T))`, written for one weight
        structure; default `control.loss_fn`, and no terminal term (zero)
        for a control without one.
      record_paths: also return the trajectory.
      record_every: record every this many steps (and always `w(T)`).
      per_path_w0: `w0` has a leading axis of length `num_paths`.
      jit_compile: compile the simulation with XLA.

    Returns:
      An `SDEResult`.

    Raises:
      ValueError: non-positive `t_final`, `dt`, `beta`, `num_paths`; NaN/Inf
        in `w0`; a `terminal_cost` that cannot be evaluated at `w0`; a control
        that returns a structure or shape other than `w`'s; a simulation that
        produced NaN/Inf (eager mode; under `tf.function` an assertion fails).
    """
    if not callable(control):
        raise ValueError(f"`control` must be callable as `control(w, s, seed=...)`, got {type(control).__name__}.")
    checks.check_positive("t_final", t_final, tensor=True)
    checks.check_positive("dt", dt, tensor=True)
    checks.check_positive("beta", beta, tensor=True)
    if isinstance(num_paths, bool) or not isinstance(num_paths, (int, np.integer)) or num_paths < 1:
        raise ValueError(f"`num_paths` must be a positive integer, got {num_paths!r}.")
    if not isinstance(record_every, (int, np.integer)) or record_every < 1:
        raise ValueError(f"`record_every` must be a positive integer, got {record_every!r}.")
    if seed is None:
        raise ValueError("`seed` must be given (explicit stateless seeds).")
    num_paths = int(num_paths)
    w0 = structures.check_finite(structures.as_tensors(w0, "w0"), "w0")
    if per_path_w0:
        for part in tf.nest.flatten(w0):
            if part.shape.rank == 0 or part.shape[0] != num_paths:
                raise ValueError(f"with `per_path_w0`, every part of `w0` needs a leading axis of {num_paths} paths, got {part.shape}.")
        w_start = w0
    else:
        w_start = tf.nest.map_structure(lambda x: tf.tile(x[tf.newaxis], [num_paths] + [1] * x.shape.rank), w0)

    if terminal_cost is None:
        terminal_cost = getattr(control, "loss_fn", None)
    if terminal_cost is not None:
        one = tf.nest.map_structure(lambda x: x[0], w_start)
        structures.evaluate_loss_at(terminal_cost, one, "terminal_cost", "w0")

    num_steps = _num_steps(t_final, dt)
    step = float(t_final) / num_steps
    dtype = tf.nest.flatten(w_start)[0].dtype
    noise_scale = math.sqrt(2.0 * step / float(beta))
    recorded = list(range(0, num_steps + 1, record_every))
    if recorded[-1] != num_steps:
        recorded.append(num_steps)
    seed = tfp.random.sanitize_seed(seed)

    def check_control(a, w):
        try:
            tf.nest.assert_same_structure(w, a)
        except (TypeError, ValueError) as error:
            raise ValueError(f"`control` must return the structure of `w`: {error}") from error
        for a_part, w_part in zip(tf.nest.flatten(a), tf.nest.flatten(w)):
            if not a_part.shape.is_compatible_with(w_part.shape):
                raise ValueError(f"`control` returned a part of shape {a_part.shape} for `w` of shape {w_part.shape}.")
        return tf.nest.map_structure(lambda a_part, w_part: tf.cast(a_part, w_part.dtype), a, w)

    def simulate(w_start, seed):
        def body(n, w, running, arrays):
            noise_seed, control_seed = tf.unstack(
                sampling.split_seed(sampling.fold_in(seed, n), 2, "simulate_sde")
            )
            s = tf.cast(n, dtype) * step
            a = check_control(control(w, s, seed=control_seed), w)
            xi = sampling.standard_normal_like(w, noise_seed, "sde_noise")
            w = tf.nest.map_structure(lambda w_, a_, x_: w_ - a_ * step + noise_scale * x_, w, a, xi)
            running = running + 0.5 * step * structures.squared_norm(a, 1)
            if record_paths:
                slot = tf.searchsorted(tf.constant(recorded), tf.reshape(n + 1, [1]))[0]
                write = tf.reduce_any(tf.equal(tf.constant(recorded), n + 1))
                arrays = [
                    tf.cond(write, lambda ta=ta, x=x: ta.write(slot, x), lambda ta=ta: ta)
                    for ta, x in zip(arrays, tf.nest.flatten(w))
                ]
            return n + 1, w, running, arrays

        arrays = []
        if record_paths:
            arrays = [
                tf.TensorArray(part.dtype, size=len(recorded), element_shape=part.shape).write(0, part)
                for part in tf.nest.flatten(w_start)
            ]
        running = tf.zeros([num_paths], dtype)
        _, w, running, arrays = tf.while_loop(
            lambda n, *_: n < num_steps,
            body,
            (tf.constant(0), w_start, running, arrays),
            maximum_iterations=num_steps,
        )
        if terminal_cost is not None:
            terminal = tf.cast(structures.batched_loss(terminal_cost, w, 1), dtype)
        else:
            terminal = tf.zeros([num_paths], dtype)
        paths = tf.nest.pack_sequence_as(w_start, [ta.stack() for ta in arrays]) if record_paths else None
        return w, running, terminal, paths

    if tf.executing_eagerly():
        simulate = tf.function(simulate, jit_compile=jit_compile, autograph=False)
    w, running, terminal, paths = simulate(w_start, seed)
    cost = terminal + running
    mean = tf.reduce_mean(cost)
    stderr = (
        tf.math.reduce_std(cost) * math.sqrt(num_paths / (num_paths - 1)) / math.sqrt(num_paths)
        if num_paths > 1
        else tf.constant(float("nan"), dtype)
    )
    everything = [*tf.nest.flatten(w), cost]
    if tf.executing_eagerly():
        if not all(np.all(np.isfinite(x.numpy())) for x in everything):
            raise ValueError(
                "the simulation produced NaN or Inf (the control or the noise diverged): reduce `dt`, "
                "check the control, or lower the temperature 1/`beta`."
            )
    else:
        w = structures.check_finite(w, "final_state")
        cost = tf.debugging.assert_all_finite(cost, "the simulated control cost contains NaN or Inf")
    times = tf.constant([n * step for n in recorded] if record_paths else [num_steps * step], dtype)
    return SDEResult(
        final_state=w,
        control_cost=cost,
        cost_mean=mean,
        cost_stderr=stderr,
        running_cost=running,
        terminal_cost=terminal,
        times=times,
        paths=paths,
        dt=step,
    )
