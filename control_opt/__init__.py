"""control_opt: training a neural network as a stochastic optimal-control problem.

Optimization is the controlled SDE `dw = -a(w, s) ds + sqrt(2/beta) dB` whose
control `a = grad u` is estimated by an inner Markov chain (docs/math.md).

Subpackages (every public name is also importable from `control_opt`):

* `optimizers`: Keras optimizers `EntropySGD`, `EntropyAdam`, `HopfLaxSGD` (anchor /
  probe / chain / control, `control_opt.optimizers.anchored`), the `AnchorSwap` callback;
  `ElasticSGD`, `Parle`: each replica of a `tf.distribute` strategy with its own weights.
* `distribute`: `replica_local(strategy)`, the scope for those replica-local models.
* `sde`: the controlled SDE, `simulate_sde` with `GreedyControl`,
  `LocalEntropyControl`, `HopfLaxControl`.
* `mcmc`: the local Gibbs measure `local_gibbs_log_prob`, the
  `StochasticGradientLangevin` `tfp.mcmc` kernel, the `local_entropy_gradient` estimator.
* `pde`: Hamilton-Jacobi PDEs (`hopf_lax`, `viscous_hj`, point-wise prox).
* `formulas`: `local_entropy`, `momentum`, the update formulas written once.
* `datasets`, `models`: registries, `datasets.load(name)`, `models.build(name)`.
* `analysis`: SGD as variational inference: gradient-noise diffusion, Hessian spectra
  (Lanczos, SLQ, Hutchinson), steady states, probability currents, stochastic area.
"""

from control_opt import analysis, datasets, distribute, formulas, mcmc, models, optimizers, pde, sde
from control_opt._internal.keras_adaptor import keras_loss_fn, minibatch_fn, model_weights
from control_opt.formulas import local_entropy, momentum
from control_opt.mcmc import LocalEntropyEstimate, StochasticGradientLangevin, local_entropy_gradient, local_gibbs_log_prob
from control_opt.distribute import replica_local
from control_opt.optimizers import (AnchoredOptimizer, AnchorSwap, ElasticSGD, EntropyAdam, EntropySGD, HopfLaxSGD,
                                   Parle)
from control_opt.sde import Control, GreedyControl, HopfLaxControl, LocalEntropyControl, SDEResult, simulate_sde

__version__ = "0.1.0"
