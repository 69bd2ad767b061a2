"""Smoke benchmark: the paper's networks train at speed with SGD and Entropy-SGD.

    python -m bench.gpu_smoke                      # on a GPU: All-CNN-BN, CIFAR-shaped, batch 128
    python -m bench.gpu_smoke --tiny               # anywhere (the default without a GPU): seconds, for CI
    python -m bench.gpu_smoke --model=lenet --batch=128 --steps=60 --repeats=5 --write   # the CPU row

Synthetic data of the right shape (timing does not depend on the values): for
each optimizer, the network (`control_opt.models.build`, the authors' geometry)
is compiled once and warmed up; then `--repeats` rounds time one `fit` of
`--steps` steps per optimizer, the optimizers interleaved round by round in this
one process. Printed: median ms per step, images/s, and the Entropy-SGD / SGD
step-time ratio (median of the per-round ratios). Entropy-SGD runs with the
paper's inner loop (L = 20; a step is one gradient evaluation, inner or outer).

`--tiny` shrinks everything (All-CNN-BN on 8x8x3 inputs, batch 8, a few steps)
so that `tests/bench/test_gpu_smoke.py` keeps the script working without a GPU;
its numbers mean nothing. `--write` puts the table into BENCHMARKS.md (section
`gpu_smoke`, one row per model/device, older rows kept).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import control_opt  # noqa: E402
from bench.timing import synthetic_batches, timed_fit  # noqa: E402
from control_opt import models  # noqa: E402

SHAPES = {"allcnn_bn": ((32, 32, 3), 10), "lenet": ((28, 28, 1), 10), "mnistfc": ((28, 28, 1), 10)}
SKIP = 3  # steps of each fit left untimed (iterator start-up)

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "entropy_sgd": lambda: control_opt.EntropySGD(learning_rate=1.0, langevin_steps=20, gamma=0.03, l2=1e-3,
                                                  seed=0),
}


def make_fit(model_name, optimizer, shape, num_classes, batch, steps, jit):
    model = models.build(model_name, input_shape=shape, num_classes=num_classes, seed=0,
                         **({"authors_code": True} if model_name in ("allcnn_bn", "lenet") else {}))
    model.compile(optimizer=OPTIMIZERS[optimizer](),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    return timed_fit(model, synthetic_batches(shape, num_classes, batch, 8), steps, SKIP)


def device_name():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU ({os.cpu_count()} cores)"


def run(model_name="allcnn_bn", batch=128, steps=200, repeats=3, jit=False, shape=None):
    shape, num_classes = (tuple(shape) if shape else SHAPES[model_name][0]), SHAPES[model_name][1]
    fits = {name: make_fit(model_name, name, shape, num_classes, batch, steps, jit) for name in OPTIMIZERS}
    times = {name: [] for name in OPTIMIZERS}
    for _ in range(repeats):
        for name, timed in fits.items():
            times[name].append(timed())
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    ratio = float(np.median(np.array(times["entropy_sgd"]) / np.array(times["sgd"])))
    return dict(model=model_name, input_shape=list(shape), batch=batch, steps=steps, repeats=repeats, jit=jit,
                device=device_name(), ms_per_step=ms,
                images_per_s={name: batch / (m / 1e3) for name, m in ms.items()}, ratio=ratio,
                ratios=[float(r) for r in np.array(times["entropy_sgd"]) / np.array(times["sgd"])])


def markdown_row(result, command):
    return (f"| {result['model']} {tuple(result['input_shape'])} | {result['device']} | {result['batch']} | "
            f"{result['ms_per_step']['sgd']:.1f} | {result['ms_per_step']['entropy_sgd']:.1f} | "
            f"{result['images_per_s']['sgd']:.0f} | {result['images_per_s']['entropy_sgd']:.0f} | "
            f"{result['ratio']:.2f} ({', '.join(f'{r:.2f}' for r in result['ratios'])}) | `{command}` |")


HEADER = ("| model (input) | device | batch | SGD ms/step | Entropy-SGD ms/step | SGD images/s | "
          "Entropy-SGD images/s | step-time ratio: median (per round) | command |\n"
          "|---|---|---|---|---|---|---|---|---|")


def write(result, command, note):
    from bench.report import machine_line, section_rows, write_section  # pylint: disable=import-outside-toplevel

    rows = section_rows("gpu_smoke")
    key = f"| {result['model']} {tuple(result['input_shape'])} | {result['device']} |"
    rows = [r for r in rows if not r.startswith(key)] + [markdown_row(result, command)]
    md = ("## Paper networks: SGD vs Entropy-SGD step time (`bench/gpu_smoke.py`)\n\n"
          "Synthetic data of the network's input shape; each optimizer compiled and warmed up once, then "
          "interleaved timed fits in one process; a step is one gradient evaluation (Entropy-SGD with the "
          f"paper's L = 20 inner steps). {machine_line()} {note} No GPU was lent to the session that wrote "
          "the CPU row; on a GPU machine `python -m bench.gpu_smoke --write` adds the All-CNN-BN row "
          "(batch 128, 200 steps, 3 rounds).\n\n" + HEADER + "\n" + "\n".join(rows))
    write_section("gpu_smoke", md)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", default=None,
                        help="tiny sizes (default when no GPU is visible)")
    parser.add_argument("--full", dest="tiny", action="store_false", help="full sizes even without a GPU")
    parser.add_argument("--model", default="allcnn_bn", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--jit", action="store_true", help="jit_compile the training step")
    parser.add_argument("--write", action="store_true", help="write the row into BENCHMARKS.md")
    parser.add_argument("--note", default="", help="text written next to the table (e.g. machine load)")
    args = parser.parse_args()
    tiny = args.tiny if args.tiny is not None else not tf.config.list_physical_devices("GPU")
    if tiny:
        shape = (8, 8, 3) if args.model == "allcnn_bn" else None
        kwargs = dict(batch=args.batch or 8, steps=args.steps or 8, repeats=args.repeats or 2, shape=shape)
    else:
        kwargs = dict(batch=args.batch or 128, steps=args.steps or 200, repeats=args.repeats or 3)
    result = run(args.model, jit=args.jit, **kwargs)
    result["tiny"] = tiny
    print(json.dumps(result))
    print(f"{result['model']} {tuple(result['input_shape'])} batch {result['batch']} on {result['device']}"
          f"{' (tiny: numbers mean nothing)' if tiny else ''}: "
          + ", ".join(f"{n} {result['ms_per_step'][n]:.1f} ms/step = {result['images_per_s'][n]:.0f} images/s"
                      for n in OPTIMIZERS)
          + f"; Entropy-SGD / SGD step time {result['ratio']:.2f}", flush=True)
    if args.write:
        if tiny:
            raise SystemExit("--write refuses tiny results")
        import sys  # pylint: disable=import-outside-toplevel
        command = " ".join(a for a in sys.argv[1:] if not a.startswith("--note"))
        write(result, f"python -m bench.gpu_smoke {command}", args.note)


if __name__ == "__main__":
    main()
