"""Run on 2 logical CPU devices in a fresh process: `python options_script.py OUT.json`.

The checks of tests/distribute/test_replica_options.py (logical devices must be
set before TensorFlow starts): Parle against the float64 transcription of the
authors' code (`parle_code.py`), and Keras' options on the replica-local
optimizers. Writes what it measured to JSON.
"""

import contextlib
import copy
import json
import os
import pickle
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

N = 2
try:
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * N)
except RuntimeError:  # already configured (replica_checks.py: 4 logical CPUs; this uses the first N)
    pass

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import control_opt  # noqa: E402
from control_opt import distribute  # noqa: E402
from control_opt.optimizers.callbacks import find_anchored_optimizer  # noqa: E402
from tests.distribute import parle_code, shard_runs  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(N)])
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
SHARD = 8  # examples per replica per step
results = {}


def data(steps, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps * SHARD * N, 6)).astype(dtype)
    y = (x @ rng.normal(size=(6,)) > 0).astype("int32")
    return x, y


def build(make_optimizer, dtype="float64", batch_norm=False, strategy=STRATEGY):
    with control_opt.replica_local(strategy):
        keras.utils.set_random_seed(0)
        layers = [keras.Input((6,), dtype=dtype), keras.layers.Dense(8, activation="tanh", dtype=dtype)]
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(dtype=dtype))
        layers.append(keras.layers.Dense(2, dtype=dtype))
        model = keras.Sequential(layers)
        model.compile(optimizer=make_optimizer(), loss=LOSS, jit_compile=False)
    return model


def fit(model, x, y, **kwargs):
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(SHARD * N), epochs=1, verbose=0, shuffle=False,
              **kwargs)
    return model


def replica_values(variables):
    """`[n][tensor]`: each replica's value of each variable."""
    stacked = [distribute.stack_components(v) for v in variables]
    return [[s[a] for s in stacked] for a in range(N)]


def max_diff(first, second):
    return max(float(np.max(np.abs(np.asarray(p) - np.asarray(q))))
               for a, b in zip(first, second) for p, q in zip(a, b))


# 1. Parle against the authors' code, float64, 2 replicas, L = 3, 5 outer steps, scoping off and on.
L, OUTER = 3, 5
x, y = data(L * OUTER)
HYPER = dict(learning_rate=0.25, langevin_learning_rate=0.125, momentum=0.9, langevin_momentum=0.9, gamma=0.3,
             rho=0.2, gamma_max=1.0, rho_max=10.0, mean_decay=0.75)


def shard(step, replica):
    rows = slice(step * SHARD * N + replica * SHARD, step * SHARD * N + (replica + 1) * SHARD)
    return x[rows], y[rows]


parle_results = {}
for scoping in (0.0, 0.2):
    for authors_code in (True, False):
        model = build(lambda: control_opt.Parle(langevin_steps=L, scoping=scoping, authors_code=authors_code,
                                                seed=0, **HYPER))
        initial = replica_values(model.trainable_variables)
        fit(model, x, y)
        library = replica_values(model.optimizer.anchors)
        departures = () if authors_code else parle_code.DEPARTURES
        reference = parle_code.parle(initial, shard, steps=L * OUTER, L=L, scoping=scoping, departures=departures,
                                     **HYPER)
        parle_results[f"authors_code={authors_code},scoping={scoping}"] = {
            "diff": max_diff(library, reference),
            "replicas_differ": max_diff([library[0]], [library[1]]),
            "moved": max_diff(library, initial)}
results["parle_code"] = parle_results



# 2. Keras' options on replica-local optimizers: replica a equals Keras' SGD on its own shard.
def per_shard_keras(make_keras, x, y, init):
    """`[n][tensor]`: Keras' optimizer run on each replica's shard alone, from `init`, no strategy."""
    out = []
    for a in range(N):
        rows = shard_runs.shard_rows(len(x), SHARD, N, a)
        model = keras.Sequential([keras.Input((6,), dtype="float64"),
                                  keras.layers.Dense(8, activation="tanh", dtype="float64"),
                                  keras.layers.Dense(2, dtype="float64")])
        model.set_weights(init)
        out.append(shard_runs.train_eagerly(model, make_keras(), LOSS, x[rows], y[rows], SHARD).get_weights())
    return out


