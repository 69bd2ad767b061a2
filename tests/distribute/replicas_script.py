"""Run on N logical CPU devices in a fresh process: `python replicas_script.py N OUT.json [SAVE_DIR|quick]`.

Logical devices must be configured before TensorFlow initializes, so the
checks of tests/distribute/test_replicas.py run here, in one process, and
write their measurements to a JSON file that the tests read. `quick` runs
only the reductions and the communication count (for 4 replicas).
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

N = int(sys.argv[1])
try:
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * N)
except RuntimeError:  # already configured (replica_checks.py: 4 logical CPUs; this uses the first N)
    pass

import keras  # noqa: E402

import control_opt  # noqa: E402
from control_opt import distribute  # noqa: E402
from tests.distribute import shard_runs  # noqa: E402

DEVICES = [f"/cpu:{i}" for i in range(N)]
BATCH = 8 * N  # each replica sees 8 examples of every global batch
STEPS = 4      # steps per epoch (not a multiple of L = 3)
COUNTER = distribute.CountingReduction()
STRATEGY = tf.distribute.MirroredStrategy(DEVICES, cross_device_ops=COUNTER)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
QUICK = len(sys.argv) > 3 and sys.argv[3] == "quick"
results = {}


def data(seed=0, duplicate=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH * STEPS, 6)).astype("float32")
    if duplicate:  # every replica gets the same shard
        x = np.concatenate([np.tile(b[:8], (N, 1)) for b in np.split(x, STEPS)])
    y = (x @ rng.normal(size=(6,)) > 0).astype("int32")
    return x, y


def dataset(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def build(make_optimizer, strategy=STRATEGY):
    with control_opt.replica_local(strategy):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
        model.compile(optimizer=make_optimizer(), loss=LOSS, jit_compile=False)
    return model


def stacked(variables):
    return [distribute.stack_components(v) for v in variables]


def spread(model):
    """Largest distance between two replicas' anchors."""
    return max(float(np.abs(a - a.mean(0)).max()) for a in stacked(model.optimizer.anchors))


def fit(model, x, y, epochs=2, **kwargs):
    model.fit(dataset(x, y), epochs=epochs, verbose=0, shuffle=False, **kwargs)
    return model


x, y = data()

# 1. Replicas differ, and the coupling bounds how far; a huge rho makes them agree.
sgd = dict(learning_rate=0.1, momentum=0.0, nesterov=False)
if not QUICK:
    results["spread"] = {str(rho): spread(fit(build(lambda: control_opt.ElasticSGD(rho=rho, **sgd)), x, y, epochs=3))
                         for rho in (0.0, 1.0, 10.0)}

# 2. rho = 0: replica r is Keras SGD on its own shard (no all-reduce, the 1/n undone).
model = fit(build(lambda: control_opt.ElasticSGD(rho=0.0, learning_rate=0.1)), x, y)
errors = []
for r in range(1 if QUICK else N):
    keras.utils.set_random_seed(0)
    single = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    shard = shard_runs.shard_rows(len(x), 8, N, r)
    shard_runs.train_eagerly(single, keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), LOSS, x[shard],
                             y[shard], 8, epochs=2)
    errors += [float(np.abs(a[r] - w.numpy()).max()) for a, w in zip(stacked(model.optimizer.anchors),
                                                                        single.trainable_weights)]
results["rho0_is_sgd_per_shard"] = max(errors)

# 3. Parle (L = 1, gamma = 0, reference="weights") is Elastic-SGD under the map of its docstring.
eta, eta_l, beta1, rho = 0.2, 0.1, 0.75, 0.5
c = (1 - beta1) * eta_l
parle = fit(build(lambda: control_opt.Parle(
    learning_rate=eta, langevin_steps=1, langevin_learning_rate=eta_l, langevin_momentum=0.0,
    langevin_nesterov=False, gamma=0.0, rho=rho, scoping=0.0, mean_decay=beta1, reference="weights")), x, y)
elastic = fit(build(lambda: control_opt.ElasticSGD(learning_rate=eta * c, rho=rho / c)), x, y)
results["parle_L1_is_elastic"] = max(float(np.abs(a - b).max()) for a, b in zip(
    stacked(parle.optimizer.anchors), stacked(elastic.optimizer.anchors)))
results["parle_L1_spread"] = spread(parle)


