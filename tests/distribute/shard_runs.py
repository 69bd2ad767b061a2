"""References of the replica checks: a model trained on one replica's shard alone, eagerly.

Replica a of a `MirroredStrategy` over n replicas gets rows `[s B n + a B, s B n + (a + 1) B)`
of global batch s (B examples per replica). The references run eagerly: no train
function to trace for a few steps of a tiny model (tracing is most of such a run's cost).
"""

import numpy as np
import tensorflow as tf


def shard_rows(rows, per_replica, n, replica):
    """Indices of replica `replica`'s rows among `rows` examples (in the order it sees them)."""
    steps = rows // (per_replica * n)
    return np.concatenate([np.arange(s * per_replica * n + replica * per_replica,
                                     s * per_replica * n + (replica + 1) * per_replica) for s in range(steps)])


def train_eagerly(model, optimizer, loss, x, y, batch_size, epochs=1):
    """What `model.fit(x, y, batch_size, epochs, shuffle=False)` does with `optimizer` (a Keras
    optimizer, not compiled into the model), eagerly: the gradient of the batch's mean loss,
    then `apply_gradients`. Returns the model."""
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            with tf.GradientTape() as tape:
                value = loss(yb, model(xb, training=True))
            optimizer.apply_gradients(zip(tape.gradient(value, model.trainable_variables), model.trainable_variables))
    return model
