"""MNIST-1D test accuracy of Parle's default rule against the authors' code (`authors_code=True`).

    python -m bench.bench_parle_accuracy [--replicas 2] [--seeds 3] [--epochs 30] [--langevin_steps 25]
                                         [--write]

The runner (`experiments.train`, the MNIST-1D CNN, global batch 100 split over
n logical CPU devices, Parle's registered defaults otherwise) trains Parle
with `authors_code=False` (the library's rule: the five departures of
`bench/bench_parle_departures.py` all on) and `authors_code=True` (the step of
the authors' `parle_mpi.py`), same seeds, same data, for `--epochs` effective
epochs. Reported: the final test accuracy at the center per seed, their mean
and sample standard deviation, and the paired difference (default minus code)
per seed. The optimizer switches the five departures together, so their
effect is measured together, not one by one.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from bench.cli import argv_value  # noqa: E402

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * int(argv_value("replicas", "2")))

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from experiments import train  # noqa: E402
from experiments.training.rundir import RunDir  # noqa: E402


def run(authors_code, seed, args, root):
    overrides = dict(optimizer="parle", seed=seed, epochs=args.epochs, batch_size=100, verbose=0,
                     strategy="mirrored" if args.replicas > 1 else "default", replicas=args.replicas,
                     langevin_steps=args.langevin_steps, authors_code=authors_code)
    workdir = os.path.join(root, f"parle-{authors_code}-s{seed}")
    t0 = time.perf_counter()
    train.train_and_evaluate(train.config_from_dict(overrides), workdir)
    accuracies = [row["test_accuracy"] for row in RunDir(workdir).read_metrics()]
    return accuracies, time.perf_counter() - t0


def spread(values):
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--langevin_steps", type=int, default=25)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    results = {False: [], True: []}  # authors_code -> [(final accuracy, seconds, curve)]
    with tempfile.TemporaryDirectory() as root:
        for seed in range(args.seeds):
            for authors_code in (False, True):
                curve, seconds = run(authors_code, seed, args, root)
                results[authors_code].append((curve[-1], seconds, curve))
                print(f"seed {seed} authors_code={authors_code}: {curve[-1]:.4f} ({seconds:.0f} s)", flush=True)
    rows = []
    for authors_code, label in ((False, "default (five departures)"), (True, "authors_code=True")):
        finals = [final for final, *_ in results[authors_code]]
        rows.append([label, " / ".join(f"{a:.4f}" for a in finals), f"{statistics.mean(finals):.4f}",
                     f"{spread(finals):.4f}"])
    differences = [a[0] - b[0] for a, b in zip(results[False], results[True])]
    rows.append(["paired difference (default - code)", " / ".join(f"{d:+.4f}" for d in differences),
                 f"{statistics.mean(differences):+.4f}", f"{spread(differences):.4f}"])
    table = markdown_table(["Parle rule", "final test accuracy per seed", "mean", "sample std"], rows)
    curves = "\n".join(f"- authors_code={code}: " + "; ".join(" ".join(f"{a:.2f}" for a in e[2])
                                                              for e in results[code]) for code in (False, True))
    command = "python -m bench.bench_parle_accuracy " + " ".join(sys.argv[1:])
    text = ("## Parle: the default rule against the authors' code on MNIST-1D (`bench/bench_parle_accuracy.py`)\n\n"
            f"Command: `{command}`. {machine_line()} MNIST-1D CNN (`experiments.train` defaults), global batch 100 "
            f"over {args.replicas} logical CPU devices, Parle's registered defaults (L = {args.langevin_steps}, "
            f"lr 0.1, rho 0.5, gamma 0.01, scoping 1e-3), {args.epochs} effective epochs, seeds 0..{args.seeds - 1}; "
            "test accuracy at the center. The five departures are switched together (`authors_code`).\n\n"
            f"{table}\n\nTest accuracy per effective epoch (seeds separated by ';'):\n\n{curves}\n")
    print(text)
    if args.write:
        write_section("parle_accuracy", text)


if __name__ == "__main__":
    main()
