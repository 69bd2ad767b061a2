"""control_opt: training a neural network as a stochastic optimal-control problem.

Optimization is the controlled SDE `dw = -a(w, s) ds + sqrt(2/beta) dB` whose
control `a = grad u` is estimated by an inner Markov chain (DESIGN.md section 1).

* Keras optimizers: `EntropySGD`, `EntropyAdam`, `HopfLaxSGD` (anchor / probe /
  chain / control, `control_opt.optimizers.anchored`), and the `AnchorSwap` callback.
* The controlled SDE: `simulate_sde` with `GreedyControl`, `LocalEntropyControl`,
  `HopfLaxControl`.
* The local Gibbs measure: `local_gibbs_log_prob`, the `StochasticGradientLangevin`
  `tfp.mcmc` kernel and the `local_entropy_gradient` estimator.
* Hamilton-Jacobi PDEs: `control_opt.pde` (`hopf_lax`, `viscous_hj`, point-wise prox).
* Data and models: `control_opt.datasets.load`, `control_opt.models.build`.
"""

from control_opt import datasets, local_entropy, models, momentum, pde
from control_opt.callbacks import AnchorSwap
from control_opt.controls import Control, GreedyControl, HopfLaxControl, LocalEntropyControl
from control_opt.estimators import LocalEntropyEstimate, local_entropy_gradient
from control_opt.gibbs import local_gibbs_log_prob
from control_opt.keras_loss import keras_loss_fn, minibatch_fn, model_weights
from control_opt.optimizers import AnchoredOptimizer, EntropyAdam, EntropySGD, HopfLaxSGD
from control_opt.sde import SDEResult, simulate_sde
from control_opt.sgld_kernel import StochasticGradientLangevin

__version__ = "0.1.0"
