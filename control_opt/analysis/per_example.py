"""Per-example gradients of a Keras model, vectorized over the examples.

For the loss `f(w) = (1/N) sum_i l_i(w)`, `l_i(w) = loss(y_i, model(x_i; w))`,
the per-example gradients are the rows of the `N x P` Jacobian

    J = [grad l_1(w); ...; grad l_N(w)],

computed with `tf.vectorized_map` (pfor: one batched computation rather than
`N` gradient calls) chunk by chunk, so at most `chunk_size x P` numbers are
alive at once on the device. The model runs in inference mode
(`training=False`): BatchNorm in training mode normalizes with the batch
statistics and so couples the examples, and per-example gradients would not
be defined. Where pfor cannot vectorize a layer, the computation falls back
to a sequential `tf.map_fn` loop with a `RuntimeWarning`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from control_opt.analysis._problem import ModelProblem

__all__ = ["per_example_gradients"]


def _chunk_jacobian(problem, weights, x, y):
    def one(pair):
        xi, yi = pair
        with tf.GradientTape() as tape:
            tape.watch(weights)
            value = problem.mean_loss(weights, xi[tf.newaxis], yi[tf.newaxis])
        grads = tape.gradient(value, weights)
        grads = [tf.zeros_like(w) if g is None else g for g, w in zip(grads, weights)]
        return problem.flatten(grads)

    if problem.vectorize:
        return tf.vectorized_map(one, (x, y), fallback_to_while_loop=False)
    return tf.map_fn(one, (x, y), fn_output_signature=problem.dtype)


def jacobian_chunks(problem, verbose=False, float64=True):
    """Yields `(start, J_chunk)`, `J_chunk` the `[n_chunk, P]` per-example gradients (float64, or the model's dtype)."""
    start = 0
    for x, y in problem.chunks():
        jac = problem.call("jacobian", lambda: lambda w, a, b: _chunk_jacobian(problem, w, a, b), problem.weights, x, y)
        if verbose:
            logging.info("per-example gradients: %d / %d examples", start + int(x.shape[0]), problem.num_examples)
        yield start, jac.numpy().astype(np.float64) if float64 else jac.numpy()
        start += int(x.shape[0])


def per_example_gradients(model, loss, x, y, *, chunk_size=None, flatten=True, verbose=False):
    """The gradient of each example's loss, `grad_w loss(y_i, model(x_i; w))`, `i = 1..N`.

    Vectorized with `tf.vectorized_map` over the examples of each chunk (a
    sequential loop, with a warning, where pfor cannot vectorize a layer); the
    model runs with `training=False` (inference mode).

    Example:
      >>> jac = per_example_gradients(model, "sparse_categorical_crossentropy", x, y, chunk_size=256)
      >>> jac.shape  # (N, P), P = total number of trainable weights
      >>> jac.mean(axis=0)  # the full-batch gradient

    Args:
      model: a built Keras model (its variables are read, never written).
      loss: a Keras loss (object or name) or a callable `loss(y_true, y_pred)`;
        each example's loss is `mean(loss(y_i[None], model(x_i[None])))`.
      x, y: the `N` examples.
      chunk_size: examples per vectorized chunk, bounding memory to
        `chunk_size x P` numbers (default: all `N` at once).
      flatten: return one `[N, P]` matrix (weights in the order of
        `model.trainable_variables`, each flattened row-major); else a list
        of `[N, *weight.shape]` arrays.
      verbose: log progress per chunk (absl logging).

    Returns:
      A float64 numpy array `[N, P]`, or a list of arrays (see `flatten`).

    Raises:
      ValueError: a model that is not built, a loss that is not callable,
        `x`/`y` with different numbers of examples, a bad `chunk_size`.
    """
    problem = ModelProblem(model, loss, x, y, chunk_size)
    jac = np.empty((problem.num_examples, problem.dim))
    for start, chunk in jacobian_chunks(problem, verbose):
        jac[start:start + chunk.shape[0]] = chunk
    if flatten:
        return jac
    parts = np.split(jac, np.cumsum(problem.sizes)[:-1], axis=1)
    return [p.reshape((problem.num_examples,) + s) for p, s in zip(parts, problem.shapes)]
