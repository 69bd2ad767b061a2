"""HopfLaxSGD: gradient descent on the Moreau envelope (non-viscous HJ, Hopf-Lax).

The solution of `u_t = -1/2 |grad u|^2`, `u(w, 0) = f(w)` is the Hopf-Lax
formula / Moreau envelope `u(w, t) = inf_y f(y) + |w - y|^2 / (2t)`, whose
gradient is the control `p*` solving the fixed point

    p* = grad f(w - t p*),       w - t p* = prox_{t f}(w)

(docs/math.md section 4; Chaudhari, Oberman, Osher, Soatto, Carlier 2018, the
authors' fixed-point "FP" variant). The inner chain is a damped fixed-point
iteration on minibatch gradients, t = 1 / gamma_k:

    l = 0:      p <- g                         (g = grad f at the probe = w)
    l >= 1:     p <- beta1 p + (1 - beta1) g   (g = grad f at the probe)
    every l:    w' <- w - t p

and after the L-th inner step the outer step `w <- w - eta * momentum(p)`
(`p` already holds the coupled L2 term, as it averages gradients of f + wd/2|w'|^2).

Limiting case: gamma -> infinity (t -> 0) keeps the probe at the anchor, and
with `inner_steps=1` it is exactly SGD with momentum.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from control_opt.formulas import local_entropy, proximal
from control_opt._internal import checks
from control_opt.optimizers import anchored

__all__ = ["HopfLaxSGD"]


@keras.saving.register_keras_serializable(package="control_opt")
class HopfLaxSGD(anchored.MomentumOuterStep, anchored.AnchoredOptimizer):
    """Proximal (Hopf-Lax) SGD: the control is the fixed point `p = grad f(w - t p)`.

    Args:
      learning_rate: eta, the outer step size (a float or Keras schedule of
        gradient evaluations).
      momentum, nesterov: outer momentum on `p`.
      inner_steps: L, gradient evaluations per outer step (10, the authors').
      gamma: initial scope gamma0; the proximal time is `t = 1/gamma_k`.
      scoping: gamma1 in `gamma_k = gamma0 (1 + gamma1)^k` (t shrinks as k grows).
      mean_decay: beta1, the damping of the fixed-point iteration (0.75, the authors').
      l2: coupled L2 weight decay, added to every inner gradient.
      seed: unused by the (noiseless) chain; kept for a uniform config.
      **kwargs: the Keras optimizer arguments; `weight_decay` is refused (it
        would act on the probe, which the next inner step recomputes from the
        anchor): use `l2`.

    Defaults: `inner_steps=10`, `mean_decay=0.75` are the authors'. The others
    were chosen on MNIST-1D (CNN, batch 100, 6000 gradient evaluations, seed 0,
    `python -m experiments.train --optimizer=hopf_lax ...`), test accuracy at
    the anchor: lr 0.5 / Nesterov 0.9 / gamma 10 diverged (9.8%); lr 0.1 /
    Nesterov 0.9 / gamma 10: 88.1%; lr 0.3 / Nesterov 0.9 / gamma 10: 91.2%;
    lr 1.0 / no momentum / gamma 10: 90.4%; lr 2.0 / no momentum / gamma 1
    (t = 1): 92.9%, the default. One outer step per L gradients wants a large
    outer step; outer momentum on top of it overshoots.
    """

    _L2_ON_CONTROL = False  # p averages gradients that already carry the L2 term

    def __init__(self, learning_rate=2.0, momentum=0.0, nesterov=False, inner_steps=10, gamma=1.0,
                 scoping=1e-3, mean_decay=0.75, l2=0.0, seed=None, name="hopf_lax_sgd", **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(
                f"`weight_decay` is not supported by HopfLaxSGD (received weight_decay={kwargs['weight_decay']!r}): "
                "Keras' decoupled decay acts on the probe, which every inner step recomputes from the anchor "
                "(`w' = w - t p`), so it would never act. Use the coupled `l2` instead.")
        super().__init__(learning_rate, inner_steps=1, l2=l2, seed=seed, name=name, **kwargs)
        self._init_outer(momentum, nesterov)
        self._inner_steps = self.inner_steps = checks.check_int("inner_steps", inner_steps)
        self.gamma = checks.check_positive("gamma", gamma)
        self.scoping = checks.check_non_negative("scoping", scoping)
        self.mean_decay = checks.check_unit_interval("mean_decay", mean_decay)

    def proximal_time(self, outer_step, dtype=tf.float32):
        """t_k = 1 / gamma_k, `gamma_k = gamma0 (1 + gamma1)^k`, in `dtype` (the variable's)."""
        return 1.0 / local_entropy.exponential_scope(tf.constant(self.gamma, dtype), self.scoping, outer_step)

    def _build_chain(self, var_list):
        self._controls = self.add_optimizer_variables(var_list, "hopf_lax_p")

    def _chain_slots(self, index):
        return (self._controls[index],)

    def _chain_scalars(self, outer_step, dtype, position=None):
        scalars = {"t": self.proximal_time(outer_step, dtype)}
        if position is not None:
            # beta1 of this step's running mean, 0 at the first inner step (p then
            # restarts at the gradient: `0 p + 1 g = g` exactly, p having been
            # reset to 0): one scalar per step, not a `tf.where` per variable.
            scalars["decay"] = tf.where(tf.equal(position, 0), tf.constant(0.0, dtype),
                                        tf.constant(self.mean_decay, dtype))
        return scalars

    def _chain_step(self, index, gradient, probe, anchor, slots, scalars):
        (p,) = slots
        p_new = local_entropy.running_mean(p, gradient, scalars.chain[probe.dtype.name]["decay"])
        new_probe = proximal.proximal_probe(anchor, scalars.chain[probe.dtype.name]["t"], p_new)
        return new_probe, (p_new,)

    def _chain_reset(self, anchor):
        return (tf.zeros_like(anchor),)

    def _control(self, anchor, statistics):
        return statistics[0]

    def get_config(self):
        config = super().get_config()
        config.update({"inner_steps": self.inner_steps, "gamma": self.gamma, "scoping": self.scoping,
                       "mean_decay": self.mean_decay})
        return config
