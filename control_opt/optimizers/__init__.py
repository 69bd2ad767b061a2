"""Keras optimizers built on the anchor / probe / control pattern (`anchored`)."""

from control_opt.optimizers.anchored import AnchoredOptimizer
from control_opt.optimizers.entropy_sgd import EntropyAdam, EntropySGD
from control_opt.optimizers.hopf_lax_sgd import HopfLaxSGD

__all__ = ["AnchoredOptimizer", "EntropyAdam", "EntropySGD", "HopfLaxSGD"]