x4, y4 = data(4, seed=1)
sgd = dict(learning_rate=0.25, momentum=0.9, nesterov=True)
options = {}
for option, value in [("clipnorm", 0.05), ("clipvalue", 0.02), ("global_clipnorm", 0.05), ("weight_decay", 0.5)]:
    model = build(lambda: control_opt.ElasticSGD(rho=0.0, **sgd, **{option: value}))
    init = [v.numpy() for v in model.trainable_variables]
    fit(model, x4, y4)
    ours = replica_values(model.optimizer.anchors)
    options[option] = {
        "diff": max_diff(ours, per_shard_keras(lambda: keras.optimizers.SGD(**sgd, **{option: value}), x4, y4, init)),
        # the control: twice the threshold (what Keras' 1/n loss scaling made of it), and the option off
        "diff_doubled": max_diff(ours, per_shard_keras(
            lambda: keras.optimizers.SGD(**sgd, **{option: 2 * value}), x4, y4, init)),
        "diff_off": max_diff(ours, per_shard_keras(lambda: keras.optimizers.SGD(**sgd), x4, y4, init))}
results["options"] = options

# 3. Errors that name the fix.
errors = {}
optimizer = control_opt.ElasticSGD()  # made outside the strategy
try:
    fit(build(lambda: optimizer, dtype="float32"), *data(1, dtype="float32"))
except Exception as error:  # noqa: BLE001 - the message is what is checked
    errors["optimizer_outside"] = f"{type(error).__name__}: {error}"
model = fit(build(lambda: control_opt.Parle(langevin_steps=2), dtype="float32"), *data(2, dtype="float32"))
path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "parle.keras")
model.save(path)
try:
    keras.models.load_model(path)
except Exception as error:  # noqa: BLE001
    errors["load_without_strategy"] = f"{type(error).__name__}: {error}"
loaded = keras.models.load_model(path, compile=False)
errors["compile_false_is_the_center"] = max(float(np.max(np.abs(a - b)))
                                             for a, b in zip(loaded.get_weights(), model.get_weights()))
results["errors"] = errors

