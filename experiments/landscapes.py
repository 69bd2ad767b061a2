"""Toy non-convex losses with a narrow deep minimum and a wide shallow one.

One formula serves every experiment that looks at "narrow versus wide" minima
(Deep Relaxation [1] section 3; Entropy-SGD [2]):

    f(w) = c |w|^2 + 1 - depth_n bump_n(w) - depth_w bump_w(w) + a prod_i sin(k w_i),
    bump(w) = exp(-sum_i (w_i - centre_i)^2 / (2 width_i^2)),

in 1 or 2 dimensions. `VALLEYS` (no ripples) are the landscapes the
controlled-SDE experiment (`experiments.sde_landscape`) runs paths on;
`RIPPLED` (with ripples, for the PDEs to flatten) are the ones the
Hamilton-Jacobi figures (`experiments.hj_smoothing`) smooth.

`Landscape.loss` is TensorFlow acting on the last axis (one point of dimension
`dim`, or any batch of them), so the same object is the SDE's loss and the
plotting grid's values (`on_grid`). `classify` assigns points to the valley
(basin of attraction under gradient flow) they lie in.

References:
  [1] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
  [2] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

__all__ = ["Landscape", "VALLEYS", "RIPPLED", "classify"]


def _bump(w, center, widths):
    """exp(-sum_i (w_i - c_i)^2 / (2 s_i^2)) over the last axis."""
    z = (w - tf.constant(center, w.dtype)) / tf.constant(widths, w.dtype)
    return tf.exp(-0.5 * tf.reduce_sum(z**2, axis=-1))


@dataclasses.dataclass(frozen=True)
class Landscape:
    """`f(w) = c |w|^2 + 1 - depth_n bump_narrow(w) - depth_w bump_wide(w) + a prod_i sin(k w_i)`.

    Attributes:
      name: the key of this landscape in results files ("1d", "rippled_2d", ...).
      dim: dimension of w (1 or 2).
      narrow_center, narrow_widths, narrow_depth: the narrow deep well.
      wide_center, wide_widths, wide_depth: the wide shallow valley.
      confinement: c, keeps every path bounded.
      ripple_amplitude, ripple_frequency: a and k of the ripples (a = 0: none).
    """

    name: str
    dim: int
    narrow_center: tuple
    narrow_widths: tuple
    narrow_depth: float
    wide_center: tuple
    wide_widths: tuple
    wide_depth: float
    confinement: float = 0.05
    ripple_amplitude: float = 0.0
    ripple_frequency: float = 0.0

    def loss(self, w):
        """f at the points `w[..., :dim]` (a tensor or array; float32 or float64)."""
        w = tf.convert_to_tensor(w)
        f = (self.confinement * tf.reduce_sum(w**2, axis=-1) + 1.0
             - self.narrow_depth * _bump(w, self.narrow_center, self.narrow_widths)
             - self.wide_depth * _bump(w, self.wide_center, self.wide_widths))
        if self.ripple_amplitude:
            f += self.ripple_amplitude * tf.reduce_prod(tf.sin(self.ripple_frequency * w), axis=-1)
        return f

    def on_grid(self, axis) -> np.ndarray:
        """f (float64) on the grid `axis` (1-D) or `axis x axis` (2-D, indexed [i, j] = (axis[i], axis[j]))."""
        axis = np.asarray(axis, np.float64)
        if self.dim == 1:
            points = axis[:, None]
        else:
            w0, w1 = np.meshgrid(axis, axis, indexing="ij")
            points = np.stack([w0, w1], -1)
        return self.loss(tf.constant(points)).numpy()

    def valleys(self) -> dict:
        return {"narrow": self.narrow_center, "wide": self.wide_center}


# The controlled-SDE experiment's landscapes: two valleys, no ripples.
VALLEYS = {
    1: Landscape("1d", 1, (-1.0,), (0.15,), 1.0, (1.4,), (0.8,), 0.8),
    2: Landscape("2d", 2, (-1.2, 1.0), (0.15, 0.15), 1.0, (1.0, -0.8), (0.8, 0.6), 0.8),
}

# The Hamilton-Jacobi figures' landscapes: the same kind, with ripples to flatten.
RIPPLED = {
    1: Landscape("rippled_1d", 1, (-1.0,), (0.12,), 1.0, (1.4,), (0.7,), 0.9, confinement=0.06,
                 ripple_amplitude=0.08, ripple_frequency=9.0),
    2: Landscape("rippled_2d", 2, (-1.2, 1.0), (0.15, 0.15), 1.05, (1.0, -0.8), (0.8, 0.5), 0.9,
                 confinement=0.05, ripple_amplitude=0.08, ripple_frequency=7.0),
}


@tf.function(autograph=False, reduce_retracing=True)
def _gradient_flow(loss_fn_batched, w, learning_rate, num_steps):
    def body(i, w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            total = tf.reduce_sum(loss_fn_batched(w))
        return i + 1, w - learning_rate * tape.gradient(total, w)

    return tf.while_loop(lambda i, w: i < num_steps, body, (tf.constant(0), w))[1]


def classify(landscape: Landscape, points):
    """The valley ("narrow", "wide" or "other") whose basin of attraction under gradient flow holds each point.

    Returns:
      (labels, minima): an object array of labels per point, and {valley: the
      minimum near its bump's centre, found by the same flow}.
    """
    # Step 0.02 is stable for the narrow well (curvature ~44); 2000 steps reach either minimum.
    # The points and the valley centers flow in one call: one trace, no retracing.
    valleys = landscape.valleys()
    starts = np.concatenate([np.asarray(points, np.float32).reshape(len(points), -1),
                             np.asarray(list(valleys.values()), np.float32)])
    flowed = _gradient_flow(landscape.loss, tf.constant(starts), 0.02, 2000).numpy()
    ends = flowed[:len(points)]
    labels = np.full(len(points), "other", dtype=object)
    minima = dict(zip(valleys, flowed[len(points):]))
    for name, minimum in minima.items():
        labels[np.linalg.norm(ends - minimum, axis=-1) < 0.1] = name
    return labels, minima
