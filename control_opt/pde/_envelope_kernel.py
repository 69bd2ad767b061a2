"""The lower envelope of `lower_envelope.py`, compiled: one XLA program per call.

For every row `b` of a row-major `(rows, length)` float64 array `f`,

    d[b, p] = min_q  f[b, q] + c (p - q)^2,       arg[b, p] = the minimizing q,

by the Felzenszwalb-Huttenlocher stack algorithm (the module docstring of
`lower_envelope.py`), written as TensorFlow ops under `tf.function(jit_compile=True)`:

* The stack pass is a `tf.while_loop` over the points (all rows, one after
  the other) with an inner `tf.while_loop` of pops. The stack is one
  `(size, 4)` buffer of rows `(q, f[q], z, b)`, updated in place by
  `dynamic_update_slice`; the top row is carried in the loop state. The
  parabolas of row `b` are pushed above those of row `b - 1`, and the first
  parabola of a row is never popped (its interval starts at `-inf`), so rows
  do not interact. `q`, `z` and the intersections are in the row's own index,
  with the same formula, hence the same rounding, as a 1-D transform of the row.
* The query is vectorized: the first grid point of each stack slot's interval
  goes through a scatter-add and a cumulative sum to give every point its slot.

XLA:CPU compiles a while loop whose body touches few bytes into a single
function (`SmallWhileLoopHoistingPass`, the `xla_cpu_small_call` attribute);
larger bodies run op by op, about 10x slower here. Both loops of the stack pass
are small: keep them so (tests/pde/test_lower_envelope.py checks the compiled HLO).

Shapes: XLA compiles one program per input shape, so the inputs are padded to a
bucket (`bucket_size`: 2^k or 3 2^(k-1), at least 1024) and the true sizes are
passed as scalars. Each function has one trace (`input_signature` with `None`
dims; called through its concrete function, which skips `tf.function`'s
dispatch) and one compilation per bucket. Everything runs on the CPU: a
sequential loop on a GPU would be far slower.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from control_opt._internal.tf_internals import xla

__all__ = ["bucket_padded", "bucket_size", "hopf_lax_1d", "hopf_lax_2d", "transform_1d"]

_MIN_BUCKET = 1 << 10
_DEVICE = "/CPU:0"
_F64 = tf.float64


def bucket_size(n: int) -> int:
    """The padded size for `n` points: the least 2^k or 3 2^(k-1) >= n, at least 1024."""
    size = _MIN_BUCKET
    while size < n:
        if size * 3 // 2 >= n:
            return size * 3 // 2
        size *= 2
    return size


def bucket_padded(a, fill):
    """`a` flattened into a float64 array of `bucket_size(a.size)` entries, `fill` after."""
    out = np.empty(bucket_size(a.size))
    out[:a.size] = np.ravel(a)
    out[a.size:] = fill
    return out


def _row(a, i):
    """Row `i` (a scalar tensor) of the 2-D tensor `a`, as a 1-D tensor."""
    return xla.dynamic_slice(a, tf.stack([i, tf.constant(0)]), [1, a.shape[1]])[0]


def _put_row(a, i, value):
    return xla.dynamic_update_slice(a, value[None, :], tf.stack([i, tf.constant(0)]))


def _index_in_row(flat, length):
    """`flat mod length` for float64 whole numbers, exactly (no vectorized integer division
    on x86): `(flat + 1/2) / length` is at least `1/(2 length)` from a whole number."""
    return flat - tf.floor((flat + 0.5) / length) * length


def _stack_pass(f, rows, length, two_c, one_row):
    """The lower envelopes of all rows, on one stack (`one_row`: rows is 1,
    known when tracing; the loop then skips the row bookkeeping, ~5% faster).

    Returns `(stack, top)`: rows `0..top` of `stack` are `(q, f[q], z, b)`, the
    root `q` (in its row `b`) and value of each parabola of the envelopes, and
    `z` the left end of the interval where it is lowest (`-inf` for the first
    parabola of a row). Rows with no finite `f` have no slot.
    """
    stack = tf.zeros([tf.shape(f)[0], 4], _F64)
    neg_inf = tf.constant(-np.inf, _F64)

    def point(flat, q, b, base, top, r, stack):
        # `r`, the top slot's row, is meaningful when top >= base (the row's first slot).
        if not one_row:
            new_row = q >= length
            q = tf.where(new_row, 0, q)
            b = tf.where(new_row, b + 1.0, b)
            base = tf.where(new_row, top + 1, base)
        fq = xla.dynamic_slice(f, tf.reshape(flat, [1]), [1])[0]
        qf = tf.cast(q, _F64)
        finite = tf.math.is_finite(fq)

        def intersection(r):
            return (fq - r[1]) / (two_c * (qf - r[0])) + 0.5 * (qf + r[0])

        def hidden(top, r, s):   # the top parabola is nowhere below the new one
            return tf.logical_and(tf.logical_and(finite, top > base), s <= r[2])

        def pop(top, r, s):
            r = _row(stack, top - 1)
            return top - 1, r, intersection(r)

        top, r, s = tf.while_loop(hidden, pop, (top, r, intersection(r)))
        new = tf.stack([qf, fq, tf.where(top >= base, s, neg_inf), b])
        # Slot top + 1 is free: written always, kept (top + 1) only for a finite f[q].
        stack = _put_row(stack, top + 1, new)
        top = tf.where(finite, top + 1, top)
        r = tf.where(finite, new, r)
        return flat + 1, q + 1, b, base, top, r, stack

    zero = tf.constant(0)
    state = (zero, zero, tf.constant(0.0, _F64), zero, tf.constant(-1), tf.zeros([4], _F64), stack)
    *_, top, _, stack = tf.while_loop(lambda flat, *_: flat < rows * length, point, state)
    return stack, top


def _query(stack, top, length, c, f):
    """`(d, arg)` on the flat padded grid from the stack of `_stack_pass`.

    The parabola of slot k is lowest on `(z_k, z_{k+1}]`, from grid point
    `floor(z_k) + 1` of its row (clipped to the row) on: flat index `lo_k`,
    non-decreasing in k. So the slot of flat point P is the number of slots with
    `lo_k <= P`, minus one: a scatter-add and a cumulative sum. A point whose
    slot lies in another (earlier) row is in a row with no finite `f`: there
    `d = inf`, `arg = -1`.
    """
    size = tf.shape(f)[0]
    points = tf.range(size)
    lengthf = tf.cast(length, _F64)
    first = tf.clip_by_value(tf.floor(stack[:, 2]) + 1.0, 0.0, lengthf)
    first = tf.where(tf.math.is_nan(first), lengthf, first)
    row_start = tf.cast(stack[:, 3], tf.int32) * length
    lo = row_start + tf.cast(first, tf.int32)
    marks = tf.tensor_scatter_nd_add(tf.zeros([size + 1], tf.int32), lo[:, None],
                                     tf.cast(points <= top, tf.int32))
    slot = tf.math.cumsum(marks[:size]) - 1
    q = tf.cast(stack[:, 0], tf.int32)
    root = tf.gather(tf.stack([row_start + q, q], axis=1), tf.maximum(slot, 0))
    flat_root, arg = root[:, 0], root[:, 1]
    # P is in the root's row iff P - (the root's row start) < length; and p - q = P - flat_root.
    ok = tf.logical_and(points - flat_root + arg < length, slot >= 0)
    d = tf.where(ok, tf.gather(f, flat_root) + c * tf.square(tf.cast(points - flat_root, _F64)),
                 tf.constant(np.inf, _F64))
    return d, tf.where(ok, arg, -1)


def _rows_transform(f, rows, length, c, one_row=False):
    stack, top = _stack_pass(f, rows, length, 2.0 * c, one_row)
    return _query(stack, top, length, c, f)


def _prox(x, arg):
    """`x[arg]`, NaN where `arg = -1`."""
    return tf.where(arg >= 0, tf.gather(x, tf.maximum(arg, 0)), tf.constant(np.nan, _F64))


def _transpose(a, rows, length):
    """The flat `(length, rows)` transpose of the flat `(rows, length)` array `a` (padded)."""
    size = tf.shape(a)[0]
    flat = tf.cast(tf.range(size), _F64)
    i = _index_in_row(flat, tf.cast(rows, _F64))          # out[j, i] = a[i, j]
    j = (flat - i) / tf.cast(rows, _F64)
    return tf.gather(a, tf.minimum(tf.cast(i * tf.cast(length, _F64) + j, tf.int32), size - 1))


_SCALAR_I = tf.TensorSpec([], tf.int32)
_SCALAR_F = tf.TensorSpec([], _F64)
_FLAT = tf.TensorSpec([None], _F64)


@tf.function(jit_compile=True, input_signature=[_FLAT, _SCALAR_I, _SCALAR_F])
def _transform_1d_xla(f, n, c):
    d, arg = _rows_transform(f, tf.constant(1), n, c, one_row=True)
    return d, tf.cast(arg, tf.int64)


@tf.function(jit_compile=True, input_signature=[_FLAT, _SCALAR_I, _SCALAR_F, _FLAT])
def _hopf_lax_1d_xla(f, n, c, x):
    u, arg = _rows_transform(f, tf.constant(1), n, c, one_row=True)
    return u, _prox(x, arg)


@tf.function(jit_compile=True,
             input_signature=[_FLAT, _SCALAR_I, _SCALAR_I, _SCALAR_F, _SCALAR_F, _FLAT, _FLAT])
def _hopf_lax_2d_xla(f, n0, n1, c0, c1, x0, x1):
    # Axis 0 for every column: a row transform of the transpose; then axis 1 for every row.
    g, arg0 = _rows_transform(_transpose(f, n0, n1), n1, n0, c0)     # (n1, n0)
    u, l = _rows_transform(_transpose(g, n1, n0), n0, n1, c1)        # (n0, n1)
    # The axis-0 argmin of the chosen column l: arg0[l, i].
    size = tf.shape(f)[0]
    flat = tf.cast(tf.range(size), _F64)
    i = tf.cast((flat - _index_in_row(flat, tf.cast(n1, _F64))) / tf.cast(n1, _F64), tf.int32)
    k = tf.gather(arg0, tf.clip_by_value(l * n0 + i, 0, size - 1))
    return u, _prox(x0, tf.where(l >= 0, k, -1)), _prox(x1, l)


@functools.lru_cache(maxsize=None)
def _concrete(function):
    """The one concrete function of `function` (traced on the CPU)."""
    with tf.init_scope(), tf.device(_DEVICE):
        return function.get_concrete_function()


def _run(function, *args):
    """`function` on NumPy arguments, eagerly (even when called while a
    `tf.function` is being traced) and on the CPU; NumPy results."""
    with tf.init_scope(), tf.device(_DEVICE):
        results = _concrete(function)(*[tf.constant(a) for a in args])
        return [t.numpy() for t in results]


def transform_1d(f, c):
    """`(d, arg)` of `lower_envelope.lower_envelope_transform` for the 1-D float64
    array `f`: `arg` int64, `-1` (and `d = inf`) where every `f` is inf."""
    n = f.size
    d, arg = _run(_transform_1d_xla, bucket_padded(f, np.inf), np.int32(n), np.float64(c))
    return d[:n], arg[:n]


def hopf_lax_1d(f, x, c):
    """`(u, prox)` of `hopf_lax` for `f` on the 1-D grid `x` with curvature `c`."""
    n = f.size
    u, prox = _run(_hopf_lax_1d_xla, bucket_padded(f, np.inf), np.int32(n), np.float64(c),
                   bucket_padded(x, 0.0))
    return u[:n], prox[:n]


def hopf_lax_2d(f, x0, x1, c0, c1):
    """`(u, prox)` of `hopf_lax` for the `(n0, n1)` array `f` on the grid `(x0, x1)`
    with curvatures `c0`, `c1` along the axes; `prox` of shape `(2, n0, n1)`."""
    n0, n1 = f.shape
    u, prox0, prox1 = _run(_hopf_lax_2d_xla, bucket_padded(f, np.inf), np.int32(n0),
                           np.int32(n1), np.float64(c0), np.float64(c1),
                           bucket_padded(x0, 0.0), bucket_padded(x1, 0.0))
    size = n0 * n1
    return (u[:size].reshape(n0, n1),
            np.stack([prox0[:size].reshape(n0, n1), prox1[:size].reshape(n0, n1)]))
