"""Time per training step inside `model.fit`: anchored optimizers against Keras SGD.

    python -m bench.bench_optimizer_step [--repeats 7] [--steps 200]

For each model (the MNIST-1D CNN, and a larger CNN on 28x28 inputs) and each of
jit_compile off/on, the baseline `keras.optimizers.SGD(momentum=0.9,
nesterov=True)` and the optimizers under test are timed in the same process,
interleaved repeat by repeat, each repeat one `fit` of `--steps` steps after a
warm-up; the table reports medians and the ratio to the baseline. Inputs are
random (timing does not depend on the data). Also reports optimizer-state
memory per model parameter. Writes its section of BENCHMARKS.md.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402

import control_opt  # noqa: E402
from control_opt import models  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402

BATCH = 100


def cnn28(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


MODELS = {
    "mnist1d_cnn": (lambda seed: models.build("mnist1d_cnn", seed=seed), (40, 1)),
    "cnn_28x28": (cnn28, (28, 28, 1)),
}

OPTIMIZERS = {
    "SGD (Nesterov 0.9)": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "EntropySGD": lambda: control_opt.EntropySGD(learning_rate=1.0, seed=0),
    "EntropySGD (noise=0)": lambda: control_opt.EntropySGD(learning_rate=1.0, noise=0.0, seed=0),
    "EntropyAdam": lambda: control_opt.EntropyAdam(seed=0),
    "HopfLaxSGD": lambda: control_opt.HopfLaxSGD(),
}


SKIP = 5  # steps excluded from the timing at the start of each fit (iterator start-up)


class StepTimer(keras.callbacks.Callback):
    """Wall time from the start of step `skip` to the end of the last step of one fit."""

    def __init__(self, skip):
        super().__init__()
        self.skip = skip

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.skip:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()


def make_fit(model_name, optimizer_fn, jit, steps):
    build, shape = MODELS[model_name]
    model = build(0)
    model.compile(optimizer=optimizer_fn(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * BATCH,) + shape).astype("float32")
    y = rng.integers(0, 10, size=(steps * BATCH,)).astype("int32")
    model.fit(x[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace + build

    def timed():
        timer = StepTimer(skip=SKIP)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        return (timer.end - timer.start) / (steps - SKIP) * 1e3

    return model, timed


def state_per_parameter(model):
    n_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    per_param = sum(int(np.prod(v.shape)) for v in model.optimizer.variables if len(v.shape) > 0)
    return per_param / n_params


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for model_name in MODELS:
        for jit in (False, True):
            fits = {name: make_fit(model_name, fn, jit, args.steps) for name, fn in OPTIMIZERS.items()}
            times = {name: [] for name in OPTIMIZERS}
            for _ in range(args.repeats):
                for name, (_, timed) in fits.items():
                    times[name].append(timed())
            base = np.median(times["SGD (Nesterov 0.9)"])
            for name, (model, _) in fits.items():
                med = np.median(times[name])
                rows.append([model_name, "on" if jit else "off", name, f"{med:.3f}", f"{med / base:.2f}",
                             f"{state_per_parameter(model):.0f}"])
                print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["model", "jit_compile", "optimizer", "ms / step (median)", "ratio to SGD",
                            "optimizer state / parameter"], rows)
    md = (f"## Optimizer step overhead in `fit`\n\n"
          f"Command: `python -m bench.bench_optimizer_step --repeats {args.repeats} --steps {args.steps}`. "
          f"{machine_line()} Batch {BATCH}, random inputs, {args.repeats} interleaved repeats of "
          f"{args.steps} steps each (the first {SKIP} of each fit untimed), one process; ratio = median / median of SGD in the same model and "
          f"jit setting. Target for EntropySGD: ratio <= 1.10. The noise=0 row isolates the cost of "
          "drawing the Langevin noise (Box-Muller on one 32-bit Philox word per pair of normals, "
          "`control_opt.sampling.standard_normal(bits=16)`), which is most of EntropySGD's overhead "
          "on the larger model.\n\n"
          "Optimizer state per parameter (count of per-parameter slot entries): SGD momentum 1; "
          "EntropySGD with the authors' defaults (no outer momentum) 3 = anchor, mean, Langevin "
          "velocity (4 with outer momentum); EntropyAdam 5 = anchor, mean, Langevin velocity and "
          "Adam's two moments; HopfLaxSGD with its defaults (no outer momentum) 2 = anchor, p.\n\n" + table)
    if not args.no_write:
        write_section("optimizer_step", md)
    print(md)


if __name__ == "__main__":
    main()
