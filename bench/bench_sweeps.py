"""The comparison protocol over every optimizer: one sweep each (experiments/sweep.py), the same budget.

    python -m bench.bench_sweeps --dir sweeps --trials 16 --epochs 150 --heldout_seeds 0,1,2,3,4 --run [--write]

With `--run`, runs (or resumes) `python -m experiments.sweep --optimizer=NAME --trials=T --epochs=E
--heldout_seeds=... --workdir=DIR/NAME` for each optimizer in turn, one process each (Elastic-SGD and
Parle on 2 replicas, which fixes TensorFlow's logical devices for the process); without it, only
reads DIR/NAME/sweep.json and the held-out runs' metrics.csv. Then reports, per optimizer:

* the best trial's values and its held-out seeds' final test accuracy: mean, standard error, worst;
* effective epochs to reach SGD's final accuracy (the mean over SGD's held-out seeds): per held-out
  seed, the first effective epoch whose test accuracy reaches it ("-" if never), their median;
* a figure (DIR/accuracy_vs_epochs.png): test accuracy against effective epochs, the mean and a
  band from the worst to the best held-out seed per optimizer;
* what the default rule (`experiments.training.sweeps.default_rule`, which weighs the worst seed)
  makes of each sweep: adopt its best configuration as the experiment's default, or keep the default.

With `--write`, the tables go to BENCHMARKS.md's `sweeps` section and the figure to bench/results/.
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from bench.report import machine_line, markdown_table, write_section

OPTIMIZERS = ("sgd", "adam", "entropy_sgd", "entropy_adam", "hopf_lax", "elastic_sgd", "parle")
LABELS = {"sgd": "SGD (Nesterov)", "adam": "Adam", "entropy_sgd": "Entropy-SGD", "entropy_adam": "Entropy-Adam",
          "hopf_lax": "HopfLaxSGD", "elastic_sgd": "Elastic-SGD (2 replicas)", "parle": "Parle (2 replicas)"}
FIGURE = "accuracy_vs_epochs.png"


def test_curve(run_dir):
    """[(effective epoch, test accuracy)] of one runner workdir."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [(int(r["epoch"]), float(r["test_accuracy"])) for r in csv.DictReader(f)]


def epochs_to_reach(curve, target):
    """The first effective epoch whose test accuracy is at least `target`, else None."""
    return next((epoch for epoch, accuracy in curve if accuracy >= target), None)


def read_sweep(directory):
    with open(os.path.join(directory, "sweep.json")) as f:
        summary = json.load(f)
    if not summary.get("heldout"):
        return summary, {}
    curves = {seed: test_curve(os.path.join(directory, "heldout", f"seed_{seed}"))
              for seed in summary["heldout"]["test_accuracy"]}
    return summary, curves


def runs_wall_time(directory):
    """Sum of the runner runs' wall times (summary.json) under a sweep directory, in seconds."""
    total = 0.0
    for root, _, files in os.walk(directory):
        if "summary.json" in files:
            with open(os.path.join(root, "summary.json")) as f:
                total += float(json.load(f).get("wall_time_s") or 0.0)
    return total


def _fmt_params(params):
    return ", ".join(f"{k} {v:.3g}" for k, v in params.items())


def space_table():
    """The search spaces (experiments/training/search_spaces.py) as a markdown table."""
    from experiments.training import search_spaces  # pylint: disable=import-outside-toplevel
    rows = [(LABELS[name], ", ".join(f"{d.name} [{d.low:g}, {d.high:g}]" for d in search_spaces.search_space(name)))
            for name in OPTIMIZERS]
    return markdown_table(("optimizer", "searched, log-uniform (everything else: the experiment's default)"), rows)


def tables(results):
    """(results table, effective-epochs table) in markdown from {optimizer: (summary, curves)}."""
    rows, epoch_rows = [], []
    target = results["sgd"][0]["heldout"]["mean"] if "sgd" in results else None
    for name, (summary, curves) in results.items():
        held = summary["heldout"]
        complete = sum(t["state"] == "COMPLETE" for t in summary["trials"])
        rows.append((LABELS[name], complete, f"{summary['wall_s']:.0f}", _fmt_params(held["params"]),
                     f"{100 * held['mean']:.1f} +- {100 * held['se']:.1f}", f"{100 * held['worst']:.1f}",
                     ", ".join(f"{100 * a:.1f}" for a in held["test_accuracy"].values())))
        if target is not None:
            reached = [epochs_to_reach(curve, target) for curve in curves.values()]
            hits = [e for e in reached if e is not None]
            epoch_rows.append((LABELS[name], ", ".join("-" if e is None else str(e) for e in reached),
                               f"{statistics.median(hits):g}" if len(hits) == len(reached) else
                               f"reached by {len(hits)} of {len(reached)}"))
    results_table = markdown_table(("optimizer", "trials", "runs' wall time, s (sum)", "best trial (tuning seed)", "held-out test accuracy %, "
                                    "mean +- SE", "worst seed", "per seed"), rows)
    epochs_table = None if target is None else (
        f"Target: SGD's mean final held-out test accuracy, {100 * target:.1f}%.\n\n" +
        markdown_table(("optimizer", "effective epochs to the target, per held-out seed", "median"), epoch_rows))
    return results_table, epochs_table


