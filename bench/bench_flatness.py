"""Flatness of Entropy-SGD's anchor against SGD's solution at matched training loss and the same L2.

    python -m bench.bench_flatness --seeds 0,1,2 --l2 5e-4 --workdir /tmp/flat [--write]

The earlier comparison (BENCHMARKS.md `analysis_science` (c)) found the anchor sharper, but at a
24x higher training loss and with L2 5e-4 against none for SGD. Here both train with the same
coupled L2 (`--l2`, Entropy-SGD's default) for 150 effective epochs with their experiment defaults
otherwise (SGD: Nesterov 0.9, lr 0.1 -> 0.01 at 75; Entropy-SGD: lr 1 -> 0.1 at 75, heavy-ball inner
loop), recording the weights (the anchor for Entropy-SGD) every epoch (`snapshot_every=40`). Then:

1. the data loss (cross-entropy, no L2 term) on all 4000 training examples at every snapshot of the
   second half of training (after the rate drop) and at the final weights;
2. per seed, the common target: the higher of the two runs' final losses;
3. each run's checkpoint (of those in 1) whose loss is nearest the target: the matched-loss weights
   (for the run with the higher final loss, its final weights);
4. there, on the same `--hessian_examples` training examples for every run: the Hessian's top-k
   eigenvalues (Lanczos, stopped when converged), its trace by Hutchinson (with its standard
   error), and the spread `tr Cov` of the local Gibbs measure `exp(-beta [f(w') + gamma/2 |w - w'|^2])`
   by HMC (`control_opt.analysis.local_gibbs_flatness`, with its standard error), the same
   `--gibbs_gamma`, `--gibbs_beta` for both optimizers.

Runs resume in `--workdir` (a finished run is not retrained). `--entropy_sgd_runs=TEMPLATE` (e.g.
`runs/esgd_{seed}`) takes Entropy-SGD's runs from default-experiment workdirs instead
(`python -m experiments.train --seed=S --workdir=...`, whose L2 must be `--l2`): without snapshots
only their final anchor is a candidate. Each seed is analysed as soon as its two runs exist and the
records go to WORKDIR/flatness.json; `--report_only` rebuilds the table from that file. With
`--write` the table goes to BENCHMARKS.md's `flatness` section.
"""

import argparse
import json
import os
import time

import numpy as np

from bench.report import machine_line, markdown_table, write_section

OPTIMIZERS = ("sgd", "entropy_sgd")
LABELS = {"sgd": "SGD (Nesterov)", "entropy_sgd": "Entropy-SGD (anchor)"}
STEPS_PER_EPOCH = 40  # MNIST-1D: 4000 examples, batch 100


def _set_flat(model, flat):
    """Puts flat weights (`model.trainable_variables` order, as snapshots hold them) into `model`."""
    start = 0
    for v in model.trainable_variables:
        size = int(np.prod(v.shape))
        v.assign(np.asarray(flat[start:start + size], np.float32).reshape(v.shape))
        start += size
    if start != len(flat):
        raise ValueError(f"snapshot holds {len(flat)} weights, the model {start}")


def run_dir(optimizer, seed, args):
    """The run's workdir, trained (or resumed) here unless Entropy-SGD's runs are given."""
    from experiments.training.run import train_and_evaluate  # pylint: disable=import-outside-toplevel

    if optimizer == "entropy_sgd" and args.entropy_sgd_runs:
        workdir = args.entropy_sgd_runs.format(seed=seed)
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
        if (config["optimizer"], config["seed"], config["epochs"]) != (optimizer, seed, args.epochs) or \
                config["hyperparameters"]["l2"] != args.l2:
            raise ValueError(f"{workdir} is not Entropy-SGD seed {seed}, {args.epochs} epochs, l2 {args.l2}")
        return workdir
    workdir = os.path.join(args.workdir, f"{optimizer}_{seed}")
    t0 = time.perf_counter()
    summary = train_and_evaluate(dict(optimizer=optimizer, seed=seed, epochs=args.epochs, l2=args.l2, verbose=0,
                                      snapshot_every=STEPS_PER_EPOCH), workdir)
    print(f"{optimizer} seed {seed}: trained in {time.perf_counter() - t0:.0f} s, final test accuracy "
          f"{summary['final_test_accuracy']:.4f}", flush=True)
    return workdir


