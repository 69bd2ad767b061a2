"""Optimizer state of every optimizer, in bytes per model parameter (per replica).

    python -m bench.bench_optimizer_state [--replicas 2] [--write]

Each optimizer is built on the MNIST-1D CNN (`control_opt.models`, float32)
at its defaults, once without a strategy (one replica) and once under a
`MirroredStrategy` of `--replicas` logical CPU devices (the replica-local
optimizers on a model built under `control_opt.replica_local`, Keras' SGD on a
mirrored one). Counted: every variable of the optimizer (`optimizer.variables`),
its elements times its dtype's size, on one replica (per-replica and mirrored
variables alike hold one copy per device), divided by the model's parameter
count; the model's own weights are not counted. Keras' SGD (momentum 0.9) and
Adam are the baselines. Each model-sized buffer is 4 bytes per parameter; the
listed buffers are the optimizer's slot names. ElasticSGD is also measured
with EASGD's moving center and with `communication_period > 1` (the replicas'
mean then keeps the last center in one more slot, `held_center`).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from bench.cli import argv_value  # noqa: E402

import tensorflow as tf  # noqa: E402

_N = int(argv_value("replicas", "2"))
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * _N)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import control_opt  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from control_opt import models  # noqa: E402

OPTIMIZERS = {
    "Keras SGD (momentum 0.9)": (lambda: keras.optimizers.SGD(momentum=0.9), False),
    "Keras Adam": (keras.optimizers.Adam, False),
    "EntropySGD": (control_opt.EntropySGD, False),
    "EntropyAdam": (control_opt.EntropyAdam, False),
    "HopfLaxSGD": (control_opt.HopfLaxSGD, False),
    "ElasticSGD": (control_opt.ElasticSGD, True),
    "ElasticSGD (center_moving_rate=0.45)": (lambda: control_opt.ElasticSGD(center_moving_rate=0.45), True),
    "ElasticSGD (communication_period=4)": (lambda: control_opt.ElasticSGD(communication_period=4), True),
    "Parle": (control_opt.Parle, True),
}


def state(make, replica_local, strategy):
    scope = control_opt.replica_local(strategy) if replica_local else strategy.scope()
    with scope:
        model = models.build("mnist1d_cnn")
        optimizer = make()
        optimizer.build(model.trainable_variables)
    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    size = sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in optimizer.variables)
    prefixes = sorted({v.path.replace("/", "_") + "_" for v in model.trainable_variables}, key=len, reverse=True)
    buffers = sorted({next((v.name[len(p):] for p in prefixes if v.name.startswith(p)), v.name)
                      for v in optimizer.variables if int(np.prod(v.shape)) > 1})
    return size / parameters, size, parameters, buffers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    one = tf.distribute.get_strategy()
    several = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.replicas)])
    rows = []
    for name, (make, replica_local) in OPTIMIZERS.items():
        per_param_1, size, parameters, buffers = state(make, False, one)
        per_param_n, _, _, _ = state(make, replica_local, several)
        rows.append([name, f"{per_param_1:.2f}", f"{per_param_1 / 4:.2f}", f"{per_param_n:.2f}", ", ".join(buffers)])
    table = markdown_table(["optimizer (defaults)", "bytes per parameter, 1 replica", "model-sized float32 buffers",
                            f"bytes per parameter per replica, {args.replicas} replicas", "buffers (slot names)"],
                           rows)
    command = "python -m bench.bench_optimizer_state " + " ".join(sys.argv[1:])
    text = (f"## Optimizer state per parameter (`bench/bench_optimizer_state.py`)\n\n"
            f"Command: `{command}`. {machine_line()} MNIST-1D CNN ({parameters:,} parameters, float32), each "
            f"optimizer at its defaults; bytes of `optimizer.variables` on one replica divided by the parameter "
            f"count (the model's own weights not counted; scalars such as `iterations` included). "
            f"{args.replicas} replicas: `MirroredStrategy` on logical CPUs, the replica-local optimizers on a "
            f"model built under `control_opt.replica_local`.\n\n{table}\n")
    print(text)
    if args.write:
        write_section("optimizer_state", text)


if __name__ == "__main__":
    main()
