"""Time per training step: anchored optimizers against Keras SGD.

    python -m bench.bench_optimizer_step [--repeats 25] [--steps 20] [--models mnist1d_cnn,lenet] [--jit off,on]

For each model (the MNIST-1D CNN, 5,210 weights; the Entropy-SGD paper's LeNet
on 28x28 inputs, 431,080 trainable weights) and each of jit_compile off/on,
the baseline `keras.optimizers.SGD(momentum=0.9, nesterov=True)` and the
optimizers under test are timed in the same process by `bench.timing.interleave`:
every repeat is one round in which each optimizer runs `--steps` steps (20
steps hold exactly one outer step of L = 20, two of L = 10) of the train
function that `fit` calls once per batch (`bench.timing.timed_steps`: the
compiled step without `fit`'s callbacks, which cost every optimizer alike and
would only dilute the ratios), the order rotated from round to round. Short
blocks and many rounds: on a shared machine the speed drifts within seconds,
so the finer the interleaving, the more of the drift the paired ratio cancels. The table
reports the median ms/step with its range, and the median over rounds of
`time / SGD's time in the same round`, with its quartiles and range; the
target is met when that median is at most the target. Inputs are random (timing does not depend
on the data). Also reports optimizer state per model parameter. Writes its
section of BENCHMARKS.md (at least 9 repeats).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import control_opt  # noqa: E402
from control_opt import models  # noqa: E402
from control_opt._internal import sampling  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from bench.timing import interleave, paired_ratio, require_repeats, synthetic_batches, timed_steps  # noqa: E402

BATCH = 100
BASELINE = "SGD (Nesterov 0.9)"

MODELS = {"mnist1d_cnn": (40, 1), "lenet": (28, 28, 1)}


class SGDPlusNoise(keras.optimizers.SGD):
    """The floor of any optimizer that adds exact Gaussian noise to every weight
    each step: Keras' SGD step, then the one draw per step that EntropySGD
    draws (`sampling.standard_normal(bits=16)`, times `SCALE`), added into the
    weights. With `bits_only`, only the Philox words that draw needs (n/2 for
    n weights), written to a sink variable: the generator's own floor."""

    SCALE = 1e-9  # small enough not to move the weights of a timed run

    def __init__(self, *args, bits_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        self._bits_only = bits_only

    def build(self, variables):
        super().build(variables)
        self._size = sum(int(np.prod(variable.shape)) for variable in variables)
        self._sink = tf.Variable(tf.zeros([(self._size + 1) // 2], tf.int32), trainable=False)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        super()._backend_update_step(grads, trainable_variables, learning_rate)
        seed = tf.stack([tf.constant(3, tf.int32), tf.cast(self.iterations, tf.int32)])
        if self._bits_only:
            self._sink.assign(tf.bitcast(sampling.random_bits([(self._size + 1) // 2], seed), tf.int32))
            return
        sizes = [int(np.prod(variable.shape)) for variable in trainable_variables]
        flat = self.SCALE * sampling.standard_normal([self._size], seed, tf.float32, bits=16)
        for variable, piece in zip(trainable_variables, tf.split(flat, sizes)):
            variable.assign_add(tf.reshape(piece, variable.shape))


# name: (factory, target ratio to SGD or None)
OPTIMIZERS = {
    BASELINE: (lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), None),
    "EntropySGD": (lambda: control_opt.EntropySGD(learning_rate=1.0, seed=0), 1.05),
    "EntropySGD (noise=0)": (lambda: control_opt.EntropySGD(learning_rate=1.0, noise=0.0, seed=0), 1.02),
    "EntropyAdam": (lambda: control_opt.EntropyAdam(seed=0), 1.05),
    "EntropyAdam (noise=0)": (lambda: control_opt.EntropyAdam(noise=0.0, seed=0), 1.02),
    "HopfLaxSGD": (lambda: control_opt.HopfLaxSGD(), 1.02),  # noiseless
    # Floors (no target): what the noise alone costs on top of SGD.
    "floor: SGD + Philox bits of the noise": (
        lambda: SGDPlusNoise(0.05, momentum=0.9, nesterov=True, bits_only=True), None),
    "floor: SGD + the Langevin noise": (lambda: SGDPlusNoise(0.05, momentum=0.9, nesterov=True), None),
}


def make_contender(model_name, optimizer_fn, jit, steps):
    model = models.build(model_name, seed=0)
    model.compile(optimizer=optimizer_fn(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    data = synthetic_batches(MODELS[model_name], 10, BATCH, num_batches=20)
    return model, timed_steps(model, data, steps)


def state_per_parameter(model):
    n_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    per_param = sum(int(np.prod(v.shape)) for v in model.optimizer.variables if len(v.shape) > 0)
    return per_param / n_params


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--jit", default="off,on", help="jit_compile settings to time: off, on or off,on")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    require_repeats(args.repeats, not args.no_write)
    rows = []
    for model_name in args.models.split(","):
        for jit in [setting == "on" for setting in args.jit.split(",")]:
            fits = {name: make_contender(model_name, fn, jit, args.steps) for name, (fn, _) in OPTIMIZERS.items()}
            spreads = interleave({name: timed for name, (_, timed) in fits.items()}, args.repeats)
            for name, (model, _) in fits.items():
                target = OPTIMIZERS[name][1]
                if name == BASELINE:
                    ratio_text, verdict = "1 (baseline)", "-"
                else:
                    ratio = paired_ratio(spreads[name], spreads[BASELINE])
                    ratio_text = f"{ratio.quartiles_text()} ({ratio.min:.3f} - {ratio.max:.3f})"
                    verdict = "-" if target is None else f"<= {target}: {'met' if ratio.median <= target else 'NOT met'}"
                rows.append([model_name, "on" if jit else "off", name, spreads[name].text(scale=1e3),
                             ratio_text, verdict, f"{state_per_parameter(model):.0f}"])
                print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["model", "jit_compile", "optimizer", "ms / step, median [min - max]",
                            "ratio to SGD over rounds: median [quartiles] (min - max)", "target",
                            "optimizer state / parameter"], rows)
    md = (f"## Optimizer step overhead\n\n"
          f"Command: `python -m bench.bench_optimizer_step --repeats {args.repeats} --steps {args.steps}"
          + ("" if (args.models, args.jit) == (",".join(MODELS), "off,on") else f" --models {args.models} --jit {args.jit}")
          + "`. "
          f"{machine_line()} Batch {BATCH}, random inputs; models `mnist1d_cnn` (5,210 weights, 8 variables) "
          "and `lenet` (the Entropy-SGD paper's LeNet on 28x28 inputs: 431,080 trainable weights, 12 "
          f"variables, batch norm). {args.repeats} rounds per model and jit setting; in each round every "
          f"optimizer runs {args.steps} steps of the train function `fit` calls (`bench.timing.timed_steps`, "
          "no callbacks: they cost every optimizer alike), in an order rotated "
          "from round to round (`bench.timing.interleave`). Ratio: median over rounds of the step time "
          "divided by SGD's in the same round (`bench.timing.paired_ratio`), with its quartiles and range. Targets "
          "(issue 12): 1.05 with the Langevin noise, 1.02 without (HopfLaxSGD draws none). The two floor rows "
          "are Keras' SGD step plus only the noise EntropySGD draws (`bench_optimizer_step.SGDPlusNoise`): the "
          "Philox words alone, and the whole draw added into the weights; an optimizer that adds this exact "
          "Gaussian noise to every weight cannot be cheaper than its floor.\n\n"
          "Optimizer state per parameter (count of per-parameter slot entries): SGD momentum 1; "
          "EntropySGD with the authors' defaults (no outer momentum) 3 = anchor, mean, Langevin "
          "velocity (4 with outer momentum); EntropyAdam 5 = anchor, mean, Langevin velocity and "
          "Adam's two moments; HopfLaxSGD with its defaults (no outer momentum) 2 = anchor, p.\n\n" + table)
    if not args.no_write:
        write_section("optimizer_step", md)
    print(md)


if __name__ == "__main__":
    main()
