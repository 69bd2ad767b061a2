"""Images/s of Parle and Elastic-SGD against data-parallel SGD on several devices.

    python -m bench.gpu_distributed                 # with GPUs: every visible GPU one replica, All-CNN-BN,
                                                    # CIFAR-shaped, batch 128 per replica
    python -m bench.gpu_distributed --tiny          # anywhere (the default without a GPU): 2 logical CPUs,
                                                    # the MNIST MLP on 8x8x1 inputs, a few steps: seconds,
                                                    # for CI (tests/bench/test_gpu_distributed.py); its
                                                    # numbers mean nothing
    python -m bench.gpu_distributed --replicas=2 --write

One `MirroredStrategy` over `--replicas` devices (all visible GPUs by default;
without GPUs, logical CPU devices configured before TensorFlow starts). For
each optimizer the network (`control_opt.models.build`, synthetic data of its
input shape: timing does not depend on the values) is compiled once and warmed
up; `--repeats` rounds then time one `fit` of `--steps` steps per optimizer,
interleaved, in this one process:

* data-parallel SGD: Keras `SGD(momentum=0.9, nesterov=True)` on a mirrored
  model, one all-reduce of every gradient per step;
* Parle (`control_opt.Parle`, L = `--langevin_steps`, the authors' 25 by
  default) and Elastic-SGD (tau = 1) on a replica-local model
  (`control_opt.replica_local`): no gradient all-reduce, the parameters
  all-reduced once per outer step (Parle) or per step (Elastic-SGD).

Images/s counts the global batch (per-replica batch x replicas) per step; a
step is one gradient evaluation on every replica. Printed: one JSON line, then
a summary line. `--write` puts a row into BENCHMARKS.md (section
`gpu_distributed`; refused for tiny results).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bench.cli import argv_value  # noqa: E402


def _configure_devices():
    """Without GPUs, the logical CPU devices of the replicas (2 by default), before TensorFlow starts."""
    if tf.config.list_physical_devices("GPU"):
        return
    n = int(argv_value("replicas") or 2)
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * n)


if __name__ == "__main__":
    _configure_devices()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import control_opt  # noqa: E402
from control_opt import distribute, models  # noqa: E402
from bench.gpu_smoke import SHAPES, device_name  # noqa: E402
from bench.timing import synthetic_batches, timed_fit  # noqa: E402

SKIP = 3  # steps of each fit left untimed (iterator start-up)
NAMES = ("sgd", "parle", "elastic_sgd")
LABELS = {"sgd": "data-parallel SGD", "parle": "Parle", "elastic_sgd": "Elastic-SGD"}


def _optimizer(name, langevin_steps):
    if name == "sgd":
        return keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    if name == "parle":
        return control_opt.Parle(learning_rate=0.1, langevin_steps=langevin_steps, seed=0)
    return control_opt.ElasticSGD(learning_rate=0.05, rho=0.1, seed=0)


def make_fit(strategy, name, model_name, shape, num_classes, batch, steps, langevin_steps):
    replicas = strategy.num_replicas_in_sync
    scope = strategy.scope() if name == "sgd" else control_opt.replica_local(strategy)
    with scope:
        model = models.build(model_name, input_shape=shape, num_classes=num_classes, seed=0,
                             **({"authors_code": True} if model_name in ("allcnn_bn", "lenet") else {}))
        model.compile(optimizer=_optimizer(name, langevin_steps),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    global_batch = batch * replicas
    return timed_fit(model, synthetic_batches(shape, num_classes, global_batch, 4), steps, SKIP)


def run(model_name="allcnn_bn", batch=128, steps=100, repeats=3, langevin_steps=25, replicas=None, shape=None):
    gpus = tf.config.list_physical_devices("GPU")
    n = replicas or (len(gpus) if gpus else 2)
    strategy = tf.distribute.MirroredStrategy(distribute.local_devices(n))
    shape, num_classes = (tuple(shape) if shape else SHAPES[model_name][0]), SHAPES[model_name][1]
    fits = {name: make_fit(strategy, name, model_name, shape, num_classes, batch, steps, langevin_steps)
            for name in NAMES}
    times = {name: [] for name in NAMES}
    for _ in range(repeats):
        for name, timed in fits.items():
            times[name].append(timed())
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    images = {name: batch * n / (m / 1e3) for name, m in ms.items()}
    return dict(model=model_name, input_shape=list(shape), batch_per_replica=batch, replicas=n, steps=steps,
                repeats=repeats, langevin_steps=langevin_steps,
                device=f"{n} x {device_name()}" if gpus else f"{n} logical CPUs ({os.cpu_count()} cores)",
                ms_per_step=ms, images_per_s=images,
                parle_over_sgd=images["parle"] / images["sgd"],
                elastic_sgd_over_sgd=images["elastic_sgd"] / images["sgd"])


HEADER = ("| model (input) | devices | batch per replica | SGD images/s | Parle images/s | Elastic-SGD images/s | "
          "Parle / SGD | Elastic-SGD / SGD | command |\n|---|---|---|---|---|---|---|---|---|")


def markdown_row(result, command):
    i = result["images_per_s"]
    return (f"| {result['model']} {tuple(result['input_shape'])} | {result['device']} | "
            f"{result['batch_per_replica']} | "
            f"{i['sgd']:.0f} | {i['parle']:.0f} | {i['elastic_sgd']:.0f} | {result['parle_over_sgd']:.2f} | "
            f"{result['elastic_sgd_over_sgd']:.2f} | `{command}` |")


def write(result, command):
    from bench.report import machine_line, section_rows, write_section  # pylint: disable=import-outside-toplevel

    rows = section_rows("gpu_distributed")
    key = f"| {result['model']} {tuple(result['input_shape'])} | {result['device']} |"
    rows = [r for r in rows if not r.startswith(key)] + [markdown_row(result, command)]
    md = ("## Several devices: images/s of Parle and Elastic-SGD vs data-parallel SGD "
          "(`bench/gpu_distributed.py`)\n\n"
          "One `MirroredStrategy`, synthetic data of the network's input shape, each optimizer compiled and "
          "warmed up once, then interleaved timed fits in one process (median over rounds); images/s counts "
          f"the global batch. Parle with L inner steps per all-reduce (the JSON line has L). {machine_line()}\n\n"
          + HEADER + "\n" + "\n".join(rows))
    write_section("gpu_distributed", md)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", default=None,
                        help="tiny sizes on 2 logical CPUs (default when no GPU is visible)")
    parser.add_argument("--full", dest="tiny", action="store_false", help="full sizes even without a GPU")
    parser.add_argument("--replicas", type=int, default=None, help="devices (default: all GPUs, else 2 CPUs)")
    parser.add_argument("--model", default=None, choices=sorted(SHAPES),
                        help="the network (default allcnn_bn; mnistfc on 8x8x1 inputs with --tiny)")
    parser.add_argument("--batch", type=int, default=None, help="per replica")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--langevin_steps", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="write the row into BENCHMARKS.md")
    args = parser.parse_args()
    tiny = args.tiny if args.tiny is not None else not tf.config.list_physical_devices("GPU")
    if tiny:
        model = args.model or "mnistfc"
        kwargs = dict(batch=args.batch or 4, steps=args.steps or 6, repeats=args.repeats or 1,
                      langevin_steps=args.langevin_steps or 2,
                      shape={"allcnn_bn": (8, 8, 3), "mnistfc": (8, 8, 1)}.get(model))
    else:
        model = args.model or "allcnn_bn"
        kwargs = dict(batch=args.batch or 128, steps=args.steps or 100, repeats=args.repeats or 3,
                      langevin_steps=args.langevin_steps or 25)
    result = run(model, replicas=args.replicas, **kwargs)
    result["tiny"] = tiny
    print(json.dumps(result))
    print(f"{result['model']} {tuple(result['input_shape'])}, batch {result['batch_per_replica']} per replica on "
          f"{result['device']}{' (tiny: numbers mean nothing)' if tiny else ''}: "
          + ", ".join(f"{LABELS[n]} {result['images_per_s'][n]:.0f} images/s" for n in NAMES)
          + f"; Parle / SGD {result['parle_over_sgd']:.2f}", flush=True)
    if args.write:
        if tiny:
            raise SystemExit("--write refuses tiny results")
        write(result, "python -m bench.gpu_distributed " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