# 4. Batch-norm statistics at the center: replica 1's shard of every batch is shifted, so each
# replica's own statistics differ; plain `fit` (no AnchorSwap), then evaluate / predict / save.
def batch_norm_checks(make_optimizer):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4 * SHARD * N, 6)).astype("float32")
    y = (x[:, 1] > 0).astype("int32")
    x[(np.arange(len(x)) // SHARD) % N == 1] += 2.0
    model = build(make_optimizer, dtype="float32", batch_norm=True)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.train_on_batch(x[:SHARD * N], y[:SHARD * N])  # 2 steps: Parle(L=2) syncs at the second
    model.train_on_batch(x[SHARD * N:2 * SHARD * N], y[SHARD * N:2 * SHARD * N])
    statistics = [distribute.stack_components(v) for v in model.non_trainable_variables]
    out = {"after_sync": max(float(np.abs(s[0] - s[1]).max()) for s in statistics)}
    fit(model, x, y)
    statistics = [distribute.stack_components(v) for v in model.non_trainable_variables]
    out["after_fit"] = max(float(np.abs(s[0] - s[1]).max()) for s in statistics)
    rows = x[:SHARD]
    both = model.predict(np.concatenate([rows, rows]), batch_size=SHARD * N, verbose=0)  # replica 0, replica 1
    out["predict_by_replica"] = float(np.abs(both[:SHARD] - both[SHARD:]).max())
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "batch_norm.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    out["saved_predict"] = float(np.abs(loaded.predict(rows, verbose=0) - both[:SHARD]).max())
    loaded.compile(loss=loss)
    out["evaluate_vs_saved"] = abs(model.evaluate(x, y, batch_size=SHARD * N, verbose=0)
                                   - loaded.evaluate(x, y, batch_size=SHARD * N, verbose=0))
    return out


results["batch_norm"] = {
    "elastic_sgd": batch_norm_checks(lambda: control_opt.ElasticSGD(rho=0.1)),
    "elastic_sgd_moving_center": batch_norm_checks(lambda: control_opt.ElasticSGD(rho=0.1, center_moving_rate=0.25)),
    "parle": batch_norm_checks(lambda: control_opt.Parle(langevin_steps=2))}


# 5. mixed_float16 where only replica 1's gradients overflow (its shard's inputs are huge).
def overflow_checks(make_optimizer):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(SHARD * N, 6)).astype("float32")
    y = (x[:, 1] > 0).astype("int32")
    x[SHARD:] *= 3e3
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with control_opt.replica_local(STRATEGY):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8),
                                      keras.layers.Dense(2, dtype="float32")])
            model.compile(optimizer=make_optimizer(), jit_compile=False,
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    before = [distribute.stack_components(v) for v in model.trainable_variables]
    fit(model, x, y)
    after = [distribute.stack_components(v) for v in model.trainable_variables]
    wrapper = model.optimizer
    return {"nan": bool(any(np.isnan(a).any() for a in after)),
            "moved": max(float(np.abs(a - b).max()) for a, b in zip(after, before)),
            "scale": distribute.stack_components(wrapper.dynamic_scale).tolist(),
            "counter": distribute.stack_components(wrapper.step_counter).tolist(),
            "iterations": int(wrapper.inner_optimizer.iterations.numpy()),
            "initial_scale": float(wrapper.initial_scale)}


results["overflow"] = {"elastic_sgd": overflow_checks(lambda: control_opt.ElasticSGD(rho=0.1)),
                       "parle": overflow_checks(lambda: control_opt.Parle(langevin_steps=2))}

# 6. The option table on 2 replicas: every optimizer, the options that apply under replicas at once
# (clipnorm, weight decay, a schedule, a frozen layer, batch norm), then save / load / continue and
# pickle / deepcopy of the trained optimizer. Entropy-SGD, Entropy-Adam and HopfLaxSGD are data
# parallel (mirrored weights), Elastic-SGD and Parle replica-local.
def table_row(name, make_optimizer):
    replica_local = name in ("elastic_sgd", "parle", "parle_authors_code")  # the others: mirrored weights
    scope = (lambda: control_opt.replica_local(STRATEGY)) if replica_local else STRATEGY.scope
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4 * SHARD * N, 6)).astype("float32")
    y = (x[:, 1] > 0).astype("int32")
    x[(np.arange(len(x)) // SHARD) % N == 1] += 1.0
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(SHARD * N)
    with scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="frozen"),
                                  keras.layers.BatchNormalization(), keras.layers.Dense(2)])
        model.get_layer("frozen").trainable = False
        model.compile(optimizer=make_optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)
    frozen = [distribute.stack_components(v) for v in model.get_layer("frozen").weights]
    model.fit(dataset, epochs=1, verbose=0)
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), f"table_{name}.keras")
    model.save(path)
    with scope():
        loaded = keras.models.load_model(path)
    for m in (model, loaded):
        m.fit(dataset, epochs=1, verbose=0)
    optimizer = find_anchored_optimizer(model) or model.optimizer
    loaded_optimizer = find_anchored_optimizer(loaded) or loaded.optimizer
    state = [distribute.stack_components(v) for v in model.trainable_variables + optimizer.variables]
    clones = [pickle.loads(pickle.dumps(optimizer)), copy.deepcopy(optimizer)]
    return {"finite": bool(all(np.isfinite(w).all() for w in state)),
            "frozen_moved": max(float(np.abs(distribute.stack_components(v) - f).max())
                                for v, f in zip(model.get_layer("frozen").weights, frozen)),
            "statistics_differ": max(float(np.abs(s[0] - s[1]).max())
                                     for s in map(distribute.stack_components, model.non_trainable_variables)),
            "continued_vs_loaded": max(float(np.abs(a - distribute.stack_components(b)).max()) for a, b in
                                       zip(state, loaded.trainable_variables + loaded_optimizer.variables)),
            "clones_same_config": all(c.get_config() == optimizer.get_config() for c in clones)}


schedule = keras.optimizers.schedules.PiecewiseConstantDecay([4], [0.1, 0.05])
TABLE = {
    "entropy_sgd": lambda: control_opt.EntropySGD(learning_rate=schedule, langevin_steps=2, clipnorm=1.0,
                                                  weight_decay=0.01, seed=0),
    "entropy_adam": lambda: control_opt.EntropyAdam(learning_rate=schedule, langevin_steps=2, clipnorm=1.0,
                                                    weight_decay=0.01, seed=0),
    "hopf_lax": lambda: control_opt.HopfLaxSGD(learning_rate=schedule, inner_steps=2, clipnorm=1.0),
    "elastic_sgd": lambda: control_opt.ElasticSGD(learning_rate=schedule, clipnorm=1.0, weight_decay=0.01),
    "parle": lambda: control_opt.Parle(learning_rate=schedule, langevin_steps=2, clipnorm=1.0, weight_decay=0.01),
    "parle_authors_code": lambda: control_opt.Parle(learning_rate=schedule, langevin_steps=2, clipnorm=1.0,
                                                    weight_decay=0.01, authors_code=True),
    "keras_sgd": lambda: keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, clipnorm=1.0, weight_decay=0.01)}
results["table"] = {name: table_row(name, make) for name, make in TABLE.items()}


