"""Cost of drawing the Langevin noise: the library's Gaussian sampler against alternatives.

    python -m bench.bench_gaussian_sampler [--repeats 7] [--calls 100]

One draw per variable of the 28x28 CNN of `bench_optimizer_step` (184,586
numbers, 8 tensors), each added into a variable as the optimizer does, inside
one `tf.function`, with and without `jit_compile`. Rows: TensorFlow's own
`stateless_normal` (the baseline: it draws different numbers under XLA),
`ndtri` of 23-bit uniforms (this library's sampler before Box-Muller),
`standard_normal` at full precision (SDE and MCMC code) and with `bits=16`
(the optimizers' Langevin noise), and the same with z2 from a separate `sin`
in both modes (`sampling.box_muller` uses one broadcast `cos` under XLA); a row that only adds zeros measures the
harness (call, assign), which is subtracted. Writes its section of BENCHMARKS.md.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from control_opt._internal import sampling  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402

from bench.bench_optimizer_step import cnn28  # noqa: E402

# The variables of the 28x28 CNN of bench_optimizer_step: the noise one EntropySGD step draws.
SHAPES = [tuple(weight.shape) for weight in cnn28(0).trainable_weights]


def ndtri_of_uniforms(shape, seed):
    bits = sampling.random_bits(shape, seed)
    return tf.math.ndtri(sampling.unit_interval_from_bits(bits, tf.float32))


def separate_cos_and_sin(shape, seed):
    """`standard_normal(bits=16)` in the form traced without XLA (a `cos`, a `sin` and a concat),
    traced as is under XLA too: the XLA rows show what the broadcast `cos` saves there."""
    size = int(np.prod(shape))
    count = (size + 1) // 2
    u_radius, u_angle = sampling._uniform_pair(count, seed, tf.float32, 16)
    radius, angle = tf.sqrt(-2.0 * tf.math.log(u_radius)), (2.0 * np.pi) * u_angle
    flat = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)
    return tf.reshape(flat[:size], shape)


SAMPLERS = {
    "harness (adds zeros)": lambda shape, seed: tf.zeros(shape),
    "tf.random.stateless_normal": lambda shape, seed: tf.random.stateless_normal(shape, seed=seed, alg="philox"),
    "ndtri of 23-bit uniforms (before)": ndtri_of_uniforms,
    "standard_normal (Box-Muller, 23-bit uniforms)": lambda shape, seed: sampling.standard_normal(shape, seed),
    "bits=16, separate cos and sin in both modes": separate_cos_and_sin,
    "standard_normal(bits=16) (optimizers)": lambda shape, seed: sampling.standard_normal(shape, seed, bits=16),
}
BASELINE = "tf.random.stateless_normal"


def make_call(sampler, jit):
    variables = [tf.Variable(tf.zeros(shape)) for shape in SHAPES]

    @tf.function(jit_compile=jit)
    def call(step):
        for index, (variable, shape) in enumerate(zip(variables, SHAPES)):
            variable.assign_add(sampler(shape, tf.stack([index + 1, step])))

    call(tf.constant(0))
    return call


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    numbers = sum(int(np.prod(s)) for s in SHAPES)
    rows = []
    for jit in (False, True):
        calls = {name: make_call(fn, jit) for name, fn in SAMPLERS.items()}
        times = {name: [] for name in SAMPLERS}
        for _ in range(args.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                for step in range(args.calls):
                    call(tf.constant(step))
                times[name].append((time.perf_counter() - start) / args.calls * 1e6)
        harness = np.median(times["harness (adds zeros)"])
        net = {name: np.median(t) - harness for name, t in times.items()}
        for name in SAMPLERS:
            if name.startswith("harness"):
                rows.append(["on" if jit else "off", name, f"{harness:.0f}", "-", "-", "-"])
                continue
            rows.append(["on" if jit else "off", name, f"{np.median(times[name]):.0f}", f"{net[name]:.0f}",
                         f"{net[name] * 1e3 / numbers:.2f}", f"{net[name] / net[BASELINE]:.2f}"])
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["jit_compile", "sampler", "us / call (median)", "us / call, harness subtracted",
                            "ns / number", "ratio to stateless_normal"], rows)
    md = (f"## Gaussian sampler: the cost of the Langevin noise\n\n"
          f"Command: `python -m bench.bench_gaussian_sampler --repeats {args.repeats} --calls {args.calls}`. "
          f"{machine_line()} One draw per variable of the 28x28 CNN ({numbers:,} numbers in {len(SHAPES)} "
          f"tensors), each added into a variable, in one `tf.function`; median of {args.repeats} interleaved "
          f"repeats of {args.calls} calls; the harness row (adding zeros) is subtracted. `stateless_normal` "
          "is the baseline (it draws different numbers under XLA, the library's sampler does not).\n\n" + table)
    if not args.no_write:
        write_section("gaussian_sampler", md)
    print(md)


if __name__ == "__main__":
    main()
