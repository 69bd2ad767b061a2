"""The default experiment end to end: Entropy-SGD against Keras SGD, whole run and training only.

    python -m bench.bench_default_run [--repeats 9] [--seeds 0,1,2] [--epochs 150] [--authors_code PATH]

The contenders alternate in rounds (`bench.timing.interleave`: every
contender once per round, the order rotated from round to round: sgd,
entropy_sgd; entropy_sgd, sgd; ...), each run in a fresh Python process (so
each has its own peak RSS and nothing is warm from the other); round r runs
seed `seeds[r % len(seeds)]` for both, so 9 rounds over seeds 0,1,2 give each
seed's test accuracy three times (they must agree: reproducibility) and the
timings are pooled over the seeds. A process does, for its optimizer,
with the default config (`python -m experiments.train`; `--optimizer=sgd`:
Nesterov 0.9, lr 0.1 dropped to 0.01 at epoch 75), the same number of
gradient evaluations:

1. the whole run, `experiments.training.train_and_evaluate` into a temporary
   workdir: data, network, every effective epoch's test evaluation, anchor
   swaps, metrics.csv, TensorBoard and checkpoint, curves.png and summary.json.
   Its `time_breakdown` (`experiments/training/phases.py`) gives the per-epoch
   overhead table; the peak RSS of the process is read after it
   (`resource.getrusage(RUSAGE_SELF).ru_maxrss`: TensorFlow, data and run);
2. training only, `experiments.training.run.train_only`: the same training (same
   data order, network, optimizer, compile settings), one `fit`, nothing per
   epoch. Its test accuracy, evaluated once afterwards, must equal the whole
   run's final one (the check that the same training ran).

ms per gradient evaluation = wall time / gradient evaluations. Each figure is
median [min - max] over the rounds; the ratio Entropy-SGD / SGD is the median
[min - max] of the per-round ratios (`bench.timing.paired_ratio`: "n/a (1 run)"
from a single round); a table goes to BENCHMARKS.md only from at least
`bench.timing.MIN_REPEATS` (9) rounds (`--no-write` to try fewer).

The authors' PyTorch Entropy-SGD runs only if `torch` is importable and
`--authors_code` names a script of the user's (e.g. their checkout's train.py
adapted to MNIST-1D and this budget) that prints a line
`ms_per_gradient_evaluation=X` (training only); it then joins the alternation.
Otherwise a row says it was skipped and why. Nothing of the authors' code is
part of this project.

Writes its section of BENCHMARKS.md (`--no-write`: print only).
"""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import timing  # noqa: E402
from bench.report import machine_line, markdown_table, write_section  # noqa: E402

CONTENDERS = ("sgd", "entropy_sgd")
_RESULT = "BENCH_RESULT "
_PHASE_LABELS = dict(
    train_steps="training steps", evaluation="test evaluation", anchor_swap="anchor swaps",
    metrics_csv="metrics.csv", tensorboard="TensorBoard", checkpoint="checkpoint (every {k} epochs)",
    fit_loop="Keras' fit loop (callbacks, metric reads)", startup="startup (data, network; once)",
    finish="curves.png, summary (once)")


# ------------------------------------------------------------------ one contender, in its own process