def candidates(workdir, epochs):
    """(model, data, [(effective epoch, flat weights, train loss, train accuracy)]): the snapshots of the
    second half of the run (after the rate drop) and its final weights."""
    from experiments import analysis_run  # pylint: disable=import-outside-toplevel
    from experiments.training import inputs  # pylint: disable=import-outside-toplevel
    from experiments.training.config import config_from_json  # pylint: disable=import-outside-toplevel

    model, run_config, (x, y), snapshots, _ = analysis_run.load_run(workdir)
    config = config_from_json(run_config)
    _, _, x_test, y_test = inputs.examples(config, inputs.load_data(config))
    final = np.concatenate([v.numpy().reshape(-1) for v in model.trainable_variables])
    points = [] if snapshots is None else [(int(step) // STEPS_PER_EPOCH, flat) for step, flat in
                                           zip(snapshots.steps, snapshots.weights)
                                           if epochs // 2 < step // STEPS_PER_EPOCH < epochs]
    points.append((epochs, final))
    rows = []
    for epoch, flat in points:
        _set_flat(model, flat)
        rows.append((epoch, flat, *analysis_run.loss_and_accuracy(model, x, y)))
    return model, (x, y, x_test, y_test), rows


def analyse(model, x, y, args, seed):
    from control_opt import analysis  # pylint: disable=import-outside-toplevel
    from experiments import analysis_run  # pylint: disable=import-outside-toplevel

    loss = analysis_run._loss()  # pylint: disable=protected-access
    t0 = time.perf_counter()
    op = analysis.hessian_operator(model, loss, x, y, chunk_size=500)
    eig = analysis.hessian_eigenvalues(op, k=args.k, seed=seed)
    trace = analysis.hessian_trace(op, num_probes=args.trace_probes, seed=seed + 1)
    t_hessian = time.perf_counter() - t0
    t0 = time.perf_counter()
    gibbs = analysis.local_gibbs_flatness(model, loss, x, y, gamma=args.gibbs_gamma, beta=args.gibbs_beta,
                                          seed=seed, kernel="hmc", num_results=args.gibbs_results,
                                          num_burnin_steps=args.gibbs_burnin, num_chains=2)
    t_gibbs = time.perf_counter() - t0
    return dict(top=[float(v) for v in eig.top], top_residuals=[float(v) for v in eig.top_residuals],
                trace=float(trace.trace), trace_stderr=float(trace.stderr), spread=gibbs.spread,
                spread_stderr=gibbs.spread_stderr, gibbs_gradient_norm=gibbs.gradient_norm,
                seconds=dict(hessian=t_hessian, gibbs=t_gibbs))


def _mean_sd(values, fmt="{:.3g}"):
    return fmt.format(values[0]) if len(values) == 1 else \
        f"{fmt.format(np.mean(values))} ± {fmt.format(np.std(values, ddof=1))}"


def report(records, args):
    seeds = sorted({seed for _, seed in records})

    def col(optimizer, getter, fmt="{:.3g}"):
        return _mean_sd([getter(records[(optimizer, s)]) for s in seeds], fmt)

    rows = [("common target: the higher final train loss of the pair", *(col(o, lambda r: r["target"], "{:.4f}")
                                                                          for o in OPTIMIZERS)),
            ("effective epoch of the matched checkpoint", *(col(o, lambda r: r["epoch"], "{:.0f}") for o in OPTIMIZERS)),
            ("train loss there (data term, 4000 examples)", *(col(o, lambda r: r["train_loss"], "{:.4f}") for o in OPTIMIZERS)),
            ("train accuracy there", *(col(o, lambda r: r["train_accuracy"], "{:.4f}") for o in OPTIMIZERS)),
            ("test accuracy there", *(col(o, lambda r: r["test_accuracy"], "{:.4f}") for o in OPTIMIZERS))]
    rows += [(f"Hessian λ_{i + 1}", *(col(o, lambda r, i=i: r["top"][i]) for o in OPTIMIZERS)) for i in range(args.k)]
    rows += [(f"Hessian trace (Hutchinson, {args.trace_probes} probes)", *(col(o, lambda r: r["trace"]) for o in OPTIMIZERS)),
             ("its standard error (per run, mean)", *(col(o, lambda r: r["trace_stderr"]) for o in OPTIMIZERS)),
             (f"local Gibbs spread tr Cov (γ {args.gibbs_gamma:g}, β {args.gibbs_beta:g}, HMC)",
              *(col(o, lambda r: r["spread"]) for o in OPTIMIZERS)),
             ("its standard error (per run, mean)", *(col(o, lambda r: r["spread_stderr"]) for o in OPTIMIZERS))]
    table = markdown_table(("quantity (mean ± sd over seeds)", *(LABELS[o] for o in OPTIMIZERS)), rows)
    per_seed = markdown_table(
        ("seed", *(f"{LABELS[o]}: epoch, λ_1, trace ± SE, spread ± SE" for o in OPTIMIZERS)),
        [(s, *(f"{records[(o, s)]['epoch']}, {records[(o, s)]['top'][0]:.3g}, {records[(o, s)]['trace']:.3g} ± "
               f"{records[(o, s)]['trace_stderr']:.2g}, {records[(o, s)]['spread']:.4g} ± "
               f"{records[(o, s)]['spread_stderr']:.2g}" for o in OPTIMIZERS)) for s in seeds])
    command = (f"python -m bench.bench_flatness --seeds {','.join(str(s) for s in seeds)} --epochs {args.epochs} --l2 {args.l2:g} "
               f"--hessian_examples {args.hessian_examples} --k {args.k} --trace_probes {args.trace_probes} "
               f"--gibbs_gamma {args.gibbs_gamma:g} --gibbs_beta {args.gibbs_beta:g} --gibbs_results "
               f"{args.gibbs_results} --gibbs_burnin {args.gibbs_burnin}" +
               (f" --entropy_sgd_runs {args.entropy_sgd_runs}" if args.entropy_sgd_runs else ""))
    return (f"## Flatness at matched training loss and the same L2: Entropy-SGD's anchor vs SGD "
            f"(`bench/bench_flatness.py`)\n\n`{command}`. {machine_line()}\n\nBoth optimizers train "
            f"with coupled L2 {args.l2:g} for {args.epochs} effective epochs, their experiment defaults otherwise, "
            f"seeds {', '.join(str(s) for s in seeds)}, the weights (Entropy-SGD: the anchor) recorded every epoch "
            f"(Entropy-SGD's runs: {args.entropy_sgd_runs or 'trained here'}). Per seed, the common target is the "
            f"higher of the two final training losses (data term, all 4000 examples); each run is taken at its "
            f"checkpoint of the second half of training (or final weights) whose loss is nearest it. There, on the same {args.hessian_examples} training examples: Hessian of the data loss "
            f"(top {args.k} by Lanczos, trace by Hutchinson) and the spread of the local Gibbs measure "
            f"exp(-β [f(w') + γ/2 |w - w'|²]) by HMC (2 chains, {args.gibbs_burnin} burn-in + "
            f"{args.gibbs_results} draws).\n\n{table}\n\nPer seed:\n\n{per_seed}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--l2", type=float, default=5e-4)
    parser.add_argument("--entropy_sgd_runs", default=None,
                        help="template of existing Entropy-SGD default-experiment workdirs, e.g. runs/esgd_{seed}")
    parser.add_argument("--hessian_examples", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--trace_probes", type=int, default=50)
    parser.add_argument("--gibbs_gamma", type=float, default=0.2,
                        help="scope of the local Gibbs measure (Entropy-SGD's default ends at 0.01 x 1.01^300 = 0.2)")
    parser.add_argument("--gibbs_beta", type=float, default=1000.0,
                        help="its inverse temperature (1000: the posterior of the hessian_examples' likelihood)")
    parser.add_argument("--gibbs_results", type=int, default=200)
    parser.add_argument("--gibbs_burnin", type=int, default=100)
    parser.add_argument("--report_only", action="store_true", help="the table from WORKDIR/flatness.json")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    path = os.path.join(args.workdir, "flatness.json")
    records = {}
    if os.path.exists(path):
        with open(path) as f:
            records = {(k.rsplit("_", 1)[0], int(k.rsplit("_", 1)[1])): r for k, r in json.load(f).items()}
    if not args.report_only:
        from experiments import analysis_run  # pylint: disable=import-outside-toplevel

        for seed in [int(s) for s in args.seeds.split(",")]:
            if all((o, seed) in records for o in OPTIMIZERS):
                continue
            runs = {o: candidates(run_dir(o, seed, args), args.epochs) for o in OPTIMIZERS}
            target = max(rows[-1][2] for _, _, rows in runs.values())  # the higher final loss
            rng = np.random.default_rng(seed)
            for optimizer, (model, (x, y, x_test, y_test), rows) in runs.items():
                epoch, flat, train_loss, train_accuracy = min(rows, key=lambda r: abs(r[2] - target))
                _set_flat(model, flat)
                test_loss, test_accuracy = analysis_run.loss_and_accuracy(model, x_test, y_test)
                subset = np.sort(rng.permutation(len(x))[:args.hessian_examples]) if optimizer == OPTIMIZERS[0] \
                    else subset  # the same examples for both
                records[(optimizer, seed)] = dict(
                    epoch=epoch, target=target, train_loss=train_loss, train_accuracy=train_accuracy,
                    test_loss=test_loss, test_accuracy=test_accuracy,
                    **analyse(model, np.asarray(x)[subset], np.asarray(y)[subset], args, seed))
                print(f"{optimizer} seed {seed}: {json.dumps(records[(optimizer, seed)])}", flush=True)
                os.makedirs(args.workdir, exist_ok=True)
                with open(path, "w") as f:
                    json.dump({f"{o}_{s}": r for (o, s), r in records.items()}, f, indent=1)
    text = report(records, args)
    print(text)
    if args.write:
        write_section("flatness", text)


if __name__ == "__main__":
    main()
