"""Cost of the analysis tools, and the SGD-as-variational-inference measurements on MNIST-1D.

    python -m bench.bench_analysis --part cost        # time / peak memory / accuracy of the tools
    python -m bench.bench_analysis --part science     # rank of D, stochastic area, flatness; 3 seeds

Cost (section "analysis_cost"): every measurement runs in its own subprocess
(`--measure NAME`) so that its peak resident memory (`resource.getrusage`
maxrss, which covers TensorFlow's C++ allocations, unlike tracemalloc) is its own;
the increment over the resident memory just before the computation is reported
beside the process peak. Times are medians of repeats after one warm-up.

Science (section "analysis_science"): `train_and_evaluate` (the runner) with SGD
and with the default Entropy-SGD, 3 seeds each, with weight snapshots every 10
steps (the runner's `snapshot_every`, `experiments.training.snapshots.WeightSnapshots`),
then `experiments.analysis_run.analyze_run`,
and a control run of full-batch gradient descent plus isotropic Gaussian noise
of matched temperature.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

from bench.report import machine_line, markdown_table, write_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MB = 1024.0  # ru_maxrss is in KiB on Linux


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _MB


def _current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ============================================================================ cost: one measurement per process


def _setup(model_name, n, seed=0):
    import keras

    from control_opt import datasets, models

    rng = np.random.default_rng(seed)
    if model_name == "mnist1d_cnn":
        data = datasets.load("mnist1d", seed=None)
        x, y = np.asarray(data.x_train[:n]), np.asarray(data.y_train[:n])
        model = models.build("mnist1d_cnn", input_shape=data.input_shape, num_classes=10, seed=seed)
    elif model_name == "lenet":
        x = rng.random((n, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, n)
        model = models.build("lenet", input_shape=(28, 28, 1), num_classes=10, seed=seed)
    elif model_name == "mlp":  # ~1.5k weights: small enough for a dense Hessian
        data = datasets.load("mnist1d", seed=None)
        x, y = np.asarray(data.x_train[:n]).reshape(n, -1), np.asarray(data.y_train[:n])
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(30, activation="tanh"),
                                  keras.layers.Dense(10)])
    else:
        raise ValueError(model_name)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, loss, x, y


def _median_time(fn, repeats):
    fn()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def measure(name, model_name, n, repeats):
    """One measurement (run in a fresh process); returns a dict."""
    import tensorflow as tf

    from control_opt import analysis

    model, loss, x, y = _setup(model_name, n)
    dim = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    out = dict(name=name, model=model_name, n=n, dim=dim)
    before = _current_rss_mb()
    if name == "hessian_top10":
        def run():
            out["top"] = analysis.hessian_eigenvalues(model, loss, x, y, k=10, seed=0).top.tolist()
        out["seconds"], out["times"] = _median_time(run, repeats)
    elif name == "diffusion":
        def run():
            spec = analysis.diffusion_spectrum(model, loss, x, y, k=10, method="gram", chunk_size=128)
            out["rank"], out["top"] = spec.rank, spec.eigenvalues.tolist()
        out["seconds"], out["times"] = _median_time(run, repeats)
    elif name == "hvp_units":
        op = analysis.hessian_operator(model, loss, x, y)
        v = np.random.default_rng(0).standard_normal(dim)
        variables = model.trainable_variables

        @tf.function(reduce_retracing=True)
        def gradient(xb, yb):
            with tf.GradientTape() as tape:
                value = loss(yb, model(xb, training=False))
            return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(value, variables)], 0)

        xt, yt = tf.constant(x), tf.constant(y)
        out["hvp_seconds"], _ = _median_time(lambda: op.matvec(v), repeats)
        out["gradient_seconds"], _ = _median_time(lambda: np.asarray(gradient(xt, yt).numpy(), np.float64), repeats)
        out["ratio"] = out["hvp_seconds"] / out["gradient_seconds"]
        # ratio of medians, and the median of per-pair ratios in interleaved repeats
        pairs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            op.matvec(v)
            t1 = time.perf_counter()
            gradient(xt, yt).numpy()
            pairs.append((t1 - t0) / (time.perf_counter() - t1))
        out["ratio_paired"] = statistics.median(pairs)
    elif name == "dense_vs_lanczos":
        variables = model.trainable_variables
        xt, yt = tf.constant(x), tf.constant(y)

        def dense():
            with tf.GradientTape(persistent=True) as outer:
                with tf.GradientTape() as tape:
                    value = loss(yt, model(xt, training=False))
                grads = tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(value, variables)], 0)
            blocks = outer.jacobian(grads, variables, experimental_use_pfor=True)
            del outer
            hess = np.concatenate([np.reshape(b.numpy(), (dim, -1)) for b in blocks], axis=1).astype(np.float64)
            hess = 0.5 * (hess + hess.T)
            out["dense_top"] = np.linalg.eigvalsh(hess)[::-1][:10].tolist()

        def ours():
            out["lanczos_top"] = analysis.hessian_eigenvalues(model, loss, x, y, k=10, seed=0).top.tolist()

        out["dense_seconds"], _ = _median_time(dense, max(1, repeats // 2))
        out["lanczos_seconds"], _ = _median_time(ours, repeats)
        out["ratio"] = out["dense_seconds"] / out["lanczos_seconds"]
        d, l = np.asarray(out["dense_top"]), np.asarray(out["lanczos_top"])
        out["max_rel_diff"] = float(np.max(np.abs(d - l) / np.abs(d)))
    else:
        raise ValueError(name)
    out["peak_rss_mb"] = _rss_mb()
    out["rss_before_mb"] = before
    out["increment_mb"] = out["peak_rss_mb"] - before
    return out


def _subprocess_measure(name, model_name, n, repeats):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "bench.bench_analysis", "--measure", name, "--model", model_name, "--n", str(n),
           "--repeats", str(repeats)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def cost(args):
    rows, units, dense_rows = [], [], []
    for model_name in ("mnist1d_cnn", "lenet"):
        for name in ("hessian_top10", "diffusion"):
            r = _subprocess_measure(name, model_name, 512, args.repeats)
            print(json.dumps(r), flush=True)
            what = "Hessian top-10 eigenvalues (Lanczos, 50 steps)" if name == "hessian_top10" else \
                "D spectrum (Gram route, per-example Jacobian)"
            rows.append([model_name, f"{r['dim']:,}", what, 512, f"{r['seconds']:.2f}",
                         f"{min(r['times']):.2f}-{max(r['times']):.2f}", f"{r['peak_rss_mb']:.0f}",
                         f"{r['increment_mb']:.0f}"])
        r = _subprocess_measure("hvp_units", model_name, 512, 3 * args.repeats)
        print(json.dumps(r), flush=True)
        units.append([model_name, f"{r['dim']:,}", 512, f"{1e3 * r['hvp_seconds']:.1f}",
                      f"{1e3 * r['gradient_seconds']:.1f}", f"{r['ratio']:.2f}", f"{r['ratio_paired']:.2f}"])
    r = _subprocess_measure("dense_vs_lanczos", "mlp", 512, args.repeats)
    print(json.dumps(r), flush=True)
    dense_rows.append([f"MLP 40-30-10 ({r['dim']:,} weights)", 512, f"{r['dense_seconds']:.2f}",
                       f"{r['lanczos_seconds']:.2f}", f"{r['ratio']:.1f}", f"{r['max_rel_diff']:.1e}",
                       f"{r['dense_top'][0]:.6g}", f"{r['lanczos_top'][0]:.6g}"])
    md = ("## Analysis tools: cost (control_opt.analysis)\n\n"
          f"Command: `python -m bench.bench_analysis --part cost --repeats {args.repeats}`. {machine_line()} "
          "CPU only, 2 cores shared with other jobs. Each row is a fresh subprocess; time = median of "
          f"{args.repeats} repeats after one warm-up (range in the next column); peak memory = "
          "`resource.getrusage` maxrss of that process (TensorFlow included), increment = peak minus the "
          "resident memory just before the computation (model and data already built). Data: 512 training "
          "examples of MNIST-1D (mnist1d_cnn) or 512 random 28x28x1 images with random labels (LeNet, "
          "`models.build(\"lenet\", input_shape=(28,28,1))`), float32, inference mode.\n\n"
          + markdown_table(["model", "weights", "computation", "examples", "median time [s]", "range [s]",
                            "peak RSS [MB]", "increment [MB]"], rows)
          + "\n\nHessian-vector product cost in gradient evaluations (same 512 examples, one chunk; "
          "HVP = `hessian_operator(...).matvec` forward-over-reverse, flat float64 in and out; gradient = a "
          "`tf.function` of the mean loss's gradient, flattened, copied to numpy; medians of "
          f"{3 * args.repeats} repeats each, and the median of {3 * args.repeats} interleaved HVP/gradient "
          "pairs):\n\n"
          + markdown_table(["model", "weights", "examples", "HVP [ms]", "gradient [ms]", "ratio of medians",
                            "median paired ratio"], units)
          + "\n\nDense Hessian against Lanczos (top-10 eigenvalues; dense = `GradientTape.jacobian` of the "
          "gradient (pfor) then `numpy.linalg.eigvalsh`; ours = `hessian_eigenvalues(k=10)`, 50 Lanczos "
          "steps; medians of repeats; agreement = max over the top 10 of |dense - ours| / |dense|, float32 "
          "model):\n\n"
          + markdown_table(["model", "examples", "dense [s]", "Lanczos [s]", "dense / Lanczos",
                            "max rel. diff (top 10)", "dense top", "Lanczos top"], dense_rows))
    if not args.no_write:
        write_section("analysis_cost", md)
    print(md)


# ============================================================================ science


def train_with_snapshots(config, workdir, every=10):
    """`train_and_evaluate` with the runner's weight snapshots every `every` steps."""
    from experiments import train

    return train.train_and_evaluate(dict(config, snapshot_every=every), workdir)