def _child(optimizer, epochs, seed, checkpoint_every):  # pylint: disable=too-many-locals
    """Runs one contender (whole run, then training only) and prints its results as one JSON line."""
    import resource  # pylint: disable=import-outside-toplevel

    from experiments.training import config_from_dict, run  # pylint: disable=import-outside-toplevel

    overrides = dict(optimizer=optimizer, epochs=epochs, seed=seed, verbose=0)
    if checkpoint_every is not None:
        overrides["checkpoint_every"] = checkpoint_every
    config = config_from_dict(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run.train_and_evaluate(config, os.path.join(tmp, "run"))
        whole_s = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    only = run.train_only(config)
    breakdown = summary["time_breakdown"]
    print(_RESULT + json.dumps(dict(
        optimizer=optimizer, seed=seed, gradient_evaluations=summary["gradient_evaluations"], whole_s=whole_s,
        fit_s=sum(p["s"] for name, p in breakdown["phases"].items() if name not in ("startup", "finish")),
        phases_ms_per_epoch={name: p["ms_per_epoch"] for name, p in breakdown["phases"].items()},
        checkpoints=breakdown["phases"].get("checkpoint", {}).get("calls", 0),
        accuracy=summary["final_test_accuracy"], loss=summary["final_test_loss"],
        train_only_s=only["fit_s"], train_only_steady_s=sum(only["epoch_s"][1:]),
        train_only_accuracy=only["final_test_accuracy"], train_only_loss=only["final_test_loss"],
        peak_rss_mb=peak_rss_mb, checkpoint_every=config.checkpoint_every)), flush=True)


def _authors_child(path):
    """The user's script for the authors' code; its `ms_per_gradient_evaluation=X` line."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, path], capture_output=True, text=True, check=True).stdout
    found = re.findall(r"ms_per_gradient_evaluation=([0-9.eE+-]+)", out)
    if not found:
        raise RuntimeError(f"{path} printed no ms_per_gradient_evaluation=X line")
    return dict(optimizer="authors", train_only_ms=float(found[-1]), whole_s=time.perf_counter() - start)


def _run_child(optimizer, seed, args):
    command = [sys.executable, "-m", "bench.bench_default_run", "--child", optimizer, "--epochs", str(args.epochs),
               "--seeds", str(seed)]
    if args.checkpoint_every is not None:
        command += ["--checkpoint_every", str(args.checkpoint_every)]
    out = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    lines = [line for line in out.stdout.splitlines() if line.startswith(_RESULT)]
    if out.returncode or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len(_RESULT):])


# ------------------------------------------------------------------ statistics (bench/timing.py's harness)


def spread(values, digits=2):
    """"median [min - max]" of `values` (`bench.timing.Spread`)."""
    return timing.Spread(tuple(values)).text(digits=digits)


def ratio(numerators, denominators, digits=2):
    """The median [min - max] of the per-round ratios (`bench.timing.paired_ratio`); "n/a (1 run)"
    where the harness refuses a ratio of single runs."""
    try:
        return timing.paired_ratio(timing.Spread(tuple(numerators)), timing.Spread(tuple(denominators))).text(digits)
    except ValueError:
        return f"n/a ({len(numerators)} run)"


def _authors_status(path):
    if importlib.util.find_spec("torch") is None:
        return None, ("skipped: `torch` is not importable here (it is not a dependency of this project), so the "
                      "authors' PyTorch Entropy-SGD was not run; issue 12 quotes 2.4-3.1 ms per gradient "
                      "evaluation (training only) for it, measured elsewhere, not comparable with this machine")
    if not path:
        return None, ("skipped: `torch` is importable but no --authors_code=PATH (the user's script running the "
                      "authors' code on this budget) was given")
    if not os.path.exists(path):
        return None, f"skipped: --authors_code {path} does not exist"
    return path, None


# ------------------------------------------------------------------ the benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=timing.MIN_REPEATS,
                        help=f"rounds, each running every contender once (a table needs {timing.MIN_REPEATS})")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seeds", default="0,1,2", help="round r runs seed number r mod len(seeds)")
    parser.add_argument("--checkpoint_every", type=int, default=None, help="default: the config's")
    parser.add_argument("--authors_code", default=None,
                        help="a script of yours running the authors' PyTorch code on this budget; it must print "
                             "ms_per_gradient_evaluation=X (used only if torch is importable)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.seed_list = [int(seed) for seed in args.seeds.split(",")]
    if args.child:
        _child(args.child, args.epochs, args.seed_list[0], args.checkpoint_every)
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    timing.require_repeats(args.repeats, writing=not args.no_write)

    authors_path, authors_skipped = _authors_status(args.authors_code)
    if authors_skipped:
        print(f"authors' PyTorch code: {authors_skipped}", flush=True)
    results = {name: [] for name in CONTENDERS + (("authors",) if authors_path else ())}

    def contender(name):
        def run_once():  # the k-th call of a contender is in round k: its seed
            seed = args.seed_list[len(results[name]) % len(args.seed_list)]
            result = _authors_child(authors_path) if name == "authors" else _run_child(name, seed, args)
            results[name].append(result)
            if name != "authors":
                print(f"round {len(results[name])}/{args.repeats} {name} seed {seed}: whole run "
                      f"{result['whole_s']:.1f} s, training only {result['train_only_s']:.1f} s, test accuracy "
                      f"{result['accuracy']:.4f} (training only: {result['train_only_accuracy']:.4f}), peak RSS "
                      f"{result['peak_rss_mb']:.0f} MB", flush=True)
            return result["whole_s"]
        return run_once

    start = time.perf_counter()
    timing.interleave({name: contender(name) for name in results}, args.repeats)
    total_min = (time.perf_counter() - start) / 60
    md = _markdown(args, results, authors_skipped, total_min)
    if not args.no_write:
        write_section("default_run", md)
    print(md)


def _ms(results, key):
    return [1000.0 * r[key] / r["gradient_evaluations"] for r in results]


def _markdown(args, results, authors_skipped, total_min):
    sgd, esgd = results["sgd"], results["entropy_sgd"]
    ge = esgd[0]["gradient_evaluations"]
    steady_ge = ge - ge // args.epochs
    for r in sgd + esgd:  # None with one epoch: there is no epoch 2
        r["train_only_steady_ms"] = 1000.0 * r["train_only_steady_s"] / steady_ge if steady_ge else None
    same = all(r["accuracy"] == r["train_only_accuracy"] and r["loss"] == r["train_only_loss"] for r in sgd + esgd)
    seeds = sorted({r["seed"] for r in esgd})
    repeatable = all(len({(r["accuracy"], r["loss"]) for r in runs if r["seed"] == seed}) == 1
                     for runs in (sgd, esgd) for seed in seeds)

    def accuracies(runs):
        return " / ".join(f"{next(r['accuracy'] for r in runs if r['seed'] == seed):.4f}" for seed in seeds)

    def steady(runs):
        return spread([r["train_only_steady_ms"] for r in runs]) if steady_ge else "-"

    def row(label, runs):
        return [label, accuracies(runs), spread(_ms(runs, "whole_s")), spread(_ms(runs, "fit_s")),
                spread(_ms(runs, "train_only_s")), steady(runs),
                spread([r["peak_rss_mb"] for r in runs], 0)]

    ratio_row = ["ratio Entropy-SGD / SGD (paired)", "-", ratio(_ms(esgd, "whole_s"), _ms(sgd, "whole_s")),
                 ratio(_ms(esgd, "fit_s"), _ms(sgd, "fit_s")),
                 ratio(_ms(esgd, "train_only_s"), _ms(sgd, "train_only_s")),
                 ratio([r["train_only_steady_ms"] for r in esgd], [r["train_only_steady_ms"] for r in sgd])
                 if steady_ge else "-",
                 ratio([r["peak_rss_mb"] for r in esgd], [r["peak_rss_mb"] for r in sgd])]
    rows = [row("Keras SGD (Nesterov 0.9)", sgd), row("Entropy-SGD (default)", esgd), ratio_row]
    if "authors" in results:
        authors = [r["train_only_ms"] for r in results["authors"]]
        rows.append(["authors' PyTorch Entropy-SGD (--authors_code)", "-", "-", "-", spread(authors), "-", "-"])
        rows.append(["ratio Entropy-SGD / authors' (paired)", "-", "-", "-",
                     ratio(_ms(esgd, "train_only_s"), authors), "-", "-"])
    else:
        rows.append(["authors' PyTorch Entropy-SGD", "-", "-", "-", "skipped (below)", "-", "-"])
    table = markdown_table(
        ["contender", f"test accuracy (anchor), seed {' / '.join(map(str, seeds))}",
         "whole run [ms / gradient evaluation]",
         "fit with per-epoch work [ms / g.e.]", "training only [ms / g.e.]",
         "training only, epochs 2+ [ms / g.e.]", "peak RSS [MB]"], rows)

    k = esgd[0]["checkpoint_every"]
    names = [n for n in _PHASE_LABELS if any(n in r["phases_ms_per_epoch"] for r in sgd + esgd)]
    phase_rows = []
    for name in names:
        cells = []
        for runs in (sgd, esgd):
            values = [r["phases_ms_per_epoch"].get(name, 0.0) for r in runs]
            cells.append(spread(values))
        phase_rows.append([_PHASE_LABELS[name].format(k=k)] + cells)
    totals = [spread([sum(r["phases_ms_per_epoch"].values()) for r in runs]) for runs in (sgd, esgd)]
    phase_rows.append(["total"] + totals)
    breakdown = markdown_table(["phase (ms per effective epoch)", "Keras SGD", "Entropy-SGD"], phase_rows)

    command = (f"python -m bench.bench_default_run --repeats {args.repeats} --seeds {args.seeds} --epochs {args.epochs}"
               + (f" --checkpoint_every {args.checkpoint_every}" if args.checkpoint_every is not None else ""))
    return (
        "## The default experiment, end to end\n\n"
        f"Command: `{command}` ({total_min:.0f} min). {machine_line()} "
        f"{args.repeats} rounds, every contender once per round in a fresh process, the order rotated from round "
        "to round (`bench.timing.interleave`); every figure is median [min - max] over the rounds; ratios are the "
        "median [min - max] of the per-round ratios (`bench.timing.paired_ratio`). "
        f"Both contenders of round r (0-based) run seed number r mod {len(args.seed_list)} of {args.seeds}; "
        f"timings are pooled over the seeds. {args.epochs} effective epochs = {ge} gradient evaluations, "
        "the default config "
        f"(`python -m experiments.train`; checkpoint every {k} effective epochs) or `--optimizer=sgd` "
        "(Nesterov 0.9, lr 0.1 dropped to 0.01 at epoch 75). *Whole run*: the `train_and_evaluate` call "
        "(data, network, tracing, every epoch's test evaluation, anchor swaps, metrics.csv, TensorBoard and "
        "checkpoints, curves.png, summary.json) / gradient evaluations. *fit with per-epoch work*: the same "
        "without startup and curves/summary. *Training only*: `experiments.training.run.train_only`, the same "
        "training in one `fit` with nothing per epoch (first column with epoch 1's tracing, second without), "
        "in the same process after the whole run. Peak RSS: `ru_maxrss` of the process after the whole run. "
        + ("The training-only runs ended at the whole runs' test accuracy and loss, bit for bit (same training). "
           if same else "**The training-only runs did not end at the whole runs' test metrics.** ")
        + ("Every round of a seed gave the same test metrics, bit for bit. " if repeatable else
           "**The rounds of a seed did not all give the same test metrics.** ")
        + "\n\n" + table
        + (f"\n\nThe authors' PyTorch code: {authors_skipped}." if authors_skipped else "")
        + "\n\nWhere an effective epoch's time goes in the whole run (`time_breakdown` of summary.json, "
        "`experiments/training/phases.py`: exclusive wall time per phase, per effective epoch, median [min - max] "
        "over the rounds; the once-only phases are spread over the epochs):\n\n" + breakdown + "\n")


if __name__ == "__main__":
    main()
