"""Weights of any nested structure, and losses evaluated on batches of them.

Conversion and checks that name the offending argument, and the evaluation of a loss
`f(w)` written for *one* weight structure on a batch of them (paths of an SDE,
chains of an MCMC run): the leading `batch_ndims` axes of every part are
vectorized with `tf.vectorized_map`, so a user writes `f` once, unbatched.
"""

from __future__ import annotations

import inspect
import weakref

import numpy as np
import tensorflow as tf


def as_tensors(structure, name, dtype=None):
    """Convert every leaf (tensor, variable, array, number) to a tensor; name the argument on failure."""
    if structure is None:
        raise ValueError(f"`{name}` must be a tensor or a nested structure of tensors, got None.")
    try:
        converted = tf.nest.map_structure(lambda t: tf.convert_to_tensor(t, dtype=dtype), structure)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must be a tensor or a nested structure of tensors: {error}") from error
    for leaf in tf.nest.flatten(converted):
        if not leaf.dtype.is_floating:
            raise ValueError(f"`{name}` must hold floating-point tensors, got dtype {leaf.dtype.name}.")
    if not tf.nest.flatten(converted):
        raise ValueError(f"`{name}` is an empty structure.")
    return converted


def check_finite(structure, name):
    """Raise `ValueError` naming `name` if any leaf holds NaN or Inf.

    Eager tensors are checked now; symbolic ones get a run-time assertion and
    the checked structure is returned (use it in place of the input).
    """

    def check(leaf):
        if tf.executing_eagerly() or tf.get_static_value(leaf) is not None:
            value = leaf.numpy() if hasattr(leaf, "numpy") else tf.get_static_value(leaf)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"`{name}` contains NaN or Inf.")
            return leaf
        return tf.debugging.assert_all_finite(leaf, message=f"`{name}` contains NaN or Inf")

    return tf.nest.map_structure(check, structure)


def check_same_structure(reference, structure, reference_name, name):
    try:
        tf.nest.assert_same_structure(reference, structure)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must have the structure of `{reference_name}`: {error}") from error


def batch_ndims_of(state, reference, name="state", reference_name="anchor"):
    """Number of leading batch axes of `state` relative to the (unbatched) `reference`.

    Every part must carry the same number of extra leading axes and end with
    the reference's shape.
    """
    check_same_structure(reference, state, reference_name, name)
    counts = set()
    for part, ref in zip(tf.nest.flatten(state), tf.nest.flatten(reference)):
        rank, ref_rank = part.shape.rank, ref.shape.rank
        if rank is None or ref_rank is None or rank < ref_rank:
            raise ValueError(f"`{name}` part of shape {part.shape} does not end with the `{reference_name}` shape {ref.shape}.")
        if not part.shape[rank - ref_rank:].is_compatible_with(ref.shape):
            raise ValueError(f"`{name}` part of shape {part.shape} does not end with the `{reference_name}` shape {ref.shape}.")
        counts.add(rank - ref_rank)
    if len(counts) != 1:
        raise ValueError(f"every part of `{name}` must have the same number of leading batch axes, got {sorted(counts)}.")
    return counts.pop()


def batched_loss(loss_fn, state, batch_ndims, *args):
    """`loss_fn(w, *args)` for every `w` in a batch; returns a tensor of the batch shape.

    `loss_fn` is written for one weight structure (parts without batch axes)
    and returns a scalar; the first `batch_ndims` axes of every part of
    `state` are mapped over with `tf.vectorized_map` (a loop where an op has
    no vectorized form).
    """
    if batch_ndims == 0:
        return scalar_loss(loss_fn(state, *args))
    flat = tf.nest.flatten(state)
    batch_shape = tf.shape(flat[0])[:batch_ndims]
    merged = [tf.reshape(part, tf.concat([[-1], tf.shape(part)[batch_ndims:]], 0)) for part in flat]
    merged = [tf.ensure_shape(m, [None] + part.shape[batch_ndims:].as_list()) for m, part in zip(merged, flat)]
    packed = tf.nest.pack_sequence_as(state, merged)
    values = tf.vectorized_map(lambda w: scalar_loss(loss_fn(w, *args)), packed, fallback_to_while_loop=True)
    return tf.reshape(values, batch_shape)


def scalar_loss(value, name="loss_fn"):
    value = tf.convert_to_tensor(value)
    check_floating_loss(value, name)
    if value.shape.rank not in (None, 0):
        raise ValueError(
            f"`loss_fn` must return a scalar for one weight structure, got shape {value.shape}; "
            "batch axes (paths, chains) are added by the library."
        )
    return value


