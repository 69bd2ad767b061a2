"""Effective epochs of Parle and Elastic-SGD to reach data-parallel SGD's final MNIST-1D test accuracy.

    python -m bench.bench_parle_epochs [--replicas 1,2,4] [--seeds 3] [--epochs 20] [--langevin_steps 25]
                                       [--max_train_examples N] [--write]

For each n in `--replicas` (n logical CPU devices, configured before TensorFlow
starts; GPUs hidden) and each seed, the runner (`experiments.train`, the
MNIST-1D CNN, global batch 100 split over the replicas, its registered
defaults otherwise) trains data-parallel SGD (`--optimizer=sgd`, Nesterov 0.9,
one gradient all-reduce per step), Elastic-SGD and Parle (`--langevin_steps`,
each replica its own weights, the test accuracy at the center) for `--epochs`
effective epochs (gradient evaluations / steps per epoch, the same for all).
The target of (n, seed) is SGD's final test accuracy; a method's number is the
first effective epoch whose test accuracy reaches it ("not reached" past
`--epochs`). n = 1 is one replica: Elastic-SGD is then SGD and Parle
Entropy-SGD with Parle's schedule. With `--write`, the table goes to its
section of BENCHMARKS.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


from bench.cli import argv_value  # noqa: E402

import tensorflow as tf  # noqa: E402

# One process per number of replicas (`--child`): TensorFlow's collectives refuse a second
# MirroredStrategy of another size in the same process, and logical devices are fixed at start.
_MAX_N = max(int(n) for n in argv_value("replicas", "1,2,4").split(","))
if argv_value("child", None) is not None:
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * _MAX_N)

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from experiments import train  # noqa: E402
from experiments.training.rundir import RunDir  # noqa: E402

METHODS = ("sgd", "elastic_sgd", "parle")
LABELS = {"sgd": "data-parallel SGD", "elastic_sgd": "Elastic-SGD", "parle": "Parle"}


def run(method, n, seed, args, root):
    overrides = dict(optimizer=method, seed=seed, epochs=args.epochs, batch_size=100, verbose=0,
                     strategy="mirrored" if n > 1 else "default", replicas=n,
                     max_train_examples=args.max_train_examples)
    if method == "parle":
        overrides["langevin_steps"] = args.langevin_steps
    workdir = os.path.join(root, f"{method}-n{n}-s{seed}")
    t0 = time.perf_counter()
    train.train_and_evaluate(train.config_from_dict(overrides), workdir)
    accuracies = [row["test_accuracy"] for row in RunDir(workdir).read_metrics()]
    return accuracies, time.perf_counter() - t0


def first_reaching(accuracies, target):
    return next((e + 1 for e, a in enumerate(accuracies) if a >= target - 1e-9), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--langevin_steps", type=int, default=25)  # Parle's default L
    parser.add_argument("--max_train_examples", type=int, default=None)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # JSON path: one n, this process
    args = parser.parse_args()
    replicas = [int(n) for n in args.replicas.split(",")]
    if args.child is not None:
        (n,) = replicas
        results = {}  # method -> [(epochs to target or None, final accuracy, target, seconds, accuracies)]
        with tempfile.TemporaryDirectory() as root:
            for seed in range(args.seeds):
                sgd, seconds = run("sgd", n, seed, args, root)
                target = sgd[-1]
                results.setdefault("sgd", []).append((first_reaching(sgd, target), sgd[-1], target, seconds, sgd))
                for method in METHODS[1:]:
                    accuracies, seconds = run(method, n, seed, args, root)
                    results.setdefault(method, []).append(
                        (first_reaching(accuracies, target), accuracies[-1], target, seconds, accuracies))
                print({k: v[-1][:4] for k, v in results.items()}, flush=True)
        with open(args.child, "w") as f:
            json.dump(results, f)
        return
    results = {}  # (method, n) -> [(epochs to target or None, final accuracy, target, seconds, accuracies)]
    with tempfile.TemporaryDirectory() as root:
        for n in replicas:
            path = os.path.join(root, f"n{n}.json")
            argv = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--replicas") and not a == "--write"
                    and not (i > 0 and sys.argv[i] == "--replicas")]
            subprocess.run([sys.executable, "-m", "bench.bench_parle_epochs", *argv, f"--replicas={n}",
                            f"--child={path}"], check=True)
            with open(path) as f:
                for method, entries in json.load(f).items():
                    results[(method, n)] = entries

    def cell(entries):
        reached = [e for e, *_ in entries if e is not None]
        text = "/".join(str(e) if e is not None else "-" for e, *_ in entries)
        median = f"{statistics.median(reached):g}" if len(reached) == len(entries) else "not reached by all"
        return f"{median} ({text})"

    rows = []
    for n in replicas:
        for method in METHODS:
            entries = results[(method, n)]
            rows.append([n, LABELS[method], cell(entries),
                         f"{statistics.mean(e[1] for e in entries):.3f}",
                         f"{statistics.mean(e[2] for e in entries):.3f}",
                         f"{statistics.mean(e[3] for e in entries):.0f}"])
    table = markdown_table(["replicas n", "method", "effective epochs to SGD's final test accuracy: median (per seed)",
                            "final test accuracy (mean)", "target (SGD final, mean)", "wall s per run"], rows)
    command = "python -m bench.bench_parle_epochs " + " ".join(sys.argv[1:])
    curves = "\n".join(f"- n = {n}, {LABELS[m]}: " + "; ".join(
        " ".join(f"{a:.2f}" for a in e[4]) for e in results[(m, n)]) for n in replicas for m in METHODS)
    text = (f"## Effective epochs to data-parallel SGD's accuracy: Parle, Elastic-SGD "
            f"(`bench/bench_parle_epochs.py`)\n\n"
            f"Command: `{command}`. {machine_line()} MNIST-1D CNN (`experiments.train` defaults: 4000 training "
            f"examples unless `--max_train_examples`), global batch 100 split over n logical CPU devices "
            f"(one shared physical CPU: epochs, not seconds, are the measure), {args.epochs} effective epochs, "
            f"{args.seeds} seed(s) per (n, method), Parle with L = {args.langevin_steps}, the registered "
            f"defaults otherwise (SGD and Elastic-SGD lr 0.1 Nesterov 0.9; Elastic-SGD rho 0.1, tau 1; Parle "
            f"rho 0.5, gamma 0.01, scoping 1e-3). Target per (n, seed): SGD's final test accuracy (so SGD's "
            f"own entry is the first epoch at which it already reached its final value); '-' = not reached "
            f"within {args.epochs} epochs. Test accuracy of Elastic-SGD and Parle at the center. One process per n "
            f"(TensorFlow refuses collectives of another size in one process). Wall seconds: on a machine "
            f"shared with other jobs, indicative only.\n\n{table}\n\n"
            f"Test accuracy per effective epoch (seeds separated by ';'):\n\n{curves}\n")
    print(text)
    if args.write:
        write_section("parle_epochs", text)


if __name__ == "__main__":
    main()
