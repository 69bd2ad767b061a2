"""Where the time of one training step goes: `tf.profiler` traces of `fit`, op by op.

    python -m bench.profile_optimizer_step [--steps 50] [--json OUT] [--before BEFORE.json]

For each optimizer on the MNIST-1D CNN (jit_compile off, batch 100), one `fit`
of `--steps` steps runs under `tf.profiler.experimental` after a warm-up fit;
the trace (`*.xplane.pb`) is read back with TensorFlow's own XSpace protobuf,
and every op the executor ran is attributed, by its node name, to the forward
pass (the model's name scope), the backward pass (`gradient_tape`), the loss,
or the rest: the optimizer's update and Keras' step bookkeeping (the same for
every optimizer). Reported per step: ops run and their summed kernel time
(the executor's own cost per op, a few microseconds each on CPU, comes on
top), and the op types that cost the optimizer most. `--json` saves the
numbers; `--before` puts a saved run (e.g. of an older commit) next to this
one. Writes its section of BENCHMARKS.md unless `--no-write`.
"""

import argparse
import collections
import glob
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import control_opt  # noqa: E402
from control_opt import models  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from bench.timing import synthetic_batches  # noqa: E402

BATCH = 100
OPTIMIZERS = {
    "SGD (Nesterov 0.9)": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "EntropySGD": lambda: control_opt.EntropySGD(learning_rate=1.0, seed=0),
    "EntropySGD (noise=0)": lambda: control_opt.EntropySGD(learning_rate=1.0, noise=0.0, seed=0),
    "EntropyAdam": lambda: control_opt.EntropyAdam(seed=0),
    "HopfLaxSGD": lambda: control_opt.HopfLaxSGD(),
}
PARTS = ("forward", "backward", "loss", "optimizer + bookkeeping")


def part_of(node, model_name):
    if "gradient_tape" in node:
        return "backward"
    if model_name in node:
        return "forward"
    if "compile_loss" in node:
        return "loss"
    return "optimizer + bookkeeping"


def read_trace(logdir, model_name, steps):
    """`{part: [ops per step, us per step]}` and `{op type: [ops, us] per step}` of the optimizer part."""
    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    parts = {part: [0.0, 0.0] for part in PARTS}
    types = collections.defaultdict(lambda: [0.0, 0.0])
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names[event.metadata_id].name
                if ":" not in name or name.startswith(("ExecutorState", "ThreadpoolListener")):
                    continue
                node, op_type = name.rsplit(":", 1)
                part = part_of(node, model_name)
                parts[part][0] += 1.0 / steps
                parts[part][1] += event.duration_ps / 1e6 / steps
                if part == PARTS[-1]:
                    types[op_type][0] += 1.0 / steps
                    types[op_type][1] += event.duration_ps / 1e6 / steps
    return parts, dict(types)


def profile(name, make, steps):
    model = models.build("mnist1d_cnn", seed=0)
    model.compile(optimizer=make(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    data = synthetic_batches((40, 1), 10, BATCH, num_batches=20)
    model.fit(data, steps_per_epoch=10, epochs=1, verbose=0)  # trace, build, warm up
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        return read_trace(logdir, model.name, steps)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--json", default=None)
    parser.add_argument("--before", default=None)
    parser.add_argument("--before_label", default="before")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = {}
    for name, make in OPTIMIZERS.items():
        parts, types = profile(name, make, args.steps)
        results[name] = {"parts": parts, "types": types}
        print(name, {part: f"{ops:.0f} ops, {us:.0f} us" for part, (ops, us) in parts.items()}, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    before = json.load(open(args.before)) if args.before else {}
    rows = []
    for name, result in results.items():
        ops, us = result["parts"][PARTS[-1]]
        model_ops = sum(result["parts"][p][0] for p in PARTS[:3])
        old = before.get(name, {}).get("parts", {}).get(PARTS[-1])
        top = sorted(result["types"].items(), key=lambda kv: -kv[1][1])[:4]
        rows.append([name, f"{model_ops:.0f}",
                     f"{old[0]:.0f} / {old[1]:.0f}" if old else "-", f"{ops:.0f} / {us:.0f}",
                     ", ".join(f"{t} {n:.0f}x {u:.0f} us" for t, (n, u) in top)])
    md = ("## Where a step's time goes: `tf.profiler` (`bench/profile_optimizer_step.py`)\n\n"
          f"Command: `python -m bench.profile_optimizer_step --steps {args.steps}"
          + (f" --before {args.before} --before_label '{args.before_label}'" if args.before else "")
          + f"`. {machine_line()} "
          "MNIST-1D CNN (8 variables), batch 100, jit_compile off; each optimizer's `fit` traced by "
          "`tf.profiler.experimental` and every op the executor ran attributed to forward + backward + loss "
          "(the same for every optimizer) or to the optimizer update with Keras' step bookkeeping. Per step: "
          "ops run / their summed kernel time in microseconds (the executor's cost per op comes on top). "
          + (f"`{args.before_label}`: the same script run on {args.before_label}. " if args.before else "")
          + "Single traced runs on a shared machine: the op counts are exact, the microseconds indicative; "
          "the step-time ratios are in the optimizer_step section.\n\n"
          + markdown_table(["optimizer", "model ops / step", f"optimizer ops / us per step ({args.before_label})",
                            "optimizer ops / us per step (now)", "costliest optimizer op types (now)"], rows))
    if not args.no_write:
        write_section("optimizer_profile", md)
    print(md)


if __name__ == "__main__":
    main()