def batched_value_and_gradient(loss_fn, state, batch_ndims, *args):
    """`(f(w), grad f(w))` for every `w` of a batch, `f` written unbatched.

    Chains (or paths) are independent, so the gradient of the sum of the
    batch's losses is the batch of their gradients. A part the loss does not
    depend on gets a zero gradient.
    """
    flat = tf.nest.flatten(state)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for part in flat:
            tape.watch(part)
        values = batched_loss(loss_fn, tf.nest.pack_sequence_as(state, flat), batch_ndims, *args)
        total = tf.reduce_sum(values)
    grads = tape.gradient(total, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return values, tf.nest.pack_sequence_as(state, grads)


def check_floating_loss(value, name="loss_fn"):
    """Reject a loss of integer (or bool, complex) dtype with a clear error.

    An integer-valued loss has no gradient, and inside the samplers' loops its
    dtype clashes with the floating state (a cryptic `tf.while_loop` dtype
    error); the library does not cast it silently.
    """
    if not (value.dtype.is_floating):
        raise ValueError(
            f"`{name}` must return a floating-point value (a loss with a gradient), got dtype {value.dtype.name}; "
            "cast it in `" + name + "`, e.g. `tf.cast(..., tf.float32)`."
        )


def _describe(w):
    flat = [np.asarray(t) for t in tf.nest.flatten(w)]
    if sum(a.size for a in flat) <= 8:
        return repr(tf.nest.pack_sequence_as(w, [a.tolist() for a in flat]))
    return f"(structure {tf.nest.map_structure(lambda t: tuple(t.shape), w)})"


def evaluate_loss_at(loss_fn, w, name, w_name, *args, check_finite=True, check_gradient=False):
    """Call `loss_fn(w, *args)` once to catch a mismatch between the loss and `w` early.

    Returns the (scalar) loss; any error of the call is re-raised as a
    `ValueError` that names both arguments. A loss of integer dtype is an
    error (see `check_floating_loss`). With `check_finite` (eager values only)
    a NaN/Inf loss, and with `check_gradient` a NaN/Inf gradient, at `w` is
    reported as a property of the loss at that point, before any sampler
    step could be blamed for it.
    """
    if not callable(loss_fn):
        raise ValueError(f"`{name}` must be callable, got {type(loss_fn).__name__}.")
    flat = tf.nest.flatten(w)
    try:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            for part in flat:
                tape.watch(part)
            value = tf.convert_to_tensor(loss_fn(tf.nest.pack_sequence_as(w, flat), *args))
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, tf.errors.InvalidArgumentError) as error:
        raise ValueError(
            f"`{name}` cannot be evaluated at `{w_name}` (structure {tf.nest.map_structure(lambda t: t.shape, w)}): "
            f"{type(error).__name__}: {error}"
        ) from error
    check_floating_loss(value, name)
    if value.shape.rank not in (None, 0):
        raise ValueError(f"`{name}` must return a scalar at `{w_name}`, got shape {value.shape}.")
    eager = tf.executing_eagerly() and all(hasattr(t, "numpy") for t in flat)
    if check_finite and eager and not np.isfinite(value.numpy()):
        raise ValueError(
            f"`{name}` is {value.numpy()} at `{w_name}` = {_describe(w)}: the loss itself is not finite at the "
            f"starting point (before any step of the sampler); fix `{name}` or choose another `{w_name}`."
        )
    if check_gradient and eager:
        grads = tape.gradient(value, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if not all(np.all(np.isfinite(g.numpy())) for g in grads):
            raise ValueError(
                f"the gradient of `{name}` contains NaN or Inf at `{w_name}` = {_describe(w)}: the loss is not "
                f"differentiable there (before any step of the sampler); fix `{name}` or choose another `{w_name}`."
            )
    return value


def squared_norm(structure, batch_ndims):
    """`|w|^2` summed over all parts and event axes; a tensor of the batch shape."""
    total = 0.0
    for part in tf.nest.flatten(structure):
        axes = list(range(batch_ndims, part.shape.rank))
        total = total + tf.reduce_sum(tf.square(part), axis=axes)
    return total


class TraceCache:
    """`tf.function`s cached per owner callable (held weakly) and a static key: one trace per signature.

    `get(owner, key, build)` returns the function built by `build(owner_ref)`
    for `(owner, key)`, building it once. `owner_ref()` returns the owner (a
    weak reference where the owner allows one, so a cached function does not
    keep the user's loss or control alive). Owners that cannot be weakly
    referenced or hashed are not cached (a new function per call). At most
    `maxsize` keys are kept per owner (oldest dropped first).
    """

    def __init__(self, maxsize=16):
        self._tables = weakref.WeakKeyDictionary()
        self._maxsize = maxsize

    def get(self, owner, key, build):
        try:
            if inspect.ismethod(owner):  # a bound method is a new object at every access: key on its instance
                table = self._tables.setdefault(owner.__self__, {})
                owner_ref, key = weakref.WeakMethod(owner), (owner.__func__, key)
            else:
                table = self._tables.setdefault(owner, {})
                owner_ref = weakref.ref(owner)
            hash(key)
        except TypeError:
            return build(lambda: owner)
        fn = table.get(key)
        if fn is None:
            if len(table) >= self._maxsize:
                table.pop(next(iter(table)))
            fn = table[key] = _QuietFirstCall(build(owner_ref))
        return fn


class _QuietFirstCall:
    """Calls `fn`; its first call (its one trace) without TensorFlow's "frequent retracing" warning.

    TensorFlow counts traces per Python code object, so the first traces of
    the cached functions of different owners (which share their code) read
    as retracing of one function; they are not.
    """

    def __init__(self, fn):
        self.fn = fn
        self.called = False

    def __call__(self, *args, **kwargs):
        if self.called:
            return self.fn(*args, **kwargs)
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")
        try:
            result = self.fn(*args, **kwargs)
        finally:
            logger.setLevel(level)
        self.called = True
        return result