# 7. float64, mixed_float16 and sparse gradients on 2 replicas, every optimizer. The model starts with
# an Embedding (its gradient is `tf.IndexedSlices`); one run per optimizer and policy (float64 or
# mixed_float16), checked against what it reduces to on one device: for the data-parallel optimizers
# the same global batches; for Elastic-SGD and Parle (rho = 0, no noise) each replica's own shard,
# the same optimizer. The one-device references run eagerly (no tracing; the same arithmetic).
def precision_row(name, make, policy):
    replica_local = name in ("elastic_sgd", "parle")
    rng = np.random.default_rng(5)
    steps = 4
    tokens = rng.integers(0, 10, size=(steps * SHARD * N, 3)).astype("int32")
    y = (tokens.sum(1) % 2).astype("int32")
    dtype = "float64" if policy == "float64" else None  # None: the policy's

    def model_of(scope, **compile_kwargs):
        keras.mixed_precision.set_global_policy(policy)
        try:
            with scope:
                keras.utils.set_random_seed(0)
                model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 4, dtype=dtype),
                                          keras.layers.Flatten(dtype=dtype), keras.layers.Dense(2, dtype="float64"
                                                                                              if dtype else "float32")])
                model.compile(optimizer=make(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              **compile_kwargs)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        return model

    def batches(x, y, size):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(size)

    two = model_of(control_opt.replica_local(STRATEGY) if replica_local else STRATEGY.scope(), jit_compile=False)
    kinds = []  # the Embedding's gradient inside a replica, where the optimizer receives it

    def gradient_kind(xb, yb):
        with tf.GradientTape() as tape:
            loss = two.loss(yb, two(xb, training=True))
        kinds.append(type(tape.gradient(loss, two.trainable_variables)[0]).__name__)

    STRATEGY.run(gradient_kind, args=(tokens[:SHARD], y[:SHARD]))
    sparse = kinds == ["IndexedSlices"] * N
    initial = [v.numpy() for v in two.trainable_variables]
    two.fit(batches(tokens, y, SHARD * N), epochs=1, verbose=0)
    optimizer = find_anchored_optimizer(two)
    if replica_local:
        ours = [[s[a] for s in map(distribute.stack_components, optimizer.anchors)] for a in range(N)]
        reference = []
        for a in range(N):
            rows = (np.arange(len(tokens)) // SHARD) % N == a
            one = model_of(contextlib.nullcontext(), run_eagerly=True)
            one.fit(batches(tokens[rows], y[rows], SHARD), epochs=1, verbose=0)
            reference.append([np.asarray(v.numpy()) for v in find_anchored_optimizer(one).anchors])
    else:
        ours = [[distribute.stack_components(v)[0] for v in two.trainable_variables]]
        one = model_of(contextlib.nullcontext(), run_eagerly=True)
        one.fit(batches(tokens, y, SHARD * N), epochs=1, verbose=0)
        reference = [[np.asarray(v.numpy()) for v in one.trainable_variables]]
    floats = [v for v in optimizer.variables if tf.as_dtype(v.dtype).is_floating and len(v.shape)]
    return {"diff": max_diff(ours, reference), "moved": max_diff(ours, [initial] * len(ours)),
            "sparse": sparse, "slot_dtypes": sorted({tf.as_dtype(v.dtype).name for v in floats}),
            "variable_dtypes": sorted({tf.as_dtype(v.dtype).name for v in two.trainable_variables}),
            "finite": bool(all(np.isfinite(w).all() for row in ours for w in row))}


PRECISION = {
    "entropy_sgd": lambda: control_opt.EntropySGD(learning_rate=0.5, langevin_steps=2, seed=0),
    "entropy_adam": lambda: control_opt.EntropyAdam(learning_rate=0.05, langevin_steps=2, seed=0),
    "hopf_lax": lambda: control_opt.HopfLaxSGD(learning_rate=0.5, inner_steps=2),
    "elastic_sgd": lambda: control_opt.ElasticSGD(learning_rate=0.5, rho=0.0),
    "parle": lambda: control_opt.Parle(learning_rate=0.5, langevin_steps=2, rho=0.0)}
results["precision"] = {}
for policy in ("float64", "mixed_float16"):
    for name, make in PRECISION.items():
        try:
            results["precision"][f"{name},{policy}"] = precision_row(name, make, policy)
        except Exception as error:  # noqa: BLE001 - a refusal must name the option; the test reads it
            results["precision"][f"{name},{policy}"] = {"error": f"{type(error).__name__}: {error}"}

if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        json.dump(results, f, indent=1)
    print("OPTIONS_OK")
