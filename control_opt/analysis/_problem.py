"""A Keras model's loss on a data set as a function of one flat weight vector.

Shared by the gradient-noise, Hessian and trace tools: the model's trainable
weights are read once (as tensors; the model's variables are never written),
flattened into one vector of dimension `P`, and the loss on the data is
evaluated functionally with `model.stateless_call(..., training=False)`, in
inference mode (BatchNorm and Dropout would otherwise couple the examples or
add noise). The data set is processed in chunks of `chunk_size` examples so
memory stays bounded, and every reduction over the data is a weighted sum of
the chunk results.
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from control_opt._internal import checks

__all__ = ["ModelProblem", "as_operator", "LinearOperator"]


def _as_loss(loss):
    import keras  # pylint: disable=import-outside-toplevel

    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if not callable(loss):
        raise ValueError(f"`loss` must be a Keras loss (object, name) or a callable `loss(y_true, y_pred)`, "
                         f"got {loss!r}.")
    return loss


class LinearOperator:
    """A symmetric linear operator on flat float64 vectors: `matvec(v) -> A v`, `dim`.

    The Lanczos, quadrature and trace routines of `control_opt.analysis` accept
    one of these (or any object with `matvec` and `dim`, or a dense symmetric
    matrix).
    """

    def __init__(self, matvec, dim, name="operator"):
        self._matvec = matvec
        self.dim = checks.check_int("dim", dim, 1)
        self.name = name
        self.num_matvecs = 0

    def matvec(self, v):
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.dim,):
            raise ValueError(f"`v` must have shape ({self.dim},), got {v.shape}.")
        self.num_matvecs += 1
        return np.asarray(self._matvec(v), dtype=np.float64).reshape(self.dim)

    def to_dense(self):
        """The dense `dim x dim` matrix, column by column (small operators only)."""
        return np.stack([self.matvec(e) for e in np.eye(self.dim)], axis=1)


def as_operator(operator, name="operator"):
    """A `LinearOperator` from an operator, an object with `matvec`/`dim`, or a dense symmetric matrix."""
    if isinstance(operator, LinearOperator):
        return operator
    if hasattr(operator, "matvec") and hasattr(operator, "dim"):
        return LinearOperator(operator.matvec, operator.dim, name)
    matrix = np.asarray(operator, dtype=np.float64) if not callable(operator) else None
    if matrix is None or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"`{name}` must be a LinearOperator, an object with `matvec` and `dim`, "
                         f"or a square matrix, got {type(operator).__name__}.")
    return LinearOperator(lambda v: matrix @ v, matrix.shape[0], name)


class ModelProblem:
    """`f(w) = (1/N) sum_i loss(y_i, model(x_i; w))` with `w` one flat vector.

    Args:
      model: a built Keras model.
      loss: a Keras loss (object or name) or a callable `loss(y_true, y_pred)`;
        a non-scalar result is averaged. Its dtype sets the precision of
        everything computed (a float32 Keras loss object on a float64 model
        rounds to float32: pass `dtype="float64"` to the loss, or a name).
      x, y: the data, `N` examples along the first axis.
      chunk_size: examples per chunk (bounds memory); default all at once.
    """

    def __init__(self, model, loss, x, y, chunk_size=None):
        if not getattr(model, "built", False) or not hasattr(model, "stateless_call"):
            raise ValueError("`model` must be a built Keras 3 model (call it once or give it an Input).")
        self.model = model
        self.loss = _as_loss(loss)
        self.weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
        if not self.weights:
            raise ValueError("`model` has no trainable weights.")
        self.non_trainable = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]
        self.shapes = [tuple(w.shape) for w in self.weights]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.dim = int(sum(self.sizes))
        self.dtype = self.weights[0].dtype
        self.x = tf.convert_to_tensor(x)
        self.y = tf.convert_to_tensor(y)
        if self.x.shape.rank == 0 or self.y.shape.rank == 0 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"`x` and `y` must have the same number of examples along axis 0, "
                             f"got {self.x.shape} and {self.y.shape}.")
        self.num_examples = int(self.x.shape[0])
        if self.num_examples < 1:
            raise ValueError("`x` must hold at least one example.")
        self.chunk_size = self.num_examples if chunk_size is None else checks.check_int("chunk_size", chunk_size, 1)
        self.vectorize = True
        self._fns = {}

    # --- flat vectors -------------------------------------------------------------------
    def flat_weights(self):
        return self.flatten(self.weights).numpy().astype(np.float64)

    def flatten(self, parts, batch_dims=0):
        """Concatenates a list of weight-shaped tensors (with `batch_dims` leading axes)."""
        lead = tf.shape(parts[0])[:batch_dims]
        return tf.concat([tf.reshape(p, tf.concat([lead, [-1]], 0)) for p in parts], axis=-1)

    def unflatten(self, vector):
        vector = tf.cast(tf.convert_to_tensor(vector), self.dtype)
        parts = tf.split(vector, self.sizes)
        return [tf.reshape(p, s) for p, s in zip(parts, self.shapes)]

    def chunks(self):
        for start in range(0, self.num_examples, self.chunk_size):
            stop = min(start + self.chunk_size, self.num_examples)
            yield self.x[start:stop], self.y[start:stop]

    # --- losses -------------------------------------------------------------------------
    def mean_loss(self, weights, x, y):
        outputs, _ = self.model.stateless_call(list(weights), self.non_trainable, x, training=False)
        return tf.cast(tf.reduce_mean(self.loss(y, outputs)), self.dtype)

    def per_example_losses(self, weights, x, y):
        """`[loss_i]` for the examples of a chunk, each evaluated on its own (a batch of one)."""
        def one(pair):
            xi, yi = pair
            return self.mean_loss(weights, xi[tf.newaxis], yi[tf.newaxis])

        if self.vectorize:
            return tf.vectorized_map(one, (x, y), fallback_to_while_loop=False)
        return tf.map_fn(one, (x, y), fn_output_signature=self.dtype)

    def call(self, key, factory, *args):
        """Runs `factory()` (a Python function, built after the mode is known) as a cached `tf.function`.

        A pfor failure switches the problem to loop mode (`tf.map_fn`) with a
        `RuntimeWarning`, and the function is rebuilt and retraced.
        """
        for _ in range(2):
            if (key, self.vectorize) not in self._fns:
                self._fns[(key, self.vectorize)] = tf.function(factory(), autograph=False, reduce_retracing=True)
            try:
                return self._fns[(key, self.vectorize)](*args)
            except (ValueError, NotImplementedError, TypeError, tf.errors.InvalidArgumentError) as error:
                message = str(error).lower()
                if not self.vectorize or ("pfor" not in message and "vectoriz" not in message):
                    raise
                warnings.warn(f"tf.vectorized_map could not vectorize the per-example computation "
                              f"({str(error)[:200]}); falling back to a sequential loop over examples (slower).",
                              RuntimeWarning, stacklevel=3)
                self.vectorize = False
        raise AssertionError("unreachable")

    # --- gradients and products ---------------------------------------------------------
    def gradient(self, flat_w=None):
        """`grad f(w)` (flat float64), averaged over the data set chunk by chunk."""
        weights = self.weights if flat_w is None else self.unflatten(flat_w)

        def chunk_grad(weights, x, y):
            with tf.GradientTape() as tape:
                tape.watch(weights)
                value = self.mean_loss(weights, x, y)
            return value, self.flatten(tape.gradient(value, weights))

        total = np.zeros(self.dim)
        loss = 0.0
        for x, y in self.chunks():
            value, grad = self.call("grad", lambda: chunk_grad, weights, x, y)
            share = int(x.shape[0]) / self.num_examples
            total += share * grad.numpy().astype(np.float64)
            loss += share * float(value)
        return loss, total
