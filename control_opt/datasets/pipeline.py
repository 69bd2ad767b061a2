"""A reproducible `tf.data` input pipeline for in-memory arrays: shuffle by seed, batch,
augment on the fly, prefetch.

Every random choice is stateless, a function of (seed, epoch, batch): the order
of epoch e and the augmentation of its batch b are the same whether a run starts
at epoch 0 or resumes at e (`start_epoch`), and the same on every run.

The augmentation is the standard one for Wide-ResNets on CIFAR (Zagoruyko and
Komodakis 2016, after He et al. 2016): pad 4 pixels on each side by
reflection, crop a random 32x32 window, flip horizontally with probability 1/2.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from control_opt._internal import sampling

__all__ = ["make_pipeline", "random_crop_flip"]


def random_crop_flip(images, seed, pad=4):
    """Reflect-pads a batch by `pad`, crops a random window of the original size, flips half.

    Args:
      images: [B, H, W, C].
      seed: a stateless seed tensor, shape [2] (int32); the same seed gives the same crops
        and flips. (Not a Python int: tfp's seed sanitizer would turn that into a fresh random seed.)
      pad: pixels added on each side (must be < H and < W for reflection).

    Returns:
      [B, H, W, C], same dtype.
    """
    images = tf.convert_to_tensor(images)
    if isinstance(seed, int):
        raise TypeError("random_crop_flip needs a [2] int32 seed tensor, not a Python int")
    height, width = images.shape[1], images.shape[2]
    if pad <= 0:
        raise ValueError(f"pad must be a positive number of pixels, got {pad}")
    batch = tf.shape(images)[0]
    crop_seed, flip_seed = tf.unstack(sampling.split_seed(seed, 2, "random_crop_flip"))
    offsets = tf.random.stateless_uniform([batch, 2], seed=crop_seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform([batch], seed=flip_seed, minval=0, maxval=2, dtype=tf.int32)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    return tf.where(tf.equal(flips, 1)[:, None, None, None], tf.reverse(out, axis=[2]), out)


def make_pipeline(x, y, *, batch_size, seed=0, shuffle=True, augment=False, epochs=1, start_epoch=0,
                  drop_remainder=False, pad=4):
    """A `tf.data.Dataset` of (x_batch, y_batch) for epochs `start_epoch .. epochs - 1`.

    Args:
      x, y: the arrays (e.g. a `Dataset`'s x_train, y_train).
      batch_size: examples per batch.
      seed: an integer; shuffling and augmentation are functions of it, the epoch and the batch.
      shuffle: a fresh permutation each epoch (False: the stored order, for evaluation).
      augment: apply `random_crop_flip` (images [N, H, W, C] only).
      epochs, start_epoch: the epochs to produce (resuming at `start_epoch` gives
        what an uninterrupted run gives from there).
      drop_remainder: drop each epoch's last, smaller batch.
      pad: the reflection padding of the augmentation.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same length, got {n} and {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if augment and np.ndim(x) != 4:
        raise ValueError(f"augment needs images shaped [N, H, W, C], got x of shape {np.shape(x)}")
    steps = n // batch_size if drop_remainder else math.ceil(n / batch_size)
    # An explicit [2] seed tensor: tfp's sanitize_seed would draw a fresh one from a Python int.
    seed_pair = tf.constant([int(seed) % 2**31, (int(seed) // 2**31) % 2**31], tf.int32)
    shuffle_seed, augment_seed = tf.unstack(sampling.split_seed(seed_pair, 2, "datasets.make_pipeline"))
    x_all, y_all = tf.convert_to_tensor(x), tf.convert_to_tensor(y)

    def epoch_batches(epoch):
        epoch32 = tf.cast(epoch, tf.int32)
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=sampling.fold_in(shuffle_seed, epoch32))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(lambda b, idx: (epoch32 * steps + tf.cast(b, tf.int32), idx))

    def fetch(step, idx):
        xb, yb = tf.gather(x_all, idx), tf.gather(y_all, idx)
        if augment:
            xb = random_crop_flip(xb, sampling.fold_in(augment_seed, step), pad=pad)
        return xb, yb

    dataset = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_batches)
    dataset = dataset.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
