"""Euler-Maruyama simulation of the controlled training SDE and its control cost.

Training as stochastic optimal control (Chaudhari et al., Deep Relaxation [1],
section 2; docs/math.md section 1):

    dw = -a(w, s) ds + sqrt(2 / beta) dB(s),      0 <= s <= T,

with cost, per path,

    C = f(w(T)) + 1/2 ∫_0^T |a(w(s), s)|^2 ds.

Euler-Maruyama with `N = round(T / dt)` steps (`dt <= T` required) of size
`T / N`, `s_n = n T / N`:

    w_{n+1} = w_n - a(w_n, s_n) dt + sqrt(2 dt / beta) xi_n,     xi_n ~ N(0, I),

and the running cost by the left-point rule `1/2 sum_n |a(w_n, s_n)|^2 dt`.
All paths are one batch (a leading paths axis on every part of `w`), the loop
is a `tf.while_loop` inside one `tf.function`, and step `n` draws its noise
and the control's seed from `fold_in(seed, n)`: the same seed gives the same
paths, in eager mode, under `tf.function` and under XLA. The `tf.function` is
cached per control and static configuration (terminal cost, recording,
XLA; `t_final`, `dt`, `beta` and `seed` are tensor arguments), so repeated
simulations with new numbers do not retrace (docs/math.md section 1).

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
      https://arxiv.org/abs/1704.04932
"""

from __future__ import annotations

import collections
import math
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal import checks, sampling, structures
from control_opt.sde import controls as _controls

__all__ = ["SDEResult", "simulate_sde"]

# Traces of the cached simulation functions (a Python side effect of tracing), for tests.
TRACE_COUNT = collections.Counter()
_CACHE = structures.TraceCache()


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
    """`N = round(t_final / dt)` steps of size `t_final / N`; `dt > t_final` is an error.

    With `dt <= t_final`, `N >= 1` and the step used is within a factor
    `[2/3, 2]` of `dt` (e.g. `dt = 0.7, t_final = 1` gives one step of 1).
    """
    t_final, dt = float(t_final), float(dt)
    if dt > t_final * (1.0 + 1e-12):
        raise ValueError(f"`dt` ({dt}) must not exceed `t_final` ({t_final}): N = round(t_final / dt) >= 1 steps.")
    return max(1, int(round(t_final / dt)))


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
      dt: step, `0 < dt <= t_final`; the simulation takes `N = round(T / dt)`
        steps of size `T / N` (returned as `SDEResult.dt`), so they tile `[0, T]`
        exactly. `dt > t_final` is an error (no rounding up to one step).
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
      ValueError: non-positive `t_final`, `dt`, `beta`, `num_paths`; `dt >
        t_final`; NaN/Inf in `w0`; a `terminal_cost` that cannot be evaluated
        at `w0`, returns a non-float (no silent cast), or is NaN/Inf there (the
        loss, not the simulation, is then named); a control
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
        name = "terminal_cost"  # the control's `loss_fn` by default
        structures.evaluate_loss_at(terminal_cost, one, name, "w0", check_gradient=isinstance(control, _controls.Control))

    num_steps = _num_steps(t_final, dt)
    step = float(t_final) / num_steps
    dtype = tf.nest.flatten(w_start)[0].dtype
    noise_scale = math.sqrt(2.0 * step / float(beta))
    recorded = list(range(0, num_steps + 1, record_every))
    if recorded[-1] != num_steps:
        recorded.append(num_steps)
    seed = tfp.random.sanitize_seed(seed)
    static_steps = num_steps if record_paths else None  # the recording schedule is static

    def build(control_ref):
        def simulate(w_start, seed, step, noise_scale, num_steps):
            TRACE_COUNT["simulate_sde"] += 1
            return _simulate(control_ref(), terminal_cost, w_start, seed, step, noise_scale,
                             static_steps if static_steps is not None else num_steps,
                             recorded if record_paths else None)

        if not tf.executing_eagerly():
            return simulate
        return tf.function(simulate, jit_compile=jit_compile, autograph=False)

    key = (terminal_cost, bool(record_paths), tuple(recorded) if record_paths else None, bool(jit_compile))
    run = _CACHE.get(control, key, build) if tf.executing_eagerly() else build(lambda: control)
    w, running, terminal, paths, initial = run(
        w_start, seed, tf.constant(step, dtype), tf.constant(noise_scale, dtype), tf.constant(num_steps, tf.int32)
    )
    if terminal_cost is not None and tf.executing_eagerly() and not np.all(np.isfinite(initial.numpy())):
        # Per path (with `per_path_w0` the paths start apart): the loss, not the simulation, is not finite.
        bad = int(np.flatnonzero(~np.isfinite(initial.numpy()))[0])
        raise ValueError(f"`terminal_cost` is {initial.numpy()[bad]} at `w0[{bad}]`: the loss itself is not finite "
                         "at the starting point (before any step of the simulation).")
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
                "the simulation produced NaN or Inf (the control or the noise diverged; the terminal cost is finite "
                "at `w0`): reduce `dt`, check the control, or lower the temperature 1/`beta`."
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


def _check_control(a, w):
    try:
        tf.nest.assert_same_structure(w, a)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`control` must return the structure of `w`: {error}") from error
    for a_part, w_part in zip(tf.nest.flatten(a), tf.nest.flatten(w)):
        if not a_part.shape.is_compatible_with(w_part.shape):
            raise ValueError(f"`control` returned a part of shape {a_part.shape} for `w` of shape {w_part.shape}.")
    return tf.nest.map_structure(lambda a_part, w_part: tf.cast(a_part, w_part.dtype), a, w)


def _simulate(control, terminal_cost, w_start, seed, step, noise_scale, num_steps, recorded):
    """The Euler-Maruyama loop (graph code); `recorded` is None or the static list of recorded steps."""
    dtype = tf.nest.flatten(w_start)[0].dtype
    num_paths = tf.shape(tf.nest.flatten(w_start)[0])[0]

    def body(n, w, running, arrays):
        noise_seed, control_seed = tf.unstack(sampling.split_seed(sampling.fold_in(seed, n), 2, "simulate_sde"))
        s = tf.cast(n, dtype) * step  # s_n: the control is evaluated at the left end of the step
        a = _check_control(control(w, s, seed=control_seed), w)
        xi = sampling.standard_normal_like(w, noise_seed, "sde_noise")
        w = tf.nest.map_structure(lambda w_, a_, x_: w_ - a_ * step + noise_scale * x_, w, a, xi)
        running = running + 0.5 * step * structures.squared_norm(a, 1)
        if recorded is not None:
            slot = tf.searchsorted(tf.constant(recorded), tf.reshape(n + 1, [1]))[0]
            write = tf.reduce_any(tf.equal(tf.constant(recorded), n + 1))
            arrays = [
                tf.cond(write, lambda ta=ta, x=x: ta.write(slot, x), lambda ta=ta: ta)
                for ta, x in zip(arrays, tf.nest.flatten(w))
            ]
        return n + 1, w, running, arrays

    arrays = []
    if recorded is not None:
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
        initial = tf.cast(structures.batched_loss(terminal_cost, w_start, 1), dtype)  # checked for NaN by the caller
    else:
        terminal = initial = tf.zeros([num_paths], dtype)
    paths = tf.nest.pack_sequence_as(w_start, [ta.stack() for ta in arrays]) if recorded is not None else None
    return w, running, terminal, paths, initial
