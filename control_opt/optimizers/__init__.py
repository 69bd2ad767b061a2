"""Keras optimizers built on the anchor / probe / control pattern (`anchored`).

  anchored      `AnchoredOptimizer`: anchor, probe, chain, control, outer step
  step_scalars  `StepScalars`, the per-step scalars every phase receives as an argument
  swap          which weights the model holds: the exact anchor/probe exchange
  outer_rules   the outer step's direction: (Nesterov) momentum, Adam
  entropy_sgd   `EntropySGD`, `EntropyAdam` (local entropy, an SGLD chain)
  hopf_lax_sgd  `HopfLaxSGD` (the proximal / Hopf-Lax control)
  callbacks     `AnchorSwap`
  center        `Center`: the center of the replica-local optimizers and the coupling to it
  replica_local `ReplicaLocal`: per-replica state, no gradient all-reduce, per-replica saving
  elastic_sgd   `ElasticSGD` (replica-local weights, elastic coupling)
  parle         `Parle` (an Entropy-SGD chain per replica, coupled to a center)
"""

from control_opt.optimizers.anchored import AnchoredOptimizer
from control_opt.optimizers.callbacks import AnchorSwap, find_anchored_optimizer
from control_opt.optimizers.entropy_sgd import EntropyAdam, EntropySGD
from control_opt.optimizers.hopf_lax_sgd import HopfLaxSGD
from control_opt.optimizers.elastic_sgd import ElasticSGD
from control_opt.optimizers.parle import Parle

__all__ = ["AnchorSwap", "AnchoredOptimizer", "ElasticSGD", "EntropyAdam", "EntropySGD", "HopfLaxSGD", "Parle",
           "find_anchored_optimizer"]
