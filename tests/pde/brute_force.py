"""The 2-D Hopf-Lax value by the direct minimum over the grid, shared by the PDE tests."""

import numpy as np


def brute_force_2d(f, x0, x1, t):
    """`u(w) = min_y f(y) + |w - y|^2 / (2t)` over the 2-D grid, directly (O(n^2))."""
    w0, w1 = np.meshgrid(x0, x1, indexing="ij")
    p0, p1 = w0.ravel(), w1.ravel()
    objective = f.ravel()[None, :] + ((p0[:, None] - p0[None, :]) ** 2
                                      + (p1[:, None] - p1[None, :]) ** 2) / (2.0 * t)
    return objective.min(axis=1).reshape(f.shape)
