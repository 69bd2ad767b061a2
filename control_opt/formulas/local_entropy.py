"""The formulas of local entropy, written once.

Every piece of the library that touches the local Gibbs measure calls these
functions: the Keras optimizers (`EntropySGD`, `EntropyAdam`, later Parle), the
`tfp.mcmc` stochastic-gradient Langevin kernel and the analysis tools. They act
on plain tensors of any shape (apply them per part with `tf.nest` for a
structure of tensors) and make their structural choices (momentum or not,
noise or not) in Python, so a traced graph holds only the ops it needs.

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

from control_opt.formulas.momentum import momentum_direction

__all__ = [
    "exponential_scope",
    "langevin_noise_scale",
    "langevin_step",
    "local_entropy_control",
    "running_mean",
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


def local_entropy_control(anchor, mean, gamma=None):
    """The control read from the chain: `a = w - mu`, or `gamma (w - mu)` when `gamma` is given.

    With `gamma` this is the local-entropy gradient `grad F_gamma(w) =
    gamma (w - <w'>)` of [1] eq. 7; without it, the authors' code convention
    (gamma dropped so that it does not fight learning-rate annealing).
    """
    control = anchor - mean
    return control if gamma is None else gamma * control

