"""Momentum and Adam directions, written once for every loop of every optimizer.

Both the inner (Langevin) loop and the outer (anchor) step of the anchored
optimizers use heavy-ball / Nesterov momentum, in the convention of the
authors' Lua code and of `torch.optim.SGD` (buffer starts at zero):

    v <- m v + g ;   d = g + m v (Nesterov) | v (heavy ball) | g (m = 0)

The Parle authors' code (ucla-vision/parle, `parle_mpi.py`) writes its
momentum differently, in both of its loops; `Parle(authors_code=True)` uses it:

    v <- m v + g ;   d = g + v        (= 2 g + m v_old; with m = 0, d = 2 g)

Adam (Kingma & Ba, 2015), in the form Keras uses:

    m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
    d  = sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["adam_direction", "momentum_direction", "parle_code_direction"]


def momentum_direction(gradient, velocity, momentum, nesterov):
    """Returns `(d, new_velocity)`; `momentum` is a Python number and when it is
    0 the buffer is untouched (`new_velocity` is `None`) and `d = g`."""
    if not momentum:
        return gradient, None
    velocity = momentum * velocity + gradient
    return (gradient + momentum * velocity if nesterov else velocity), velocity


def parle_code_direction(gradient, velocity, momentum):
    """The Parle code's form: returns `(d, new_velocity)` with `v <- m v + g`,
    `d = g + v`. `velocity` None (no buffer, `momentum` 0): `d = 2 g`."""
    velocity = gradient if velocity is None else momentum * velocity + gradient
    return gradient + velocity, velocity


def adam_direction(gradient, first_moment, second_moment, step, *, beta_1, beta_2, epsilon):
    """Returns `(d, new_first_moment, new_second_moment)`; `step` is t >= 1."""
    t = tf.cast(step, gradient.dtype)
    first_moment = first_moment + (1.0 - beta_1) * (gradient - first_moment)
    second_moment = second_moment + (1.0 - beta_2) * (tf.square(gradient) - second_moment)
    correction = tf.sqrt(1.0 - tf.pow(tf.cast(beta_2, gradient.dtype), t)) / (
        1.0 - tf.pow(tf.cast(beta_1, gradient.dtype), t))
    direction = correction * first_moment / (tf.sqrt(second_moment) + epsilon)
    return direction, first_moment, second_moment
