"""Stateless seeds and the library's one Gaussian sampler.

Every random draw of the library is a pure function of an explicit seed (a
`[2]` int32 tensor), so eager, graph and XLA runs, and resumed runs, draw the
same numbers. Normals come from Box-Muller on Philox bits that the library
converts to uniforms itself (`standard_normal`).
"""

from __future__ import annotations

import zlib

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal.graph_modes import tracing_for_xla


def _salt_words(salt):
    digest = zlib.crc32(salt.encode())
    return [digest & 0x7FFFFFFF, (digest >> 1) & 0x7FFFFFFF]


def split_seed(seed, n, salt):
    """`n` independent stateless seeds, shape `[n, 2]`, derived from `seed` and a salt string.

    Built on `random_bits` rather than `tf.random.experimental.stateless_split`
    or `tfp.random.split_seed`, which derive different seeds under XLA on CPU.
    """
    seed = tfp.random.sanitize_seed(seed)
    salted = tf.bitwise.bitwise_xor(seed, tf.constant(_salt_words(salt), tf.int32))
    return tf.random.stateless_uniform([n, 2], seed=salted, minval=None, maxval=None, dtype=tf.int32, alg="philox")


def fold_in(seed, data):
    """The stateless seed of step `data` (an int32 scalar) of a loop seeded with `seed`."""
    seed = tfp.random.sanitize_seed(seed)
    data = tf.cast(data, tf.int32)
    keyed = tf.stack([seed[0], tf.bitwise.bitwise_xor(seed[1], data)])
    return tf.random.stateless_uniform([2], seed=keyed, minval=None, maxval=None, dtype=tf.int32, alg="philox")


def split_seeds(seed, structure, salt):
    """One stateless seed per leaf of `structure`, in flatten order."""
    flat = tf.nest.flatten(structure)
    return tf.unstack(split_seed(seed, len(flat), salt))


def random_bits(shape, seed):
    """Uniform uint32 bits from a stateless seed (Philox).

    The integer bits are what TensorFlow's kernels and XLA agree on; its
    float samplers convert them differently under XLA, so the library converts
    the bits itself and a seed draws the same numbers eagerly, under
    `tf.function` and under XLA.
    """
    bits = tf.random.stateless_uniform(shape, seed=seed, minval=None, maxval=None, dtype=tf.int32, alg="philox")
    return tf.bitcast(bits, tf.uint32)


def _top_bits(bits, count):
    """The top `count` (< 31) bits of uint32 `bits`, so every backend converts them to float exactly."""
    return tf.bitwise.right_shift(bits, tf.constant(32 - count, tf.uint32))


def unit_interval_from_bits(bits, dtype, low_bits=None):
    """`u = (k + 1/2) 2^-m` from the top bits of uint32 `bits`: in (0, 1), never 0 or 1.

    m = 23 for float32 (k < 2^23, so the largest u = 1 - 2^-24 is representable:
    with 24 bits it would round to 1.0), m = 52 for float64
    (26 bits from `bits`, 26 from `low_bits`).
    """
    if dtype == tf.float64:
        high = tf.cast(_top_bits(bits, 26), tf.float64)
        low = tf.cast(_top_bits(low_bits, 26), tf.float64)
        return (high * 2.0**26 + low + 0.5) * 2.0**-52
    return _lattice_midpoints(_top_bits(bits, 23), 23, dtype)


def _lattice_midpoints(k, bits, dtype):
    """`u = (k + 1/2) 2^-bits` for integers `0 <= k < 2^bits` (bits <= 23): in (0, 1), exact in float32."""
    return tf.cast((tf.cast(k, tf.float32) + 0.5) * 2.0**-bits, dtype)


def _uniform_pair(count, seed, dtype, bits):
    """Two independent uniforms `(u_radius, u_angle)`, each of shape `[count]`, in (0, 1).

    `bits=16`: `count` 32-bit Philox words make the 2 * count 16-bit integers
    `k` of both, on the lattice `(k + 1/2) 2^-16`. Otherwise the full precision of `dtype`:
    one word each, 23 bits (float32), or two words each, 52 bits (float64).
    """
    if bits == 16:
        # The `count` words viewed as 2 * count 16-bit integers (a bitcast, no copy);
        # the first half of them are the radii, the second half the angles.
        halves = tf.reshape(tf.bitcast(random_bits([count], seed), tf.uint16), [2, count])
        return tuple(tf.unstack(_lattice_midpoints(halves, 16, dtype)))
    if dtype == tf.float64:
        words = tf.unstack(random_bits([4, count], seed))
        return (unit_interval_from_bits(words[0], tf.float64, words[1]),
                unit_interval_from_bits(words[2], tf.float64, words[3]))
    words = tf.unstack(random_bits([2, count], seed))
    return unit_interval_from_bits(words[0], dtype), unit_interval_from_bits(words[1], dtype)