def isotropic_control(workdir, start_weights, steps, noise_std, *, learning_rate, momentum, nesterov, seed,
                      every=10, max_examples=None):
    """Full-batch gradient + isotropic Gaussian noise (std `noise_std` per coordinate), same outer optimizer.

    Starts at `start_weights` (flat); returns the `[steps // every + 1, P]` trajectory.
    """
    import keras
    import tensorflow as tf

    from control_opt import datasets

    model = keras.saving.load_model(os.path.join(workdir, "checkpoint.keras"))
    variables = model.trainable_variables
    sizes = [int(np.prod(v.shape)) for v in variables]
    for v, piece in zip(variables, np.split(np.asarray(start_weights, np.float32), np.cumsum(sizes)[:-1])):
        v.assign(piece.reshape(v.shape))
    data = datasets.load("mnist1d", seed=None)
    x = tf.constant(np.asarray(data.x_train[:max_examples]))
    y = tf.constant(np.asarray(data.y_train[:max_examples]))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)
    optimizer.build(variables)
    generator = tf.random.Generator.from_seed(seed)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, variables)
        noisy = [g + noise_std * generator.normal(tf.shape(g)) for g in grads]
        optimizer.apply_gradients(zip(noisy, variables))
        return value

    flat = lambda: np.concatenate([v.numpy().reshape(-1) for v in variables])  # noqa: E731
    path = [flat()]
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step()
        if i % every == 0:
            path.append(flat())
        if i % 500 == 0:
            print(f"  control: {i}/{steps} steps, {i / (time.perf_counter() - t0):.0f} steps/s", flush=True)
    return np.stack(path)