# 5. Communication, step by step; the center after a sync; get_weights during fit.
class Watch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        self.before = stacked(opt.anchors) if hasattr(opt, "anchors") else None

    def on_train_batch_end(self, batch, logs=None):
        opt = self.model.optimizer
        self.rows.append(dict(
            step=int(opt.iterations.numpy()) - 1, reductions=int(COUNTER.reductions.numpy()),
            bytes=int(COUNTER.bytes_reduced.numpy()), syncs=opt.syncs if hasattr(opt, "syncs") else 0,
            center_minus_mean_before=max(float(np.abs(c - b.mean(0)).max())
                                         for c, b in zip(stacked(opt.centers), self.before))
            if hasattr(opt, "centers") else None,
            get_weights_minus_mean=max(float(np.abs(w - distribute.stack_components(v).mean(0)).max())
                                       for w, v in zip(self.model.get_weights(), self.model.trainable_weights))))


n_params = 6 * 8 + 8 + 8 * 2 + 2
results["n_params"] = n_params
watched = {}
for name, make in [("parle", lambda: control_opt.Parle(langevin_steps=3, gamma=0.03, noise=1e-3, seed=1,
                                                       reference="weights")),
                   ("elastic_tau2", lambda: control_opt.ElasticSGD(rho=0.5, communication_period=2)),
                   ("sgd", lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))][:1 if QUICK else 3]:
    if name == "sgd":
        with STRATEGY.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                                      keras.layers.Dense(2)])
            model.compile(optimizer=make(), loss=LOSS, jit_compile=False)
    else:
        model = build(make)
    COUNTER.reset()
    watch = Watch()
    fit(model, x, y, epochs=2, callbacks=[watch])  # no AnchorSwap: only the training steps reduce
    rows = watch.rows
    deltas = [(r["step"], r["reductions"] - (p["reductions"] if p else 0), r["bytes"] - (p["bytes"] if p else 0))
              for p, r in zip([None] + rows[:-1], rows)]
    results[f"comm_{name}"] = dict(
        deltas=deltas, traced_in_train_step=[sizes for _, sizes in COUNTER.traced],
        center_minus_mean_before=[r["center_minus_mean_before"] for r in rows],
        syncs=[r["syncs"] for r in rows], get_weights_minus_mean=max(r["get_weights_minus_mean"] for r in rows))
    watched[name] = model

# 4. EASGD moving rate 1/n is the mean (the mean's run: section 5's, tau = 2; its callback moves nothing).
if not QUICK:
    moving = fit(build(lambda: control_opt.ElasticSGD(rho=0.5, center_moving_rate=1.0 / N,
                                                      communication_period=2)), x, y)
    results["alpha_1_over_n_is_mean"] = max(float(np.abs(a - b).max()) for a, b in zip(
        stacked(moving.optimizer.anchors), stacked(watched["elastic_tau2"].optimizer.anchors)))

# 6. Each replica draws its own noise: identical shards, rho = 0, only the noise differs.
if not QUICK:
    xd, yd = data(duplicate=True)
    noisy = fit(build(lambda: control_opt.Parle(langevin_steps=3, rho=0.0, noise=1e-2, seed=3)), xd, yd)
    quiet = fit(build(lambda: control_opt.Parle(langevin_steps=3, rho=0.0, noise=0.0, seed=3)), xd, yd)
    results["noise_spread"], results["no_noise_spread"] = spread(noisy), spread(quiet)

# 6b. Data-parallel Entropy-SGD (mirrored weights): every replica draws the same noise (one draw
# per step, split across the variables), so the copies stay identical, and the run equals the
# same global batches on one device.
if not QUICK:
    def entropy_sgd(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                                      keras.layers.Dense(2)])
            model.compile(optimizer=control_opt.EntropySGD(learning_rate=0.5, langevin_steps=3, gamma=0.03,
                                                           noise=1e-2, seed=5), loss=LOSS, jit_compile=False)
        return fit(model, x, y)

    mirrored, single = entropy_sgd(STRATEGY), entropy_sgd(tf.distribute.get_strategy())
    results["data_parallel_copies_differ"] = max(
        float(np.abs(c - c[0]).max()) for c in stacked(mirrored.optimizer.variables + mirrored.trainable_variables))
    results["data_parallel_minus_one_device"] = max(
        float(np.abs(a - b).max()) for a, b in zip(mirrored.get_weights(), single.get_weights()))
    # A frozen layer, recompiled with the built optimizer, never moves (the release path under the
    # strategy), and the copies stay equal.
    mirrored.layers[0].trainable = False
    frozen = stacked(mirrored.layers[0].weights)
    with STRATEGY.scope():
        mirrored.compile(optimizer=mirrored.optimizer, loss=LOSS, jit_compile=False)
    fit(mirrored, x, y, epochs=1, callbacks=[control_opt.AnchorSwap()])
    results["data_parallel_frozen_moved"] = max(float(np.abs(a - b).max()) for a, b in zip(
        stacked(mirrored.layers[0].weights), frozen))
    results["data_parallel_copies_differ_after_freezing"] = max(
        float(np.abs(c - c[0]).max()) for c in stacked(mirrored.optimizer.variables + mirrored.trainable_variables))

