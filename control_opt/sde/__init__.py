"""The controlled SDE `dw = -a(w, s) ds + sqrt(2/beta) dB` and its controls.

  simulate   `simulate_sde` (Euler-Maruyama, with the running control cost)
  controls   `GreedyControl`, `LocalEntropyControl`, `HopfLaxControl`
"""

from control_opt.sde.controls import Control, GreedyControl, HopfLaxControl, LocalEntropyControl
from control_opt.sde.simulate import SDEResult, simulate_sde

__all__ = ["Control", "GreedyControl", "HopfLaxControl", "LocalEntropyControl", "SDEResult", "simulate_sde"]
