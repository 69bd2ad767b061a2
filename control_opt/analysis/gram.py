"""The centered Gram matrix of the per-example gradients as a block operator, without storing the Jacobian.

With `J` the `N x P` per-example Jacobian (rows `g_i`) and `J_c = J - 1 gbar^T`,
the diffusion matrix `D = (1/N) J_c^T J_c` and the `N x N` Gram matrix

    G = (1/N) J_c J_c^T

have the same nonzero eigenvalues (`D v = lambda v` for `v = J_c^T u`,
`G u = lambda u`), and `G 1 = 0`. A block `U` (`N x b`, columns orthogonal to
`1`) is multiplied in two passes over the data, each computing the
per-example gradients chunk by chunk (`per_example.jacobian_chunks`, one
vectorized call per chunk):

    Z = J_c^T U = sum_chunks J_{c,a}^T U_a          (P x b, accumulated in float64)
    G U = (1/N) [J_{c,a} Z]_a, then projected on 1-perp.

The cost of a block is two Jacobian passes and `4 N P b` flops, shared by
the `b` columns: with `b` around 100 a product costs a small fraction of a
gradient evaluation, where a Lanczos product `D v` (one Jacobian-vector and
one vector-Jacobian product) costs about two. Chunks are kept in memory as
far as the budget allows (`cache_bytes`); the others are recomputed.

Centering: each chunk is shifted by `c` (the full-batch gradient, computed
once) before any product. The result does not depend on `c` being exactly
`gbar`: for `U` orthogonal to `1`, `(J - 1 c^T)^T U = J_c^T U`, and
`(J - 1 c^T) Z` differs from `J_c Z` by a multiple of `1`, which the
projection removes. The shift only keeps a large common gradient out of the
float32 products (no cancellation). The same pass gives `tr D` exactly,
`(1/N) sum_i |g_i - c|^2 - |gbar - c|^2`, and `gbar`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from control_opt.analysis.per_example import _chunk_jacobian
from control_opt.analysis.progress import Progress

__all__ = ["GramOperator"]


class GramOperator:
    """`G = (1/N) J_c J_c^T` on `N`-vectors orthogonal to `1` (`matmat`, `matvec`, `dim = N`).

    Args:
      problem: a `ModelProblem` (its `chunk_size` sets the chunks).
      shift: `c`, a flat float64 vector near `gbar` (the full-batch gradient).
      cache_bytes: bytes of centered Jacobian chunks kept between passes.
      verbose: log progress of each pass.

    Attributes after the first pass: `trace` (`tr D`), `gradient` (`gbar`,
    float64); `num_passes` counts Jacobian passes, `num_chunk_evaluations`
    the chunks computed (cached chunks are not recomputed).
    """

    def __init__(self, problem, shift, cache_bytes=0, verbose=False):
        self.problem = problem
        self.dim = problem.num_examples
        self.verbose = verbose
        self.cache_bytes = int(cache_bytes)
        self._shift = tf.constant(np.asarray(shift), dtype=problem.dtype)
        self._shift64 = np.asarray(shift, dtype=np.float64)
        self._chunks = list(problem.chunks())
        self._starts = np.cumsum([0] + [int(x.shape[0]) for x, _ in self._chunks])
        self._cache = {}
        self._cached = 0
        self._seen = set()
        self._sum_sq = 0.0
        self._sum = np.zeros(problem.dim)
        self.trace = self.gradient = None
        self.num_passes = 0
        self.num_chunk_evaluations = 0
        self.num_matvecs = 0

    def _centered(self, weights, x, y, shift):
        jac = _chunk_jacobian(self.problem, weights, x, y) - shift[tf.newaxis]
        return jac, tf.reduce_sum(tf.cast(tf.square(jac), tf.float64)), tf.reduce_sum(tf.cast(jac, tf.float64), 0)

    def _chunk(self, i):
        if i in self._cache:
            return self._cache[i]
        x, y = self._chunks[i]
        jac, sum_sq, total = self.problem.call(
            "centered_jacobian", lambda: self._centered, self.problem.weights, x, y, self._shift)
        self.num_chunk_evaluations += 1
        if i not in self._seen:  # the trace and the mean gradient, from the first pass
            self._seen.add(i)
            self._sum_sq += float(sum_sq)
            self._sum += total.numpy()
            if len(self._seen) == len(self._chunks):
                n = self.dim
                mean = self._sum / n
                self.gradient = self._shift64 + mean
                self.trace = self._sum_sq / n - float(mean @ mean)
        size = int(np.prod(jac.shape)) * jac.dtype.size
        if self._cached + size <= self.cache_bytes:
            self._cache[i] = jac
            self._cached += size
        return jac

    def _pass(self, what):
        self.num_passes += 1
        progress = Progress(len(self._chunks), what, self.verbose)
        for i in range(len(self._chunks)):
            yield self._starts[i], self._starts[i + 1], self._chunk(i)
            progress.step()

    def rmatmat(self, u):
        """`J_c^T U` (`[P, b]` float64) for `U` (`[N, b]`) orthogonal to `1`."""
        u = np.asarray(u, dtype=np.float64).reshape(self.dim, -1)
        total = tf.zeros((self.problem.dim, u.shape[1]), tf.float64)
        for start, stop, jac in self._pass(f"J^T U ({u.shape[1]} columns), per-example gradients"):
            total = _add_transposed(total, jac, tf.constant(u[start:stop], dtype=jac.dtype))
        return total.numpy()

    def matmat(self, u):
        """`G U` for `U` (`[N, b]`); the result is projected on the complement of `1`."""
        u = np.asarray(u, dtype=np.float64).reshape(self.dim, -1)
        u = u - u.mean(axis=0)
        z = tf.constant(self.rmatmat(u), dtype=self.problem.dtype)
        out = np.empty_like(u)
        for start, stop, jac in self._pass(f"J Z ({u.shape[1]} columns), per-example gradients"):
            out[start:stop] = tf.matmul(jac, z).numpy()
        out /= self.dim
        self.num_matvecs += u.shape[1]
        return out - out.mean(axis=0)

    def matvec(self, v):
        return self.matmat(np.asarray(v, dtype=np.float64).reshape(-1, 1))[:, 0]

    def ensure_first_pass(self):
        """Computes every chunk once (for `trace` and `gradient`) if no pass has yet."""
        for _ in self._pass("per-example gradients (trace of D)") if self.trace is None else ():
            pass


@tf.function(autograph=False, reduce_retracing=True)
def _add_transposed(total, jac, u):
    return total + tf.cast(tf.matmul(jac, u, transpose_a=True), tf.float64)
