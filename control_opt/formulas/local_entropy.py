"""The formulas of local entropy, written once.

Every piece of the library that touches the local Gibbs measure calls these
functions: the Keras optimizers (`EntropySGD`, `EntropyAdam`, `Parle`), the
`tfp.mcmc` stochastic-gradient Langevin kernel and the analysis tools. They act
on plain tensors of any shape (apply them per part with `tf.nest` for a
structure of tensors) and make their structural choices (momentum or not,
noise or not) in Python, so a traced graph holds only the ops it needs. The
Keras optimizers apply the chain with `langevin_step_in_place` and
`running_mean_in_place`: the same formulas, emitted as TensorFlow's fused
training kernels on the slot variables (fewer ops per variable per step;
equal to the tensor forms up to float rounding, which the tests check).

Local Gibbs measure around the anchor `w` (Chaudhari et al., ICLR 2017, eq. 3):

    p(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2]),      beta = 1 / eps^2

Its SGLD chain (docs/math.md section 3), with `g = grad f(w')` at the probe `w'`:

    v' <- m' v' + g ;   d = g + m' v' (Nesterov) | v' (heavy ball) | g (m' = 0)
    d  <- d - gamma (w - w')
    w' <- w' - eta' d + eps sqrt(2 eta') xi,         xi ~ N(0, I)
    mu <- beta1 mu + (1 - beta1) w'

and the control read from it, `a = w - mu` (the authors' code; the paper's
`grad F_gamma(w) = gamma (w - <w'>)` multiplies it by gamma).

References:
  [1] P. Chaudhari, A. Choromanska, S. Soatto, Y. LeCun, C. Baldassi, C. Borgs,
      J. Chayes, L. Sagun, R. Zecchina. Entropy-SGD: Biasing gradient descent
      into wide valleys. ICLR 2017. https://arxiv.org/abs/1611.01838
"""

from __future__ import annotations

import tensorflow as tf

from control_opt.formulas.momentum import momentum_direction, parle_code_direction

__all__ = [
    "exponential_scope",
    "langevin_noise_scale",
    "langevin_step",
    "langevin_step_in_place",
    "parle_code_langevin_step",
    "local_entropy_control",
    "running_mean",
    "running_mean_in_place",
]


def exponential_scope(gamma0, scoping, outer_step):
    """Scope `gamma_k = gamma0 (1 + gamma1)^k` ("scoping", [1] section 4.3).

    Args:
      gamma0: initial scope.
      scoping: gamma1, the growth rate per outer step.
      outer_step: k, the number of completed outer steps (tensor or number).
    """
    gamma0 = tf.convert_to_tensor(gamma0)
    k = tf.cast(outer_step, gamma0.dtype)
    # `1 + gamma1` straight in gamma0's dtype: `tf.cast` of a Python float would
    # round it to float32 first (a float64 gamma_k off by ~1e-8).
    growth = (tf.convert_to_tensor(1.0 + scoping, dtype=gamma0.dtype) if isinstance(scoping, (int, float))
              else tf.cast(1.0 + scoping, gamma0.dtype))
    return gamma0 * tf.pow(growth, k)


def langevin_step(
    probe,
    gradient,
    anchor,
    velocity=None,
    *,
    learning_rate,
    gamma,
    momentum=0.0,
    nesterov=False,
    noise=None,
):
    """One stochastic-gradient Langevin step on the local Gibbs measure.

        v' <- m' v' + g ;  d = g + m' v' (Nesterov) | v' | g (m' = 0)
        d  <- d - gamma (w - w')
        w' <- w' - eta' d + noise

    Args:
      probe: w', the current state of the chain.
      gradient: g, a (minibatch) gradient of f at the probe, weight decay
        already added.
      anchor: w, the centre of the coupling term.
      velocity: v', the Langevin momentum buffer; ignored when `momentum` is 0.
      learning_rate: eta', the Langevin step size.
      gamma: the scope (coupling strength); a tensor or number.
      momentum: m', a Python number (its zero-ness decides the graph).
      nesterov: Nesterov form of the momentum.
      noise: `None` for a noiseless step, or the already scaled Gaussian
        increment `eps * sqrt(2 eta') * xi` (see `langevin_noise_scale`).

    Returns:
      `(new_probe, new_velocity)`; `new_velocity` is `None` when `momentum` is 0.
    """
    direction, velocity = momentum_direction(gradient, velocity, momentum, nesterov)
    direction = direction + gamma * (probe - anchor)
    new_probe = probe - learning_rate * direction
    if noise is not None:
        new_probe = new_probe + noise
    return new_probe, velocity


def parle_code_langevin_step(probe, gradient, anchor, velocity=None, *, learning_rate, gamma, momentum=0.0,
                             noise=None):
    """The inner step of the Parle authors' code (`Parle(authors_code=True)`).

        g  <- g + gamma (w' - w)                  (the coupling enters first ...)
        v' <- m' v' + g ;  d = g + v'             (... and goes into the buffer)
        w' <- w' - eta' d + noise

    `langevin_step` adds the coupling after the momentum, outside the buffer,
    and uses `d = g + m' v'` (Nesterov); docs/distributed.md section 5.3
    lists what that changes. Returns `(new_probe, new_velocity)`;
    `new_velocity` is None when `velocity` is None (`momentum` 0: `d = 2 g`).
    """
    gradient = gradient + gamma * (probe - anchor)
    direction, new_velocity = parle_code_direction(gradient, velocity, momentum)
    new_probe = probe - learning_rate * direction
    if noise is not None:
        new_probe = new_probe + noise
    return new_probe, (None if velocity is None else new_velocity)


