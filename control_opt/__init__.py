"""control_opt: training a neural network as a stochastic optimal-control problem.

Optimization is the controlled SDE `dw = -a(w, s) ds + sqrt(2/beta) dB` whose
control `a = grad u` is estimated by an inner Markov chain (DESIGN.md section 1).
"""

from control_opt import local_entropy, momentum
from control_opt.callbacks import AnchorSwap
from control_opt.optimizers import AnchoredOptimizer, EntropyAdam, EntropySGD, HopfLaxSGD

__version__ = "0.1.0"
