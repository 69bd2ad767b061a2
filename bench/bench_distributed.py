"""Parle and Elastic-SGD against data-parallel SGD under the same MirroredStrategy.

    python -m bench.bench_distributed [--replicas 2] [--repeats 5] [--steps 60]

On `--replicas` logical CPU devices (configured before TensorFlow starts; GPUs
are hidden), every optimizer runs under one `MirroredStrategy` whose
cross-device ops count what they reduce (`control_opt.distribute.CountingReduction`):

* data-parallel SGD: Keras' `SGD(momentum=0.9, nesterov=True)` on a mirrored
  model (one SUM all-reduce of every gradient per step);
* `ElasticSGD` (tau = 1 and tau = 4) and `Parle` (L = 25, its default) on a
  replica-local model (`control_opt.replica_local`).

Per-step time: each repeat one `fit` of `--steps` steps after a warm-up,
interleaved over the optimizers, in one process; the median over repeats and
its ratio to SGD's. Bytes all-reduced per gradient evaluation: the counter's
bytes (one replica's input to each reduction) over the steps of the timed fits.
Writes its section of BENCHMARKS.md.
"""

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _replicas_from_argv(default=2):
    for i, arg in enumerate(sys.argv):
        if arg == "--replicas" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--replicas="):
            return int(arg.split("=", 1)[1])
    return default


import tensorflow as tf  # noqa: E402

_N = _replicas_from_argv()
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * _N)

import numpy as np  # noqa: E402
import keras  # noqa: E402

import control_opt  # noqa: E402
from control_opt import distribute, models  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402

BATCH = 100  # global batch, split over the replicas
warnings.filterwarnings("ignore", message=".*before the first outer step.*")  # the 2-step warm-up fit
SKIP = 3


def mlp(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((40, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(512, activation="relu"), keras.layers.Dense(512, activation="relu"),
                             keras.layers.Dense(10)])


MODELS = {
    "mnist1d_cnn": lambda seed: models.build("mnist1d_cnn", seed=seed),
    "mlp_512x2": mlp,
}

OPTIMIZERS = {
    "data-parallel SGD": (False, lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
    "ElasticSGD (tau=1)": (True, lambda: control_opt.ElasticSGD(rho=0.1)),
    "ElasticSGD (tau=4)": (True, lambda: control_opt.ElasticSGD(rho=0.1, communication_period=4)),
    "Parle (L=25)": (True, lambda: control_opt.Parle(seed=0)),
}


class StepTimer(keras.callbacks.Callback):
    """Wall time from step `skip` on; bytes reduced by the training steps only (not
    by the swap of the center into the model at the end of `fit`)."""

    def __init__(self, skip, counter):
        super().__init__()
        self.skip, self.counter = skip, counter

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.bytes_start = int(self.counter.bytes_reduced.numpy())
        if batch == self.skip:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()
        self.bytes_end = int(self.counter.bytes_reduced.numpy())


def make_fit(strategy, counter, model_name, replica_local, optimizer_fn, steps):
    with (control_opt.replica_local(strategy) if replica_local else strategy.scope()):
        model = MODELS[model_name](0)
        model.compile(optimizer=optimizer_fn(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * BATCH, 40, 1)).astype("float32")
    y = rng.integers(0, 10, size=(steps * BATCH,)).astype("int32")
    model.fit(x[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace + build
    record = {"bytes": 0, "steps": 0}

    def timed():
        timer = StepTimer(SKIP, counter)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        record["bytes"] += timer.bytes_end - timer.bytes_start
        record["steps"] += steps
        return (timer.end - timer.start) / (steps - SKIP) * 1e3

    n_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return timed, record, n_params


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    counter = distribute.CountingReduction()
    strategy = tf.distribute.MirroredStrategy(distribute.local_devices(args.replicas), cross_device_ops=counter)
    rows = []
    for model_name in MODELS:
        fits = {name: make_fit(strategy, counter, model_name, local, fn, args.steps)
                for name, (local, fn) in OPTIMIZERS.items()}
        times = {name: [] for name in OPTIMIZERS}
        for _ in range(args.repeats):
            for name, (timed, _, _) in fits.items():
                times[name].append(timed())
        base_time = np.median(times["data-parallel SGD"])
        base_bytes = fits["data-parallel SGD"][1]["bytes"] / fits["data-parallel SGD"][1]["steps"]
        for name, (_, record, n_params) in fits.items():
            med = np.median(times[name])
            per_step = record["bytes"] / record["steps"]
            rows.append([model_name, f"{n_params:,}", name, f"{med:.2f}", f"{med / base_time:.2f}",
                         f"{per_step:,.0f}", f"{per_step / base_bytes:.3f}"])
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["model", "parameters", "optimizer", "ms / step (median)", "ratio to SGD",
                            "bytes all-reduced / gradient evaluation", "ratio to SGD"], rows)
    md = (f"## Several replicas: Parle and Elastic-SGD vs data-parallel SGD (`bench/bench_distributed.py`)\n\n"
          f"Command: `python -m bench.bench_distributed --replicas {args.replicas} --repeats {args.repeats} "
          f"--steps {args.steps}`. {machine_line()} {args.replicas} logical CPU devices (one physical CPU "
          f"shared by the replicas, so this measures overhead, not a speed-up), one `MirroredStrategy` for "
          f"all optimizers, global batch {BATCH} split over the replicas, random inputs, {args.repeats} "
          f"interleaved repeats of {args.steps} steps (the first {SKIP} of each fit untimed), one process; "
          "a callback reads the counters after every step (the same cost for every optimizer); "
          "ratios against data-parallel SGD (Keras SGD, Nesterov 0.9, mirrored model) in the same model. "
          "Bytes: what the strategy's cross-device ops reduced, per replica, over the timed steps "
          "(`control_opt.distribute.CountingReduction`; metrics' reads go elsewhere and are not counted). "
          "Data-parallel SGD all-reduces every gradient every step; Elastic-SGD the parameters every tau "
          "steps; Parle the parameters once per outer step, 1/L of SGD's.\n\n" + table)
    if not args.no_write:
        write_section("distributed", md)
    print(md)


if __name__ == "__main__":
    main()
