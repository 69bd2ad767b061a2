"""Small float64 Keras models for the analysis tests (small enough for dense Hessians)."""

import numpy as np


def small_classifier(num_inputs=4, hidden=8, num_classes=3, num_examples=24, seed=0):
    """A tanh MLP (P = 67 weights by default) in float64 and a float64 loss, with data."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((num_inputs,), dtype="float64"),
        keras.layers.Dense(hidden, activation="tanh", dtype="float64"),
        keras.layers.Dense(num_classes, dtype="float64"),
    ])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_examples, num_inputs))
    y = rng.integers(0, num_classes, num_examples)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    return model, loss, x, y


def loop_gradients(model, loss, x, y):
    """Per-example gradients by a Python loop (reference), `[N, P]`."""
    import tensorflow as tf

    weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    rows = []
    for i in range(x.shape[0]):
        with tf.GradientTape() as tape:
            tape.watch(weights)
            out, _ = model.stateless_call(weights, [], x[i:i + 1], training=False)
            value = tf.reduce_mean(loss(y[i:i + 1], out))
        rows.append(np.concatenate([g.numpy().reshape(-1) for g in tape.gradient(value, weights)]))
    return np.stack(rows)


def dense_hessian(model, loss, x, y):
    """The dense Hessian of the mean loss by `GradientTape.jacobian` of the gradient (reference)."""
    import tensorflow as tf

    weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    sizes = [int(np.prod(w.shape)) for w in weights]
    flat = tf.concat([tf.reshape(w, [-1]) for w in weights], 0)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(flat)
        parts = [tf.reshape(p, w.shape) for p, w in zip(tf.split(flat, sizes), weights)]
        with tf.GradientTape() as inner:
            inner.watch(parts)
            out, _ = model.stateless_call(parts, [], x, training=False)
            value = tf.reduce_mean(loss(y, out))
        grad = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(value, parts)], 0)
    hess = outer.jacobian(grad, flat, experimental_use_pfor=False).numpy()
    return 0.5 * (hess + hess.T)


def dense_covariance(jac):
    """The dense diffusion matrix `(1/N) J_c^T J_c` of per-example gradients `jac` (`[N, P]`), reference."""
    centered = jac - jac.mean(axis=0)
    return centered.T @ centered / jac.shape[0]
