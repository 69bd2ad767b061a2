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