# 7. Save mid outer loop, load, continue == uninterrupted (Parle, L = 3, 4 steps per epoch).
if len(sys.argv) > 3 and not QUICK:
    path = os.path.join(sys.argv[3], "parle.keras")
    make = lambda: control_opt.Parle(langevin_steps=3, gamma=0.03, noise=1e-3, seed=2)  # noqa: E731
    straight = fit(build(make), x, y, epochs=2, callbacks=[control_opt.AnchorSwap()])
    first = fit(build(make), x, y, epochs=1, callbacks=[control_opt.AnchorSwap()])
    results["saved_inner_step"] = int(first.optimizer.inner_step.numpy())
    first.save(path)
    with control_opt.replica_local(STRATEGY):
        loaded = keras.models.load_model(path)
    results["loaded_type"] = type(loaded.optimizer).__name__
    loaded.fit(dataset(x, y), epochs=2, initial_epoch=1, verbose=0, shuffle=False,
               callbacks=[control_opt.AnchorSwap()])
    results["resume_weights"] = max(float(np.abs(a - b).max()) for a, b in zip(
        loaded.get_weights(), straight.get_weights()))
    results["resume_state"] = max(float(np.abs(a - b).max()) for a, b in zip(
        stacked(loaded.optimizer.variables), stacked(straight.optimizer.variables)))
    results["evaluate_is_center"] = abs(loaded.evaluate(dataset(x, y), verbose=0) - float(
        LOSS(y, straight.predict(x, verbose=0))))
    # Saved inside fit with the probes in the model (no AnchorSwap), after 2 of 4 steps.
    class SaveAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.save(os.path.join(sys.argv[3], "mid.keras"))

    # The uninterrupted run: `straight` above (AnchorSwap changes no trajectory; both end with the center in).
    fit(build(make), x, y, epochs=1, callbacks=[SaveAt()])
    with control_opt.replica_local(STRATEGY):
        loaded = keras.models.load_model(os.path.join(sys.argv[3], "mid.keras"))
    # AnchorSwap puts the probes back before the first gradient (without it, only that first
    # gradient would be taken at the loaded weights, as for every anchored optimizer).
    loaded.fit(dataset(x[2 * BATCH:], y[2 * BATCH:]), epochs=1, verbose=0, shuffle=False,
               callbacks=[control_opt.AnchorSwap()])
    loaded.fit(dataset(x, y), epochs=1, verbose=0, shuffle=False, callbacks=[control_opt.AnchorSwap()])
    results["resume_mid_epoch_state"] = max(float(np.abs(a - b).max()) for a, b in zip(
        stacked(loaded.optimizer.variables), stacked(straight.optimizer.variables)))
    # Another number of replicas: a clear error.
    try:
        with control_opt.replica_local(tf.distribute.MirroredStrategy(DEVICES[:1])):
            keras.models.load_model(path)
        results["other_replicas_error"] = None
    except ValueError as error:
        results["other_replicas_error"] = str(error)

# 8. A model built without replica_local: a clear error.
try:
    if QUICK:
        raise ValueError("skipped")
    with STRATEGY.scope():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
        model.compile(optimizer=control_opt.ElasticSGD(), loss=LOSS)
    model.fit(dataset(x, y), epochs=1, verbose=0)
    results["mirrored_model_error"] = None
except ValueError as error:
    results["mirrored_model_error"] = str(error)

with open(sys.argv[2], "w") as f:
    json.dump(results, f)
print("REPLICAS_OK")
