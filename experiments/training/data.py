"""The order in which a run visits the training data: a function of (seed, epoch) only.

Because the permutation of effective epoch e depends on nothing but the seed
and e (a stateless shuffle), a run interrupted after epoch k and resumed reads
exactly the batches a straight run reads, without saving any iterator state.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from control_opt._internal import sampling
from control_opt.datasets.pipeline import random_crop_flip

__all__ = ["epoch_permutation", "train_batches", "augment_seed"]


def _permutation(seed, epoch, n):
    # Stateless: a function of (seed, epoch) alone, in eager code and inside tf.data alike.
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which effective epoch `epoch` (0-based) visits the n examples."""
    return _permutation(seed, epoch, n).numpy()


def augment_seed(seed, epoch, batch):
    """The [2] int32 stateless seed of the augmentation of batch `batch` of effective epoch `epoch`.

    A function of (seed, epoch, batch) only, like the order: resuming at any epoch
    redraws exactly the crops and flips of the straight run. (Tensors or ints.)
    """
    # An explicit [2] int32 seed (tfp's sanitizer would draw a fresh one for a Python int), salted
    # apart from the order's key, then folded with the epoch and the batch.
    base = tf.stack([tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), 2**31), tf.int32), tf.constant(0x41554731)])
    return sampling.fold_in(sampling.fold_in(base, epoch), batch)


def train_batches(x, y, *, seed: int, batch_size: int, initial_epoch: int, epochs: int,
                  augment: bool = False) -> tf.data.Dataset:
    """tf.data of (x, y) minibatches for effective epochs [initial_epoch, epochs).

    Every epoch is n // batch_size full batches of its own permutation (the
    remainder is dropped per epoch, so batches never straddle two epochs).
    With `augment`, each batch of images [B, H, W, C] is reflect-padded by 4,
    randomly cropped back and half of it flipped
    (`control_opt.datasets.pipeline.random_crop_flip`), seeded by
    `augment_seed(seed, epoch, batch)`; without it, the batches are exactly
    those of earlier versions (same order, same values).
    """
    n = len(x)
    steps = n // batch_size
    x_all, y_all = tf.constant(x), tf.constant(y)

    def epoch_batches(epoch):
        order = _permutation(seed, epoch, n)[: steps * batch_size]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order, (steps, batch_size)))

    batches = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_batches)
    if augment:
        if np.ndim(x) != 4:
            raise ValueError(f"augment needs images shaped [N, H, W, C], got x of shape {np.shape(x)}")
        # (epoch, batch) of every element, then the crops drawn in the parallel map.
        keys = tf.data.Dataset.range(initial_epoch, epochs).flat_map(
            lambda epoch: tf.data.Dataset.range(steps).map(lambda b: (epoch, b)))

        def fetch(key, idx):
            images = random_crop_flip(tf.gather(x_all, idx), augment_seed(seed, key[0], key[1]), pad=4)
            return images, tf.gather(y_all, idx)

        batches = tf.data.Dataset.zip((keys, batches)).map(fetch, num_parallel_calls=tf.data.AUTOTUNE,
                                                           deterministic=True)
    else:
        batches = batches.map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)))
    batches = batches.apply(tf.data.experimental.assert_cardinality((epochs - initial_epoch) * steps))
    return batches.prefetch(tf.data.AUTOTUNE)
