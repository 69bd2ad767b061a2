"""Entropy-SGD and Entropy-Adam (Chaudhari et al., ICLR 2017, Algorithm 1).

Gradient descent on the local entropy `F_gamma(w) = log ∫ exp(-f(w') - gamma/2
|w - w'|^2) dw'`, the solution of a viscous Hamilton-Jacobi equation
(docs/math.md sections 3-4). Its gradient needs the mean of the local Gibbs
measure, estimated by an SGLD chain started at the anchor. Conventions are the
authors' Lua code, which produced the paper's tables (docs/math.md section 3).

Start of outer step k:  w' <- w,  mu <- w,  v' <- 0.
Inner step (one Keras step, one minibatch gradient g = grad f(w') + wd w'):

    v' <- m' v' + g ;  d = g + m' v' (Nesterov) | v' | g
    d  <- d - gamma_k (w - w'),          gamma_k = gamma0 (1 + gamma1)^k
    w' <- w' - eta' d + eps sqrt(2 eta') xi
    mu <- beta1 mu + (1 - beta1) w'

Outer step, right after the L-th inner step:

    a = w - mu ;  g = a + wd w ;  w <- w - eta * momentum(g)   (Entropy-SGD)
                                  w <- w - eta * adam(g)       (Entropy-Adam)
    k <- k + 1 ;  w' <- w ;  mu <- w

References:
  [1] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017. https://arxiv.org/abs/1611.01838
  [2] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from control_opt.formulas import local_entropy
from control_opt._internal import checks
from control_opt.optimizers import anchored
from control_opt.optimizers.swap import _tensor_of

__all__ = ["EntropyAdam", "EntropySGD"]


def _check_serializable_gamma(gamma):
    """Raise at save time if `load_model` could not rebuild the callable `gamma`."""
    if isinstance(gamma, keras.optimizers.schedules.LearningRateSchedule):
        return
    target = gamma if hasattr(gamma, "__name__") else type(gamma)
    name = getattr(target, "__name__", "")
    if name != "<lambda>":
        registered = keras.saving.get_registered_name(target)
        if keras.saving.get_registered_object(registered) is target:
            return
    raise ValueError(
        f"`gamma` is a plain callable ({gamma!r}) that `keras.models.load_model` cannot rebuild, so "
        "the optimizer cannot be saved: use a keras.optimizers.schedules.LearningRateSchedule or "
        "register it with keras.saving.register_keras_serializable (a lambda cannot be registered).")


class _LocalEntropyChain(anchored.AnchoredOptimizer):
    """The SGLD chain on the local Gibbs measure: statistic `mu`, control `w - mu`."""

    _INNER_STEPS_ARG = "langevin_steps"

    def _init_chain(self, langevin_steps, langevin_learning_rate, langevin_momentum,
                    langevin_nesterov, gamma, scoping, noise, mean_decay):
        self.langevin_steps = checks.check_int("langevin_steps", langevin_steps)
        self._inner_steps = self.langevin_steps
        self.langevin_learning_rate = checks.check_positive("langevin_learning_rate", langevin_learning_rate)
        self.langevin_momentum = checks.check_unit_interval("langevin_momentum", langevin_momentum)
        self.langevin_nesterov = checks.check_nesterov(
            "langevin_nesterov", langevin_nesterov, "langevin_momentum", self.langevin_momentum)
        if callable(gamma):
            self.gamma = gamma
        else:
            self.gamma = checks.check_non_negative("gamma", gamma)
        self.scoping = checks.check_non_negative("scoping", scoping)
        self.noise = checks.check_non_negative("noise", noise)
        self.mean_decay = checks.check_unit_interval("mean_decay", mean_decay)

    def scope(self, outer_step, dtype=tf.float32):
        """gamma_k in `dtype` (the variable's: float64 models get float64):
        `gamma(k)` if `gamma` is callable (then `scoping` is not used), else
        `gamma0 (1 + gamma1)^k` (docs/math.md section 2)."""
        if callable(self.gamma):
            return tf.cast(self.gamma(outer_step), dtype)
        return local_entropy.exponential_scope(tf.constant(self.gamma, dtype), self.scoping, outer_step)

    def _build_chain(self, var_list):
        self._means = self.add_copies(var_list, "mean")
        self._langevin_velocities = (self.add_optimizer_variables(var_list, "langevin_velocity")
                                     if self.langevin_momentum else [None] * len(var_list))

    def _chain_slots(self, index):
        return (self._means[index], self._langevin_velocities[index])

    def _chain_scalars(self, outer_step, dtype, position=None):
        return self._scope_scalars(self.scope(outer_step, dtype), dtype)

    def _scope_scalars(self, gamma, dtype):
        """The chain's scalars for scope `gamma`: gamma itself and eta' gamma, the
        rate of the coupling kernel (once per step, not per variable)."""
        return {"gamma": gamma, "coupling_rate": tf.constant(self.langevin_learning_rate, dtype) * gamma}

    def _chain_apply(self, index, variable, gradient, probe, anchor, scalars):
        # In place, with TensorFlow's fused training kernels (formulas.local_entropy).
        variable = _tensor_of(variable)  # a Keras variable when Keras' `update_step` is called directly
        mean, velocity = self._chain_slots(index)
        chain = scalars.chain[variable.dtype.name]
        new_probe = local_entropy.langevin_step_in_place(
            variable, None if velocity is None else _tensor_of(velocity), gradient, anchor,
            learning_rate=self.langevin_learning_rate, gamma=chain["gamma"], coupling_rate=chain["coupling_rate"],
            momentum=self.langevin_momentum, nesterov=self.langevin_nesterov,
            noise=scalars.noise[index] if self.noise else None, probe_value=probe)
        local_entropy.running_mean_in_place(_tensor_of(mean), new_probe, self.mean_decay)

    def _step_noise(self, variables, step):
        if not self.noise:
            return None
        scale = local_entropy.langevin_noise_scale(self.noise, self.langevin_learning_rate)
        return self.draw_step_noise(variables, step, scale)

    def _chain_reset(self, anchor):
        return (anchor, tf.zeros_like(anchor) if self.langevin_momentum else None)

    def _control(self, anchor, statistics):
        return local_entropy.local_entropy_control(anchor, statistics[0])

    def _chain_config(self):
        gamma = self.gamma
        if callable(gamma):
            _check_serializable_gamma(gamma)
            gamma = keras.saving.serialize_keras_object(gamma)
        return {
            "langevin_steps": self.langevin_steps,
            "langevin_learning_rate": self.langevin_learning_rate,
            "langevin_momentum": self.langevin_momentum,
            "langevin_nesterov": self.langevin_nesterov,
            "gamma": gamma,
            "scoping": self.scoping,
            "noise": self.noise,
            "mean_decay": self.mean_decay,
        }

    def get_config(self):
        config = super().get_config()
        config.update(self._chain_config())
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("gamma"), dict):
            config["gamma"] = keras.saving.deserialize_keras_object(
                config["gamma"], custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


_SHARED_DOC = """
    Keras semantics: one `apply_gradients` call is one inner (Langevin) step
    at the probe; every `langevin_steps`-th call also does the outer step. The
    model's variables hold the probe during training and the anchor after
    `fit` (`finalize_variable_values`); pass `control_opt.AnchorSwap()` first
    in `callbacks=` to validate and checkpoint at the anchor inside `fit`
    (see `control_opt.optimizers.anchored`).

    Langevin args (the inner loop, restarted at the anchor every outer step):
      langevin_steps: L, gradient evaluations per outer step (20).
      langevin_learning_rate: eta' (0.1).
      langevin_momentum, langevin_nesterov: m' and its Nesterov form (0.9, True).
      gamma: the initial scope gamma0 (1e-4, the authors' MNIST value; 0.03
        for CIFAR), or a callable/`LearningRateSchedule` of the outer step k
        giving gamma_k directly (then `scoping` is not used); to save the
        model, a `LearningRateSchedule` or a function registered with
        `keras.saving.register_keras_serializable` (a lambda is refused).
      scoping: gamma1 in `gamma_k = gamma0 (1 + gamma1)^k` (1e-3).
      noise: eps, the thermal noise; inverse temperature beta = 1/eps^2 (1e-4).
      mean_decay: beta1, the weight of the old mean in `mu` (0.75).
      l2: coupled L2 weight decay `wd` (added to the gradient in both loops);
        Keras's decoupled `weight_decay` stays available and acts on the probe.
      seed: integer seed of the Langevin noise (one stateless draw per
        iteration for all variables, from (seed, iteration)); None draws one from Python's `random`.
      **kwargs: the Keras optimizer arguments (`name`, `clipnorm`, ...).
"""


@keras.saving.register_keras_serializable(package="control_opt")
class EntropySGD(anchored.MomentumOuterStep, _LocalEntropyChain):
    __doc__ = """Entropy-SGD: SGD on the local entropy, an SGLD inner loop ([1] Algorithm 1).

    Outer args:
      learning_rate: eta, outer step size (1.0; the authors drop it during
        training: MNIST x0.1 after 2 epochs, CIFAR /5 every 4 epochs), a float
        or a Keras schedule of `iterations` (gradient evaluations).
      momentum, nesterov: outer momentum on the control (0.0, False: the
        authors' Lua code discards it; their PyTorch port uses one momentum
        for both loops, which with learning_rate=1.0 diverges on MNIST-1D).
    """ + _SHARED_DOC + """
    Example:

    >>> model.compile(optimizer=control_opt.EntropySGD(learning_rate=0.5), loss=...)
    >>> model.fit(x, y, callbacks=[control_opt.AnchorSwap()])
    """

    def __init__(self, learning_rate=1.0, momentum=0.0, nesterov=False, langevin_steps=20,
                 langevin_learning_rate=0.1, langevin_momentum=0.9, langevin_nesterov=True,
                 gamma=1e-4, scoping=1e-3, noise=1e-4, mean_decay=0.75, l2=0.0, seed=None,
                 name="entropy_sgd", **kwargs):
        super().__init__(learning_rate, inner_steps=1, l2=l2, seed=seed, name=name, **kwargs)
        self._init_outer(momentum, nesterov)
        self._init_chain(langevin_steps, langevin_learning_rate, langevin_momentum, langevin_nesterov,
                         gamma, scoping, noise, mean_decay)



@keras.saving.register_keras_serializable(package="control_opt")
class EntropyAdam(anchored.AdamOuterStep, _LocalEntropyChain):
    __doc__ = """Entropy-Adam: the Entropy-SGD inner loop, Adam on the control in the outer step.

    Outer args:
      learning_rate: eta (1e-3), a float or a Keras schedule of `iterations`.
      beta_1, beta_2, epsilon: Adam's, with its step counter the outer step
        k + 1 (bias correction counts outer steps, not gradient evaluations).
    """ + _SHARED_DOC

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 langevin_steps=20, langevin_learning_rate=0.1, langevin_momentum=0.9,
                 langevin_nesterov=True, gamma=1e-4, scoping=1e-3, noise=1e-4, mean_decay=0.75,
                 l2=0.0, seed=None, name="entropy_adam", **kwargs):
        super().__init__(learning_rate, inner_steps=1, l2=l2, seed=seed, name=name, **kwargs)
        self._init_outer(beta_1, beta_2, epsilon)
        self._init_chain(langevin_steps, langevin_learning_rate, langevin_momentum, langevin_nesterov,
                         gamma, scoping, noise, mean_decay)