def rule_table(results):
    """The default rule applied to each optimizer's sweep, as a markdown table."""
    from experiments.training import sweeps  # pylint: disable=import-outside-toplevel
    from experiments.training.config import default_config  # pylint: disable=import-outside-toplevel

    epochs = default_config().epochs
    rows = []
    for name, (summary, _) in results.items():
        outcome = sweeps.default_rule(summary, experiment_epochs=epochs)
        rows.append((LABELS[name], "adopt the best trial" if outcome["adopt"] else "keep the default",
                     outcome["reason"]))
    return markdown_table(("optimizer", "decision", "why"), rows)


def figure(results, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (_, curves) in results.items():
        epochs = [e for e, _ in next(iter(curves.values()))]
        acc = np.array([[a for _, a in curve] for curve in curves.values()])
        line, = ax.plot(epochs, acc.mean(axis=0), label=LABELS[name])
        ax.fill_between(epochs, acc.min(axis=0), acc.max(axis=0), color=line.get_color(), alpha=0.2)
    if "sgd" in results:
        ax.axhline(results["sgd"][0]["heldout"]["mean"], color="k", lw=0.8, ls="--", label="SGD's final (target)")
    ax.set_xlabel("effective epochs (gradient evaluations / steps per epoch)")
    ax.set_ylabel("test accuracy (held-out seeds)")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="one sweep directory per optimizer under it")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--heldout_seeds", default="0,1,2,3,4")
    parser.add_argument("--run", action="store_true", help="run or resume the sweeps first")
    parser.add_argument("--note", default="", help="a paragraph printed under the budget (how it was run)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    names = args.optimizers.split(",")
    walls = {}
    if args.run:
        for name in names:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "experiments.sweep", f"--optimizer={name}", f"--trials={args.trials}",
                            f"--epochs={args.epochs}", f"--heldout_seeds={args.heldout_seeds}",
                            f"--workdir={os.path.join(args.dir, name)}"], check=True)
            walls[name] = time.perf_counter() - start
            print(f"{name}: sweep took {walls[name]:.0f} s", flush=True)
    results = {name: read_sweep(os.path.join(args.dir, name)) for name in names
               if os.path.exists(os.path.join(args.dir, name, "sweep.json"))}
    results = {name: r for name, r in results.items() if r[0].get("heldout")}
    for name, (summary, _) in results.items():
        summary["wall_s"] = runs_wall_time(os.path.join(args.dir, name))
    results_table, epochs_table = tables(results)
    figure(results, os.path.join(args.dir, FIGURE))
    name0, (summary0, _) = next(iter(results.items()))
    any_summary = summary0["sweep"]
    with open(os.path.join(args.dir, name0, "heldout", f"seed_{next(iter(summary0['heldout']['test_accuracy']))}",
                           "summary.json")) as f:
        evaluations = json.load(f)["gradient_evaluations"]
    heldout = [s for s in args.heldout_seeds.split(",") if s]
    reduced = args.trials < 16 or args.epochs < 150 or len(heldout) < 5
    text = ("## Sweeps: every optimizer tuned with the same budget (MNIST-1D CNN)\n\n" +
            (f"**Reduced budget**: {args.trials} trials of {args.epochs} effective epochs and {len(heldout)} held-out "
             "seeds, against the protocol's 16 trials of 150 epochs and 5 held-out seeds; it favours the methods "
             "that start fast and does not rank the optimizers at the default experiment's budget.\n\n"
             if reduced else "") + (f"{args.note}\n\n" if args.note else "") +
            f"`python -m bench.bench_sweeps --dir {args.dir} --trials {args.trials} --epochs {args.epochs} "
            f"--heldout_seeds {args.heldout_seeds} --run --write`: each optimizer {args.trials} trials of "
            f"{args.epochs} effective epochs ({evaluations} gradient evaluations of batch 100 per run) on tuning "
            f"seed(s) {any_summary['tuning_seeds']}, the best rerun on held-out seeds {args.heldout_seeds}. "
            f"{machine_line()}\n\nSearch spaces (every trial's outer rate drops x0.1 at half the epochs):\n\n"
            f"{space_table()}\n\nHeld-out results of the best trial (value: its tuning seed's final test "
            f"accuracy):\n\n{results_table}\n")
    if epochs_table:
        text += f"\n{epochs_table}\n\n![test accuracy against effective epochs](bench/results/{FIGURE})\n"
    text += ("\nThe default rule (`experiments.training.sweeps.default_rule`: the best trial by its worst tuning "
             "seed replaces the experiment's default only if the sweep ran at the experiment's budget and, on the "
             "same held-out seeds, its worst seed beats the default's with a mean no lower by more than its SE):"
             f"\n\n{rule_table(results)}\n")
    print(text)
    if args.write:
        shutil.copyfile(os.path.join(args.dir, FIGURE), os.path.join(os.path.dirname(__file__), "results", FIGURE))
        write_section("sweeps", text)


if __name__ == "__main__":
    main()