def _mean_sd(values, fmt="{:.3g}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} ± {fmt.format(np.std(values, ddof=1))}"


def science(args):
    from experiments import analysis_run
    from experiments.training.snapshots import SNAPSHOTS_FILE, read_snapshots

    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = args.epochs
    base = args.workdir or tempfile.mkdtemp(prefix="bench_analysis_")
    config = analysis_run.AnalysisConfig(diffusion_examples=args.diffusion_examples,
                                         hessian_examples=args.hessian_examples, burn_in_fraction=0.6)
    records = {}
    for seed in seeds:
        for optimizer in ("sgd", "entropy_sgd"):
            workdir = os.path.join(base, f"{optimizer}_{seed}")
            overrides = dict(optimizer=optimizer, epochs=epochs, seed=seed, verbose=0)
            if epochs != 150:
                drop = {"sgd": 0.01, "entropy_sgd": 0.1}[optimizer]
                overrides["lr_schedule"] = f"{epochs // 2}:{drop}"
            t0 = time.perf_counter()
            summary = train_with_snapshots(overrides, workdir, every=10)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = analysis_run.analyze_run(workdir, config)
            print(f"{optimizer} seed {seed}: trained {t_train:.0f} s, analysed {time.perf_counter() - t0:.0f} s, "
                  f"test accuracy {summary['final_test_accuracy']:.4f}", flush=True)
            result["summary"] = summary
            if optimizer == "sgd":
                snaps = read_snapshots(os.path.join(workdir, SNAPSHOTS_FILE))
                start = int(np.searchsorted(snaps.steps, result["trajectory"]["first_step"]))
                steps = int(snaps.steps[-1] - snaps.steps[start])
                # matched temperature: SGD's minibatch gradient noise has covariance D / b; the control's
                # isotropic noise (tr D / P) / b * I has the same trace (total variance) per step
                d = result["diffusion"]
                noise_std = float(np.sqrt(d["trace"] / d["dim"] / summary["batch_size"]))
                t0 = time.perf_counter()
                path = isotropic_control(workdir, snaps.weights[start], steps, noise_std,
                                         learning_rate=result["diffusion"]["final_learning_rate"], momentum=0.9,
                                         nesterov=True, seed=seed, every=10)
                control = analysis_run.trajectory_area(path, 10.0, burn_in_fraction=0.0,
                                                       num_batches=config.area_batches)
                control.pop("projection")
                control.update(noise_std=noise_std, seconds=time.perf_counter() - t0)
                result["control"] = analysis_run._finite(control)  # pylint: disable=protected-access
                print(f"  control: area z {control['area_z']:.2f}, SGD area z {result['trajectory']['area_z']:.2f}",
                      flush=True)
            records[(optimizer, seed)] = result
            with open(os.path.join(base, "science.json"), "w") as f:
                json.dump({f"{k[0]}_{k[1]}": v for k, v in records.items()}, f, indent=1, default=str)
    _science_report(records, seeds, epochs, args, base)


def _science_report(records, seeds, epochs, args, base):
    def col(optimizer, getter):
        return [getter(records[(optimizer, s)]) for s in seeds if (optimizer, s) in records]

    for (optimizer, seed), r in records.items():  # older records: the loss at the analysed weights
        if "train_loss" not in r["run"]:
            import keras

            from control_opt import datasets
            from experiments.analysis_run import loss_and_accuracy

            data = datasets.load("mnist1d", seed=None)
            model = keras.saving.load_model(os.path.join(base, f"{optimizer}_{seed}", "checkpoint.keras"))
            r["run"]["train_loss"], r["run"]["train_accuracy"] = loss_and_accuracy(model, data.x_train, data.y_train)
    sgd = lambda g: col("sgd", g)  # noqa: E731
    ent = lambda g: col("entropy_sgd", g)  # noqa: E731
    d0 = records[("sgd", seeds[0])]["diffusion"]
    rank_rows = [
        ["rank of D (#λ > λ_max·P·eps, eps = float32's)", _mean_sd(sgd(lambda r: r["diffusion"]["rank"]), "{:.1f}"),
         _mean_sd(ent(lambda r: r["diffusion"]["rank"]), "{:.1f}")],
        ["rank fraction rank / P", _mean_sd(sgd(lambda r: r["diffusion"]["rank_fraction"])),
         _mean_sd(ent(lambda r: r["diffusion"]["rank_fraction"]))],
        ["rank / min(N - 1, P)", _mean_sd(sgd(lambda r: r["diffusion"]["rank_fraction_of_max"])),
         _mean_sd(ent(lambda r: r["diffusion"]["rank_fraction_of_max"]))],
        ["tolerance λ_max·P·eps", _mean_sd(sgd(lambda r: r["diffusion"]["rank_tolerance"])),
         _mean_sd(ent(lambda r: r["diffusion"]["rank_tolerance"]))],
        ["relative rank #λ > 1e-3 λ_max", _mean_sd(sgd(lambda r: r["diffusion"]["relative_rank"]), "{:.1f}"),
         _mean_sd(ent(lambda r: r["diffusion"]["relative_rank"]), "{:.1f}")],
        ["λ_max(D)", _mean_sd(sgd(lambda r: r["diffusion"]["eigenvalues"][0])),
         _mean_sd(ent(lambda r: r["diffusion"]["eigenvalues"][0]))],
        ["tr D", _mean_sd(sgd(lambda r: r["diffusion"]["trace"])), _mean_sd(ent(lambda r: r["diffusion"]["trace"]))],
        ["isotropy (tr D)² / (P tr D²)", _mean_sd(sgd(lambda r: r["diffusion"]["isotropy"])),
         _mean_sd(ent(lambda r: r["diffusion"]["isotropy"]))],
        ["test accuracy", _mean_sd(sgd(lambda r: r["summary"]["final_test_accuracy"]), "{:.4f}"),
         _mean_sd(ent(lambda r: r["summary"]["final_test_accuracy"]), "{:.4f}")],
    ]
    flat_rows = [
        ["top Hessian eigenvalue λ_1", _mean_sd(sgd(lambda r: r["hessian"]["top_eigenvalue"])),
         _mean_sd(ent(lambda r: r["hessian"]["top_eigenvalue"]))],
        ["Hessian trace (Hutchinson, 50 probes)", _mean_sd(sgd(lambda r: r["hessian"]["trace"])),
         _mean_sd(ent(lambda r: r["hessian"]["trace"]))],
        ["its standard error (per run, mean)", _mean_sd(sgd(lambda r: r["hessian"]["trace_stderr"])),
         _mean_sd(ent(lambda r: r["hessian"]["trace_stderr"]))],
        ["near-zero fraction abs(λ) ≤ 1e-3 λ_1 (SLQ)", _mean_sd(sgd(lambda r: r["hessian"]["near_zero_fraction"])),
         _mean_sd(ent(lambda r: r["hessian"]["near_zero_fraction"]))],
        ["negative fraction λ < -1e-3 λ_1 (SLQ)", _mean_sd(sgd(lambda r: r["hessian"]["negative_fraction"])),
         _mean_sd(ent(lambda r: r["hessian"]["negative_fraction"]))],
        ["train loss at these weights (4000 examples)", _mean_sd(sgd(lambda r: r["run"]["train_loss"]), "{:.3g}"),
         _mean_sd(ent(lambda r: r["run"]["train_loss"]), "{:.3g}")],
        ["train accuracy at these weights", _mean_sd(sgd(lambda r: r["run"]["train_accuracy"]), "{:.4f}"),
         _mean_sd(ent(lambda r: r["run"]["train_accuracy"]), "{:.4f}")],
        ["test loss (runner)", _mean_sd(sgd(lambda r: r["summary"]["final_test_loss"]), "{:.4f}"),
         _mean_sd(ent(lambda r: r["summary"]["final_test_loss"]), "{:.4f}")],
    ]
    area_rows = []
    keys = (("area_z", "normalized_rate"), ("heldout_area_z", "heldout_normalized_rate"))
    for s in seeds:
        r = records.get(("sgd", s))
        if r is None:
            continue
        t, c = r["trajectory"], r["control"]
        row = [s, f"{t['area_rate']:.3g} ± {t['area_stderr']:.2g}"]
        for which in (t, c):
            for z, norm in keys:
                row += [f"{which[z]:.2f}", f"{which[norm]:.3g}"]
        area_rows.append(row)
    summary = ["abs mean ± sd", ""]
    for which in ("trajectory", "control"):
        for z, norm in keys:
            summary += [_mean_sd([abs(records[("sgd", s)][which][z]) for s in seeds if ("sgd", s) in records],
                                 "{:.2f}"),
                        _mean_sd([abs(records[("sgd", s)][which][norm]) for s in seeds if ("sgd", s) in records])]
    area_rows.append(summary)
    t0 = records[("sgd", seeds[0])]["trajectory"]
    lr_text = ("the default schedules (SGD: Nesterov 0.9, lr 0.1 → 0.01 at epoch 75; Entropy-SGD: lr 1 → 0.1 "
               "at epoch 75, L = 20)" if epochs == 150 else
               f"the learning-rate drop moved to epoch {epochs // 2} (SGD 0.1 → 0.01, Entropy-SGD 1 → 0.1)")
    cmd = (f"python -m bench.bench_analysis --part science --seeds {args.seeds} --epochs {epochs} "
           f"--diffusion_examples {args.diffusion_examples} --hessian_examples {args.hessian_examples}")
    md = (
        "## SGD as variational inference on MNIST-1D (experiments.analyze)\n\n"
        f"Command: `{cmd}`. {machine_line()} Runs: `train_and_evaluate` with `optimizer=sgd` and with the default "
        f"Entropy-SGD, MNIST-1D CNN ({d0['dim']:,} weights), {epochs} effective epochs, {lr_text}, seeds "
        f"{args.seeds}; weight snapshots every 10 steps (`WeightSnapshots`). Each run is then analysed by "
        "`experiments.analysis_run.analyze_run` (= `python -m experiments.analyze --workdir=RUN "
        f"--diffusion_examples={args.diffusion_examples} --hessian_examples={args.hessian_examples} "
        "--burn_in_fraction=0.6`) at the final "
        "(anchor) weights: D from "
        f"N = {d0['num_examples']} training examples (exact Gram route), the Hessian on "
        f"{records[('sgd', seeds[0])]['hessian']['num_examples']} training examples (top 10 by Lanczos, "
        "50 steps; SLQ 4 probes x 80 steps; Hutchinson 50 Rademacher probes). Mean ± sd over seeds.\n\n"
        "**(a) Rank of the diffusion matrix D at the end of training.** Tolerance: the paper's "
        "`λ_max(D)·P·eps` with eps = 1.19e-7 (float32); rank D ≤ N − 1 by construction, so the rank fraction "
        f"rank/P is at most (N − 1)/P = {(d0['num_examples'] - 1) / d0['dim']:.3f} here.\n\n"
        + markdown_table(["quantity", "SGD", "Entropy-SGD"], rank_rows)
        + "\n\n**(b) Stochastic area of the trajectory.** SGD's snapshots from step "
        f"{t0['first_step']} to {t0['last_step']} (the last 40% of training, at the final learning rate), "
        "projected on their top-2 principal components; area rate A_12/t per optimizer step with a batch-means "
        "standard error (20 batches), z = rate / stderr, normalized rate = rate / sqrt(var_1 var_2) (scale-free). "
        "In-sample: PCs of the window itself (as in the paper's figures; biased away from 0 for any "
        "non-stationary, diffusing path, see `trajectory_area`); held-out: PCs of the window's first half, "
        "area on its second half in those fixed directions (zero mean for a reversible process). "
        "Control: from SGD's snapshot at the start of that window, the same number of steps of the same outer "
        "rule (Nesterov 0.9, final lr) on the full-batch gradient plus isotropic Gaussian noise with per-coordinate "
        "variance tr D / (P b) (the same total variance per step as SGD's minibatch noise D / b, b = 100), "
        "snapshots every 10 steps, analysed the same way. Under reversible (isotropic, gradient) dynamics "
        "z ~ N(0, 1).\n\n"
        + markdown_table(["seed", "SGD area rate (in-sample PCs)", "SGD z", "SGD normalized", "SGD held-out z",
                          "SGD held-out normalized", "control z", "control normalized", "control held-out z",
                          "control held-out normalized"], area_rows)
        + "\n\n**(c) Flatness: Entropy-SGD against SGD** (Hessian of the training loss at the final weights; "
        "SGD's final weights, Entropy-SGD's anchor).\n\n"
        + markdown_table(["quantity", "SGD", "Entropy-SGD"], flat_rows)
        + "\n\nRaw results per run: `science.json` in the bench workdir "
        f"(`{base}` for this table).\n")
    if args.findings:
        md += "\n" + open(args.findings).read().strip() + "\n"
    if not args.no_write:
        write_section("analysis_science", md)
    print(md)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("cost", "science", "report"), default="cost")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--diffusion_examples", type=int, default=4000)
    parser.add_argument("--hessian_examples", type=int, default=1000)
    parser.add_argument("--workdir", default=None, help="science: where the runs go (default a temporary dir)")
    parser.add_argument("--findings", default=None, help="science/report: a markdown file appended to the section")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print("RESULT " + json.dumps(measure(args.measure, args.model, args.n, args.repeats)), flush=True)
    elif args.part == "cost":
        cost(args)
    elif args.part == "science":
        science(args)
    else:  # re-render the science section from a finished workdir's science.json
        with open(os.path.join(args.workdir, "science.json")) as f:
            raw = json.load(f)
        records = {(k.rsplit("_", 1)[0], int(k.rsplit("_", 1)[1])): v for k, v in raw.items()}
        _science_report(records, [int(s) for s in args.seeds.split(",")], args.epochs, args, args.workdir)


if __name__ == "__main__":
    main()
