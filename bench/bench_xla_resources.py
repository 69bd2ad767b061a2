"""Under XLA on CPU, what a step pays for each resource variable it touches.

    python -m bench.bench_xla_resources [--repeats 15] [--calls 200]

The shape of the optimizer state of the MNIST-1D CNN (its 8 weight tensors,
5,210 numbers): every compiled call adds to the 8 "probe" variables, and
every 20th call (an untaken branch otherwise) rewrites a group of `slots`
buffers per weight tensor (anchor, mean, velocity, ...), as an anchored
optimizer's outer step does. Contenders, all under `jit_compile=True`, timed
by `bench.timing.interleave`:

* no outer step: the 8 probes only (the floor);
* per-tensor state behind a `tf.cond` (what the optimizers do): 8 x `slots`
  variables;
* the same with a `tf.where` select instead of the cond;
* flat state: one variable per slot kind holding all 8 tensors (`slots`
  variables), behind the same `tf.cond`.

The arithmetic is the same in all four; only the number of resource
variables the compiled step reads and writes differs. Writes its section of
BENCHMARKS.md (at least 9 repeats).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from bench.timing import interleave, require_repeats  # noqa: E402

# The weight tensors of models.build("mnist1d_cnn") (tests/bench/test_step_floors.py checks them).
SHAPES = [(5, 1, 25), (25,), (3, 25, 25), (25,), (3, 25, 25), (25,), (125, 10), (10,)]
PERIOD = 20


def make_step(layout, slots):
    """`(step, variable count, state)`: a compiled step over `slots` state buffers per weight
    tensor, laid out per tensor or flat; `state()` gives every buffer, flattened and concatenated."""
    size = sum(int(np.prod(s)) for s in SHAPES)
    probes = [tf.Variable(tf.ones(s)) for s in SHAPES]
    if layout == "flat":
        groups = [[tf.Variable(tf.ones([size])) for _ in range(slots)]]
    else:
        groups = [[tf.Variable(tf.ones(s)) for _ in range(slots)] for s in SHAPES]
    iteration = tf.Variable(0, dtype=tf.int64)

    def outer_values(group):
        reads = [tf.convert_to_tensor(v) for v in group]
        return reads, tf.add_n(reads) * (1.0 / len(reads)) + 1.0

    def outer():
        for group in groups:
            _, new = outer_values(group)
            for variable in group:
                variable.assign(new)

    @tf.function(jit_compile=True)
    def step():
        for probe in probes:
            probe.assign_add(tf.fill(probe.shape, 1e-3))
        due = tf.equal(iteration % PERIOD, PERIOD - 1)
        if layout == "select":
            for group in groups:
                reads, new = outer_values(group)
                for variable, old in zip(group, reads):
                    variable.assign(tf.where(due, new, old))
        elif layout != "none":
            tf.cond(due, outer, lambda: None)
        iteration.assign_add(1)

    def state():
        per_slot = [[] for _ in range(slots)]
        for group in groups:
            for k, variable in enumerate(group):
                per_slot[k].append(tf.reshape(variable, [-1]))
        return np.concatenate([np.concatenate([p.numpy() for p in probes], axis=None)]
                              + [np.concatenate([t.numpy() for t in parts]) for parts in per_slot])

    step()
    count = len(probes) + 1 + (0 if layout == "none" else sum(len(g) for g in groups))
    return step, count, state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--slots", type=int, default=5, help="state buffers per weight tensor (EntropyAdam: 5)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    require_repeats(args.repeats, not args.no_write)
    layouts = {
        "no outer step (floor)": "none",
        "per-tensor state, tf.cond": "cond",
        "per-tensor state, tf.where select": "select",
        "flat state (one variable per slot kind), tf.cond": "flat",
    }
    steps, counts = {}, {}
    for name, layout in layouts.items():
        steps[name], counts[name], _ = make_step(layout, args.slots)

    def timer(step):
        def timed():
            start = time.perf_counter()
            for _ in range(args.calls):
                step()
            return (time.perf_counter() - start) / args.calls
        return timed

    spreads = interleave({name: timer(step) for name, step in steps.items()}, args.repeats)
    floor = spreads["no outer step (floor)"].median
    rows = []
    for name in layouts:
        spread = spreads[name]
        extra = (spread.median - floor) * 1e6
        per_variable = "-" if layouts[name] == "none" else f"{extra / (counts[name] - counts['no outer step (floor)']):.1f}"
        rows.append([name, str(counts[name]), spread.text(1e6, 1), "-" if layouts[name] == "none" else f"{extra:.1f}",
                     per_variable])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["state layout", "resource variables in the step", "us / call, median [min - max]",
                            "us / call above the floor", "us per extra variable"], rows)
    md = ("## XLA on CPU: the cost of each resource variable a step touches\n\n"
          f"Command: `python -m bench.bench_xla_resources --repeats {args.repeats} --calls {args.calls} "
          f"--slots {args.slots}`. {machine_line()} The optimizer state of the MNIST-1D CNN (8 weight "
          f"tensors, 5,210 numbers) with {args.slots} state buffers per tensor, in one `jit_compile=True` "
          f"function: every call adds to the 8 probes; every {PERIOD}th call rewrites the state (an outer "
          "step). The arithmetic is the same in every row; only the number of resource variables the "
          f"compiled step reads and writes differs. {args.repeats} interleaved rounds of {args.calls} calls.\n\n"
          + table)
    if not args.no_write:
        write_section("xla_resources", md)
    print(md)


if __name__ == "__main__":
    main()
