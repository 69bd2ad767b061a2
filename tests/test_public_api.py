"""The public names the issues fix, with their keyword arguments."""

import inspect

import tensorflow_probability as tfp
import keras

import control_opt


def params(fn):
    return set(inspect.signature(fn).parameters)


def test_optimizers_are_keras_optimizers_with_the_published_arguments():
    for cls in (control_opt.EntropySGD, control_opt.EntropyAdam, control_opt.HopfLaxSGD):
        assert issubclass(cls, keras.optimizers.Optimizer)
    shared = {"langevin_steps", "langevin_learning_rate", "langevin_momentum", "langevin_nesterov", "gamma",
              "scoping", "noise", "mean_decay", "l2", "seed", "learning_rate"}
    assert shared | {"momentum", "nesterov"} <= params(control_opt.EntropySGD)
    assert shared | {"beta_1", "beta_2", "epsilon"} <= params(control_opt.EntropyAdam)
    assert {"learning_rate", "momentum", "nesterov", "inner_steps", "gamma", "scoping", "mean_decay",
            "l2"} <= params(control_opt.HopfLaxSGD)


def test_sde_and_mcmc_names():
    assert {"control", "w0", "t_final", "dt", "beta", "num_paths", "seed"} <= params(control_opt.simulate_sde)
    assert {"loss_fn", "anchor", "gamma", "beta"} <= params(control_opt.local_gibbs_log_prob)
    assert {"loss_fn", "w", "gamma", "beta", "kernel", "num_results", "num_burnin_steps", "num_chains",
            "seed"} <= params(control_opt.local_entropy_gradient)
    assert issubclass(control_opt.StochasticGradientLangevin, tfp.mcmc.TransitionKernel)
    for cls in (control_opt.GreedyControl, control_opt.LocalEntropyControl, control_opt.HopfLaxControl):
        assert issubclass(cls, control_opt.Control)


def test_pde_data_and_model_names():
    assert {"values", "grid", "t"} <= params(control_opt.pde.hopf_lax)
    assert {"values", "grid", "t", "beta"} <= params(control_opt.pde.viscous_hj)
    assert "mnist1d" in control_opt.datasets.names()
    assert {"mnist1d_cnn", "mnist1d_mlp"} <= set(control_opt.models.names())


# Every public name of the flat layout (before the subpackages), still importable as before.
_TOP_LEVEL_NAMES = [
    "AnchorSwap", "AnchoredOptimizer", "Control", "EntropyAdam", "EntropySGD", "GreedyControl",
    "HopfLaxControl", "HopfLaxSGD", "LocalEntropyControl", "LocalEntropyEstimate", "SDEResult",
    "StochasticGradientLangevin", "datasets", "keras_loss_fn", "local_entropy", "local_entropy_gradient",
    "local_gibbs_log_prob", "minibatch_fn", "model_weights", "models", "momentum", "pde", "simulate_sde",
]
_PDE_NAMES = [
    "HopfLaxSolution", "MoreauEnvelopeResults", "ProximalPointResults", "ViscousSolution", "grid", "hopf_lax",
    "lower_envelope", "moreau_envelope", "pointwise", "proximal_point", "viscous", "viscous_hj",
]


def test_every_public_name_of_the_flat_layout_is_still_importable():
    missing = [name for name in _TOP_LEVEL_NAMES if not hasattr(control_opt, name)]
    missing += ["pde." + name for name in _PDE_NAMES if not hasattr(control_opt.pde, name)]
    assert not missing, missing
    namespace = {}
    exec("from control_opt import " + ", ".join(_TOP_LEVEL_NAMES), namespace)  # pylint: disable=exec-used
    exec("from control_opt.pde import " + ", ".join(_PDE_NAMES), namespace)  # pylint: disable=exec-used
    assert namespace["EntropySGD"] is control_opt.optimizers.EntropySGD
    assert namespace["simulate_sde"] is control_opt.sde.simulate_sde
    assert namespace["local_entropy"].langevin_step is control_opt.formulas.local_entropy.langevin_step
    for name in ("langevin_step", "running_mean", "local_entropy_control", "exponential_scope"):
        assert hasattr(control_opt.local_entropy, name)
    for name in ("momentum_direction", "adam_direction"):
        assert hasattr(control_opt.momentum, name)


def test_subpackages_group_the_library():
    import control_opt.mcmc  # pylint: disable=import-outside-toplevel
    assert control_opt.mcmc.StochasticGradientLangevin is control_opt.StochasticGradientLangevin
    assert control_opt.optimizers.AnchorSwap is control_opt.AnchorSwap
    assert control_opt.sde.LocalEntropyControl is control_opt.LocalEntropyControl
