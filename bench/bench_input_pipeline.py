"""Does the CIFAR input pipeline keep up with training? Images/s of whitening, of the runner's
tf.data path (order + Wide-ResNet crop/flip), and of All-CNN-BN's training step, on CPU.

    python -m bench.bench_input_pipeline [--n 10000] [--batch 128] [--train-steps 6] [--repeats 3] [--no-write]

Synthetic uint8 CIFAR-shaped images (N x 32 x 32 x 3, N = --n; 50,000 is the real
training set, the default is smaller to keep the run short on a shared machine)
go through what `datasets.load("cifar10", preprocess="zca")` and the runner do:

1. ZCA whitening, once per data set (the loader caches it): `whitening.zca_fit`
   (per-image standardized, float64 covariance, eigh) and `zca_apply`;
2. one effective epoch of `experiments.training.data.train_batches` at batch
   `--batch`, without and with `augment` (reflect pad 4, random crop, flip),
   iterated to the end; and `control_opt.datasets.make_pipeline` with augmentation;
3. a whitening done *per batch* instead (uint8 -> standardize -> (x - m) W in
   float32 inside tf.data), to see what moving it onto the fly would cost;
4. All-CNN-BN (authors' geometry, 1.67 M weights) trained with SGD at batch
   `--batch`, timed on constant in-memory batches and on the augmented
   `train_batches` stream, interleaved round by round in this process.

The pipeline keeps up if its images/s exceed the training step's images/s; the
last ratio (training fed by the pipeline / training on constant batches) says
whether feeding it costs anything in practice (tf.data prefetches in parallel
with the step; on 2 cores they compete for the same cores).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from bench.timing import StepTimer  # noqa: E402
from control_opt import models  # noqa: E402
from control_opt.datasets import make_pipeline, whitening  # noqa: E402
from experiments.training.data import train_batches  # noqa: E402


def images_per_s(dataset, batch):
    """Iterates `dataset` to the end; (images/s, images)."""
    start, images = time.perf_counter(), 0
    for xb, _ in dataset:
        images += int(xb.shape[0])
    return images / (time.perf_counter() - start), images


def on_the_fly_whitening(x_uint8, y, mean, matrix, batch):
    """Per-batch ZCA in float32 inside tf.data: what the loader does once, done every epoch."""
    m, w = tf.constant(mean, tf.float32), tf.constant(matrix, tf.float32)

    def whiten(xb, yb):
        flat = tf.reshape(tf.cast(xb, tf.float32), (tf.shape(xb)[0], -1))
        mu = tf.reduce_mean(flat, axis=1, keepdims=True)
        sd = tf.math.reduce_std(flat, axis=1, keepdims=True)
        flat = (flat - mu) / tf.maximum(sd, 1e-8)
        return tf.reshape((flat - m) @ w, tf.shape(xb)), yb

    data = tf.data.Dataset.from_tensor_slices((x_uint8, y)).batch(batch)
    return data.map(whiten, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def training_images_per_s(x_white, y, batch, steps, repeats, skip=2):
    """All-CNN-BN + SGD: median images/s on constant batches and on the augmented runner stream."""
    model = models.build("allcnn_bn", input_shape=(32, 32, 3), num_classes=10, seed=0, authors_code=True)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    constant = tf.data.Dataset.from_tensors((tf.constant(x_white[:batch]), tf.constant(y[:batch]))).repeat()
    epochs_needed = -(-(steps + skip + 1) // (len(x_white) // batch))
    model.fit(constant, steps_per_epoch=skip + 1, epochs=1, verbose=0)  # trace and build
    times = {"constant": [], "pipeline": []}
    for _ in range(repeats):
        for name, data in (("constant", constant), ("pipeline", train_batches(
                x_white, y, seed=1, batch_size=batch, initial_epoch=0, epochs=epochs_needed, augment=True))):
            timer = StepTimer(skip)
            model.fit(data, steps_per_epoch=steps + skip, epochs=1, verbose=0, callbacks=[timer])
            times[name].append((timer.end - timer.start) / steps)
    return {name: batch / float(np.median(t)) for name, t in times.items()}, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="images (50000 = the real CIFAR-10 training set)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x_uint8 = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, args.n).astype(np.int64)
    rows = []

    start = time.perf_counter()
    mean, matrix = whitening.zca_fit(x_uint8, standardize=True)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    x_white = whitening.zca_apply(x_uint8, mean, matrix, standardize=True)
    apply_s = time.perf_counter() - start
    rows.append(["ZCA fit (once per data set, cached on disk)", f"{args.n / fit_s:,.0f}", f"{fit_s:.1f} s"])
    rows.append(["ZCA apply (once per load)", f"{args.n / apply_s:,.0f}", f"{apply_s:.1f} s"])
    print(rows[-2], rows[-1], flush=True)

    batch = args.batch
    pipelines = [
        ("runner `train_batches`, no augmentation", lambda: train_batches(
            x_white, y, seed=0, batch_size=batch, initial_epoch=0, epochs=1)),
        ("runner `train_batches`, augment (crop + flip)", lambda: train_batches(
            x_white, y, seed=0, batch_size=batch, initial_epoch=0, epochs=1, augment=True)),
        ("`datasets.make_pipeline`, augment", lambda: make_pipeline(
            x_white, y, batch_size=batch, seed=0, augment=True, drop_remainder=True)),
        ("per-batch ZCA on the fly (uint8 in), no augmentation", lambda: on_the_fly_whitening(
            x_uint8, y, mean, matrix, batch)),
    ]
    pipeline_rates = {}
    for name, make in pipelines:
        images_per_s(make().take(2), batch)  # graph building, thread pools
        rates = [images_per_s(make(), batch)[0] for _ in range(2)]
        pipeline_rates[name] = float(np.median(rates))
        rows.append([name + " (one epoch)", f"{pipeline_rates[name]:,.0f}", "per epoch: "
                     f"{args.n / pipeline_rates[name]:.1f} s"])
        print(rows[-1], flush=True)

    train_rates, times = training_images_per_s(x_white, y, batch, args.train_steps, args.repeats)
    rows.append([f"All-CNN-BN + SGD training step, batch {batch}, constant batches",
                 f"{train_rates['constant']:,.0f}", f"{1e3 * batch / train_rates['constant']:.0f} ms / step"])
    rows.append(["All-CNN-BN + SGD training step, fed by augmented `train_batches`",
                 f"{train_rates['pipeline']:,.0f}", f"{1e3 * batch / train_rates['pipeline']:.0f} ms / step"])
    print(rows[-2], rows[-1], flush=True)
    augmented = pipeline_rates["runner `train_batches`, augment (crop + flip)"]
    per_round = np.array(times["pipeline"]) / np.array(times["constant"])
    fed_ratio = float(np.median(per_round))
    print("per-round ratios (pipeline / constant):", np.round(per_round, 2).tolist(), flush=True)
    verdict = (f"The augmented runner pipeline delivers {augmented:,.0f} images/s, "
               f"{augmented / train_rates['constant']:.0f}x what the All-CNN-BN training step consumes "
               f"({train_rates['constant']:,.0f} images/s): it keeps up. Step time fed by the pipeline / on "
               f"constant batches: {fed_ratio:.2f} (median of the per-round ratios "
               f"{', '.join(f'{r:.2f}' for r in per_round)}).")
    print(verdict)
    size_note = ("the real training-set size" if args.n == 50000
                 else "smaller than the real 50,000, to keep the run short")
    md = (f"## CIFAR input pipeline vs the training step (`bench/bench_input_pipeline.py`)\n\n"
          f"Command: `python -m bench.bench_input_pipeline --n {args.n} --batch {batch} --train-steps "
          f"{args.train_steps} --repeats {args.repeats}`. {machine_line()} Synthetic uint8 images "
          f"{args.n} x 32 x 32 x 3 ({size_note}); "
          f"TensorFlow on CPU only. {args.note}\n\n"
          + markdown_table(["stage", "images / s", "time"], rows) + "\n\n" + verdict + "\n")
    if not args.no_write:
        write_section("input_pipeline", md)
    print(md)


if __name__ == "__main__":
    main()
