"""The order in which a run visits the training data: a function of (seed, epoch) only.

Because the permutation of effective epoch e depends on nothing but the seed
and e (a stateless shuffle), a run interrupted after epoch k and resumed reads
exactly the batches a straight run reads, without saving any iterator state.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["epoch_permutation", "train_batches"]


def _permutation(seed, epoch, n):
    # Stateless: a function of (seed, epoch) alone, in eager code and inside tf.data alike.
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which effective epoch `epoch` (0-based) visits the n examples."""
    return _permutation(seed, epoch, n).numpy()


def train_batches(x, y, *, seed: int, batch_size: int, initial_epoch: int, epochs: int) -> tf.data.Dataset:
    """tf.data of (x, y) minibatches for effective epochs [initial_epoch, epochs).

    Every epoch is n // batch_size full batches of its own permutation (the
    remainder is dropped per epoch, so batches never straddle two epochs).
    """
    n = len(x)
    steps = n // batch_size
    x_all, y_all = tf.constant(x), tf.constant(y)

    def epoch_batches(epoch):
        order = _permutation(seed, epoch, n)[: steps * batch_size]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order, (steps, batch_size)))

    batches = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_batches)
    batches = batches.map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)))
    batches = batches.apply(tf.data.experimental.assert_cardinality((epochs - initial_epoch) * steps))
    return batches.prefetch(tf.data.AUTOTUNE)
