"""A Keras model's loss as a function of its weights, and seeded minibatches.

The samplers and SDEs of the library act on `f(w)`, a function of a weight
structure. For a network, `w` is the list of the model's trainable weights and
`f(w)` its loss on a batch, evaluated functionally with
`model.stateless_call` (the model's own variables are read, never written), so
the same `f` serves a single weight list, a batch of chains
(`tf.vectorized_map`) and `tf.function`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from control_opt._internal import sampling

__all__ = ["keras_loss_fn", "model_weights", "minibatch_fn"]


def model_weights(model):
    """The model's trainable weights as a list of tensors (a copy: the anchor `w`)."""
    return [tf.convert_to_tensor(v) for v in model.trainable_variables]


def keras_loss_fn(model, loss, x, y):
    """`f(weights, batch=None)`: `loss(y, model(x))` with the model's trainable weights replaced.

    Args:
      model: a built Keras model; its non-trainable variables are used as they are.
      loss: a Keras loss (object, name or callable `loss(y_true, y_pred)`); a
        non-scalar result is averaged.
      x, y: the data on which `f` is evaluated when no `batch` is passed.

    Returns:
      `loss_fn(weights, batch=None)`, `weights` a list shaped like
      `model.trainable_variables`, `batch` an optional `(x, y)` pair (what
      `minibatch_fn` draws).

    Example:
      >>> f = keras_loss_fn(model, "sparse_categorical_crossentropy", x, y)
      >>> f(model_weights(model))
    """
    import keras

    if not getattr(model, "built", False):
        raise ValueError("`model` must be built (call it once or give it an Input) before its loss is a function of weights.")
    loss = keras.losses.get(loss) if isinstance(loss, str) else loss
    if not callable(loss):
        raise ValueError(f"`loss` must be a Keras loss or a callable, got {loss!r}.")
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    non_trainable = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y)

    def loss_fn(weights, batch=None):
        if not isinstance(weights, (list, tuple)) or len(weights) != len(shapes):
            raise ValueError(
                f"`weights` must be a list of {len(shapes)} tensors shaped like `model.trainable_variables`, "
                f"got {type(weights).__name__} of length {len(weights) if isinstance(weights, (list, tuple)) else 1}."
            )
        for i, (w, shape) in enumerate(zip(weights, shapes)):
            if tuple(w.shape) != shape:
                raise ValueError(f"`weights[{i}]` has shape {tuple(w.shape)}, the model's weight has shape {shape}.")
        inputs, targets = (x, y) if batch is None else batch
        outputs, _ = model.stateless_call(list(weights), non_trainable, inputs, training=False)
        return tf.reduce_mean(loss(targets, outputs))

    return loss_fn


def minibatch_fn(x, y, batch_size):
    """`batch_fn(seed) -> (x_b, y_b)`: a minibatch drawn with replacement from a stateless seed.

    The same seed gives the same batch, which is what lets a stochastic-
    gradient Langevin step be replayed exactly.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y)
    n = x.shape[0]
    if n is None or n != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same known number of examples, got {x.shape} and {y.shape}.")

    def batch_fn(seed):
        index = tf.cast(sampling.random_bits([batch_size], seed) % n, tf.int32)  # modulo bias < n / 2^32
        return tf.gather(x, index), tf.gather(y, index)

    return batch_fn

