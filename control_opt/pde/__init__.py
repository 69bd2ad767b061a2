"""Hamilton-Jacobi PDEs of the smoothed loss (docs/math.md section 4; Chaudhari,
Oberman, Osher, Soatto, Carlier, "Deep Relaxation", 2018).

On 1-D and 2-D grids (NumPy, float64):
  hopf_lax(values, grid, t) -> HopfLaxSolution(u, prox)
      non-viscous `u_t = -1/2 |grad u|^2`, exact on the grid, O(n)
      (Felzenszwalb-Huttenlocher lower envelope), `+inf` constraints allowed.
  viscous_hj(values, grid, t, beta) -> ViscousSolution(u, grad)
      viscous `u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u` by Cole-Hopf in
      log space.
  Both take a time `t` that is a normal float (`grid.check_time`).

Modules: `grid` (validation), `lower_envelope` (Hopf-Lax; not named
`hopf_lax`, which is the function), `viscous` (Cole-Hopf), `pointwise`.

Point-wise at weights `w` of any structure (TensorFlow):
  proximal_point(grad_fn, w, t, ..., batch_dims=0) -> ProximalPointResults
      (`batch_dims` leading axes of independent problems, each judged on its own)
  moreau_envelope(loss_fn, grad_fn, w, t, ...) -> MoreauEnvelopeResults
"""

from control_opt.pde import grid, lower_envelope, pointwise, viscous
from control_opt.pde.lower_envelope import HopfLaxSolution, hopf_lax
from control_opt.pde.pointwise import (
    MoreauEnvelopeResults,
    ProximalPointResults,
    moreau_envelope,
    proximal_point,
)
from control_opt.pde.viscous import ViscousSolution, viscous_hj

__all__ = [
    "HopfLaxSolution",
    "MoreauEnvelopeResults",
    "ProximalPointResults",
    "ViscousSolution",
    "grid",
    "hopf_lax",
    "lower_envelope",
    "moreau_envelope",
    "pointwise",
    "proximal_point",
    "viscous",
    "viscous_hj",
]
