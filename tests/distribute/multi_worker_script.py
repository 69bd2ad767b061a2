"""A custom `strategy.run` loop with ElasticSGD and Parle, for tests/distribute/test_multi_worker.py.

    python multi_worker_script.py worker INDEX PORT0,PORT1 OUT.json   # one of 2 MultiWorkerMirroredStrategy workers
    python multi_worker_script.py mirrored OUT.json                   # the reference: MirroredStrategy, 2 logical CPUs

Keras' `fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585);
a loop of `strategy.run(step)` with the Keras model and `apply_gradients` works.
Replica r trains on the data of seed r in both modes, so the two must agree.
"""

import json
import os
import sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
MODE = sys.argv[1]
if MODE == "worker":
    INDEX, PORTS, OUT = int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in PORTS]},
                                          "task": {"type": "worker", "index": INDEX}})
else:
    OUT = sys.argv[2]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if MODE == "worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    try:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:  # already configured (replica_checks.py: 4 logical CPUs; this uses the first 2)
        pass
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

import keras  # noqa: E402

import control_opt  # noqa: E402
from control_opt import distribute  # noqa: E402

STEPS = 5
assert strategy.num_replicas_in_sync == 2


def replica_data(r):
    rng = np.random.default_rng(r)
    x = rng.normal(size=(8 * STEPS, 6)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def batches(step):
    """Replica r's batch `step`, as the strategy's per-replica input."""
    def value_fn(context):
        x, y = replica_data(context.replica_id_in_sync_group)
        return tf.constant(x[8 * step:8 * step + 8]), tf.constant(y[8 * step:8 * step + 8])
    return strategy.experimental_distribute_values_from_function(value_fn)


def train(make_optimizer):
    with control_opt.replica_local(strategy):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
        optimizer = make_optimizer()
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # carries Keras' 1/n

    @tf.function
    def step(data):
        def replica_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        strategy.run(replica_step, args=data)

    for s in range(STEPS):
        step(batches(s))
    # This process's replicas, by global replica id.
    ids = ([strategy.cluster_resolver.task_id] if MODE == "worker" else [0, 1])
    anchors = {str(r): [distribute.components(a)[i].numpy().tolist() for a in optimizer.anchors]
               for i, r in enumerate(ids)}
    centers = [distribute.components(c)[0].numpy().tolist() for c in optimizer.centers]
    return dict(anchors=anchors, centers=centers, syncs=optimizer.syncs)


results = {"elastic": train(lambda: control_opt.ElasticSGD(learning_rate=0.1, rho=0.5)),
           "parle": train(lambda: control_opt.Parle(langevin_steps=2, gamma=0.03, rho=0.5, noise=1e-2, seed=3))}
with open(OUT, "w") as f:
    json.dump(results, f)
print("MULTI_WORKER_OK")
