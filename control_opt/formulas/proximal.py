"""The proximal (Hopf-Lax) probe, written once (docs/math.md section 4).

Non-viscous Hamilton-Jacobi: the Moreau envelope `u(w, t) = inf_y f(y) +
|w - y|^2 / (2t)` has gradient `p*`, the fixed point of `p = grad f(w - t p)`,
and `w - t p*` is the proximal point `prox_{t f}(w)` (Chaudhari, Oberman,
Osher, Soatto, Carlier, "Deep relaxation", 2018). `HopfLaxSGD`'s inner step
and the PDE solvers of `control_opt.pde.pointwise` both evaluate the gradient
at this probe.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["proximal_probe"]


def proximal_probe(w, t, p):
    """The probe `w' = w - t p` (the proximal point when p = p*), per part of a
    structure of tensors, with `t` cast to each part's dtype."""
    return tf.nest.map_structure(lambda wi, pi: wi - tf.cast(t, wi.dtype) * pi, w, p)