def box_muller(u_radius, u_angle):
    """Two independent `N(0, 1)` draws from two independent `U(0, 1)` ones (Box & Muller, 1958):

        z1 = r cos(theta),  z2 = r sin(theta) = r cos(theta - pi/2),
        r = sqrt(-2 log u_radius),  theta = 2 pi u_angle.

    Returns `[z1, z2]` stacked on a new leading axis of size 2.
    `u_radius` must lie in (0, 1] (r = 0 at 1, finite everywhere else).

    The two forms of z2 agree up to rounding; which one is traced is only a
    matter of speed on CPU (`bench/bench_gaussian_sampler.py`). Under XLA, a
    `cos` and a `sin` become two fused loops that each recompute the random
    bits, so both members come from one broadcast `cos` over `[2, n]` (one
    loop: 2.1 ms instead of 2.9 ms for the 184,586 numbers of that benchmark);
    without XLA the broadcast is the slower form, so `cos` and `sin` are
    separate kernels there.
    """
    radius = tf.sqrt(-2.0 * tf.math.log(u_radius))
    angle = (2.0 * np.pi) * u_angle
    if tracing_for_xla():
        quarter_turn = tf.reshape(tf.constant([0.0, 0.5 * np.pi], angle.dtype), [2] + [1] * angle.shape.rank)
        return radius[None] * tf.cos(angle[None] - quarter_turn)
    return tf.stack([radius * tf.cos(angle), radius * tf.sin(angle)])


def standard_normal_like(structure, seed, salt):
    """`xi ~ N(0, I)` with the shape and dtype of every leaf, from one stateless seed
    (`standard_normal` per leaf, one derived seed each)."""
    seeds = split_seeds(seed, structure, salt)
    flat = tf.nest.flatten(structure)
    draws = [standard_normal(tf.shape(part), s, part.dtype) for part, s in zip(flat, seeds)]
    return tf.nest.pack_sequence_as(structure, draws)


def standard_normal(shape, seed, dtype=tf.float32, bits=None):
    """`xi ~ N(0, I)` of one `shape` from a stateless seed: the library's one Gaussian sampler.

    Box-Muller (`box_muller`) on uniforms converted by the library itself from
    Philox `random_bits`, so a seed draws the same numbers eagerly, under
    `tf.function` and under XLA, up to the rounding of log/sqrt/cos/sin
    (TensorFlow's own `stateless_normal` draws different numbers under XLA).
    Pairs fill the flattened shape: the first half of it gets the cosines,
    the second half the sines.

    Args:
      shape: the output shape (a static shape avoids a final slice).
      seed: a stateless seed, shape `[2]`.
      dtype: float32 or float64 (float16/bfloat16 draw in float32 and cast).
      bits: `None`: uniforms at the full precision of the compute dtype, two
        32-bit words per pair in float32: `|xi|` reaches sqrt(-2 log 2^-24) = 5.77
        (tail mass lost: 8e-9). `16`: both uniforms of a pair from one 32-bit
        word, on the lattice `(k + 1/2) 2^-16`: half the random bits, so about
        half the cost of the Philox kernel, which dominates on CPU; `|xi| <=
        sqrt(32 log 2 + 2 log 2) = 4.85` (tail mass lost per draw: 1.2e-6) and the
        variance is low by 5e-6 (relative). The Keras optimizers draw their
        Langevin noise with `bits=16`; the SDE and MCMC code uses the default.
    """
    if bits not in (None, 16):
        raise ValueError(f"`bits` must be None (full precision) or 16, got {bits!r}.")
    compute = tf.float64 if dtype == tf.float64 else tf.float32
    static = _static_shape(shape)
    if static is None:
        shape = tf.convert_to_tensor(shape, tf.int32)
        size = tf.reduce_prod(shape)
    else:
        shape, size = static, int(np.prod(static, dtype=np.int64))
    count = (size + 1) // 2
    flat = tf.reshape(box_muller(*_uniform_pair(count, seed, compute, bits)), [-1])
    if static is None or 2 * count != size:  # an odd size does not use the last sine
        flat = flat[:size]
    return tf.cast(tf.reshape(flat, shape), dtype)


def _static_shape(shape):
    """`shape` as a list of ints when known at trace time, else None."""
    if isinstance(shape, tf.TensorShape):
        return shape.as_list() if shape.is_fully_defined() else None
    value = tf.get_static_value(shape) if tf.is_tensor(shape) else shape
    if value is None:
        return None
    try:
        dims = [int(d) for d in value]
    except TypeError:  # a None dimension
        return None
    return dims