def langevin_step_in_place(probe, velocity, gradient, anchor, *, learning_rate, gamma, momentum=0.0,
                           nesterov=False, noise=None, coupling_rate=None, probe_value=None):
    """`langevin_step` applied to the variables `probe` (w') and `velocity`
    (v', None when `momentum` is 0) in place, with TensorFlow's fused training
    kernels: returns the new probe (a read after the update).

    The same step, split where a fused kernel exists:

        s  = w' - w                                           (from the old w')
        ResourceApplyMomentum:  v' <- m' v' + g ;  w' <- w' - eta' (g + m' v')   (Nesterov)
                                              or   w' <- w' - eta' v'           (heavy ball)
        ResourceApplyGradientDescent:              w' <- w' - eta' g           (m' = 0)
        ResourceApplyGradientDescent:              w' <- w' - (eta' gamma) s   (the coupling)
        w' <- w' + noise

    which is `w' - eta' [d + gamma (w' - w)] + noise` of `langevin_step`
    with the products distributed: equal up to float rounding (a few ulp;
    tests/optimizers/test_fused_kernels.py compares the two). TensorFlow's `ApplyMomentum` keeps the
    buffer in this convention (`accum <- m accum + g`, the Lua/PyTorch one, not
    Keras' `-eta g` one), and has CPU, GPU and XLA kernels. Three ops after
    the read (four with noise) instead of about ten element-wise passes.

    Args:
      probe, velocity: `tf.Variable`s (or a distributed variable's component
        inside `strategy.extended.update` / replica context).
      gradient, anchor: tensors; `gamma` a scalar tensor or number; `noise`
        the scaled Gaussian increment or None; as in `langevin_step`.
      coupling_rate: `eta' gamma` in the probe's dtype if the caller has it
        (an optimizer computes it once per step); None computes it here.
      probe_value: the probe's value read before this step, if the caller has
        it (saves a read); None reads it here.
    """
    dtype = probe.dtype
    if probe_value is None:
        probe_value = tf.convert_to_tensor(probe)
    if coupling_rate is None:
        coupling_rate = tf.cast(learning_rate * gamma, dtype)
    spread = probe_value - anchor
    lr = tf.constant(learning_rate, dtype) if isinstance(learning_rate, (int, float)) else tf.cast(learning_rate, dtype)
    # The fused kernel updates `probe` in place: it runs after `spread` has
    # consumed the read of the old probe, so that read no longer shares the
    # variable's buffer and the kernel need not copy it first (copy on write).
    with tf.control_dependencies([spread]):
        if momentum:
            tf.raw_ops.ResourceApplyMomentum(
                var=probe.handle, accum=velocity.handle, lr=lr, grad=gradient,
                momentum=tf.constant(momentum, dtype), use_locking=False, use_nesterov=bool(nesterov))
        else:
            tf.raw_ops.ResourceApplyGradientDescent(var=probe.handle, alpha=lr, delta=gradient, use_locking=False)
    tf.raw_ops.ResourceApplyGradientDescent(var=probe.handle, alpha=coupling_rate, delta=spread, use_locking=False)
    if noise is not None:
        probe.assign_add(noise)
    return tf.convert_to_tensor(probe)


def langevin_noise_scale(noise, learning_rate):
    """Standard deviation `eps sqrt(2 eta')` of the Langevin increment.

    The step `h = 2 eps^2 eta'` at inverse temperature `beta = 1/eps^2` makes
    the chain an Euler-Maruyama discretization of Langevin dynamics for the
    local Gibbs measure (docs/math.md section 3).

    With Python numbers for both arguments the result is a Python float,
    computed in double precision (`eps * (2 eta')^(1/2)`), so that a float32
    graph multiplies by the correctly rounded constant; otherwise a tensor.
    """
    if _is_python_number(noise) and _is_python_number(learning_rate):
        return float(noise * (2.0 * learning_rate) ** 0.5)
    return noise * tf.sqrt(2.0 * learning_rate)


def _is_python_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sgld_parameters(langevin_learning_rate, noise):
    """`(h, beta)` of the SGLD chain that is Entropy-SGD's inner step (docs/math.md section 3).

    Entropy-SGD writes the inner step `w' <- w' - eta' [g + gamma (w' - w)] + eps
    sqrt(2 eta') xi`; Langevin dynamics for `exp(-beta U)` with step `h` writes
    `w' <- w' - (h beta / 2) grad U + sqrt(h) xi`. They are one step when

        beta = 1 / eps^2,      h = 2 eps^2 eta'.
    """
    return 2.0 * noise**2 * langevin_learning_rate, 1.0 / noise**2


def running_mean(mean, probe, decay):
    """`mu <- beta1 mu + (1 - beta1) w'`; `decay` is beta1, the weight of the old mean."""
    return decay * mean + (1.0 - decay) * probe


def running_mean_in_place(mean, probe, decay):
    """`running_mean` applied to the variable `mean` in place with one fused
    kernel: `mu <- mu - (1 - beta1) (mu - w')` (ResourceApplyGradientDescent),
    equal to `beta1 mu + (1 - beta1) w'` up to float rounding."""
    dtype = mean.dtype
    tf.raw_ops.ResourceApplyGradientDescent(
        var=mean.handle, alpha=tf.constant(1.0 - decay, dtype), delta=tf.convert_to_tensor(mean) - probe,
        use_locking=False)


def local_entropy_control(anchor, mean, gamma=None):
    """The control read from the chain: `a = w - mu`, or `gamma (w - mu)` when `gamma` is given.

    With `gamma` this is the local-entropy gradient `grad F_gamma(w) =
    gamma (w - <w'>)` of [1] eq. 7; without it, the authors' code convention
    (gamma dropped so that it does not fight learning-rate annealing).
    """
    control = anchor - mean
    return control if gamma is None else gamma * control

