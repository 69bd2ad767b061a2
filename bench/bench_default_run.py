"""The default experiment end to end: Entropy-SGD against SGD on the same budget.

    python -m bench.bench_default_run [--epochs 150] [--seeds 0]

Runs `experiments.train.train_and_evaluate` with the default config (Entropy-SGD
on MNIST-1D) and with `--optimizer=sgd`, same number of gradient evaluations,
in this one process, into a temporary workdir; reports test accuracy at the
anchor, wall time of `fit` and milliseconds per gradient evaluation, with the
ratio to SGD. Writes its section of BENCHMARKS.md.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from experiments import train  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            results = {}
            for optimizer in ("sgd", "entropy_sgd"):
                config = train.config_from_dict(dict(optimizer=optimizer, epochs=args.epochs, seed=seed, verbose=0))
                results[optimizer] = train.train_and_evaluate(config, os.path.join(tmp, f"{optimizer}_{seed}"))
            base = results["sgd"]["ms_per_gradient_evaluation"]
            for optimizer, summary in results.items():
                ms = summary["ms_per_gradient_evaluation"]
                rows.append([optimizer, seed, summary["gradient_evaluations"], f"{summary['final_test_accuracy']:.4f}",
                             f"{summary['wall_time_s']:.1f}", f"{ms:.2f}", f"{ms / base:.2f}"])
                print(rows[-1], flush=True)
    md = ("## The default experiment, end to end\n\n"
          f"Command: `python -m bench.bench_default_run --epochs {args.epochs} --seeds {args.seeds}`. "
          f"{machine_line()} Each row is `experiments.train.train_and_evaluate` with the default config "
          "(`python -m experiments.train`) or with `--optimizer=sgd` (Nesterov 0.9, lr 0.1 dropped to 0.01 "
          "at epoch 75), run one after the other in one process; wall time is `fit` including the "
          "per-epoch test evaluation, checkpoint and metric files; ms per gradient evaluation = wall time / "
          "gradient evaluations; ratio against SGD of the same seed.\n\n"
          + markdown_table(["optimizer", "seed", "gradient evaluations", "test accuracy (anchor)", "wall time [s]",
                            "ms / gradient evaluation", "ratio to SGD"], rows))
    if not args.no_write:
        write_section("default_run", md)
    print(md)


if __name__ == "__main__":
    main()
