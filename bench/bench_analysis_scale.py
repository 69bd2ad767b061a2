"""The analysis at the papers' scale, in gradient evaluations of the same data, and beside PyHessian.

    python -m bench.bench_analysis_scale                       # every row, then the BENCHMARKS.md section
    python -m bench.bench_analysis_scale --rows lenet_hessian  # some rows (comma-separated)
    python -m bench.bench_analysis_scale --report              # re-render from bench/results/analysis_scale.json

Rows (each in its own subprocess, so that its peak resident memory is its own):

* lenet_hessian: `hessian_eigenvalues` top-1 and top-10 (default stopping),
  LeNet (`models.build("lenet", input_shape=(28, 28, 1))`, 431,220 weights),
  4096 random images with random labels, inference mode.
* lenet_hessian_steps: the top 10 with `--lanczos_steps` Lanczos steps (default 40), same network and data.
* hvp_profile: one product's cost by method and chunk size, its first call (tracing) apart, interleaved
  with gradients over one chunk and over the same chunks.
* lenet_trace: `hessian_trace` (`--trace_probes` Hutchinson probes), same network and data.
* lenet_diffusion: `diffusion_spectrum(k=100)` with the default route
  ("auto"), same network and data, memory budget `--max_memory`.
* allcnn_diffusion: `diffusion_spectrum(k=10)` on All-CNN-BN
  (`models.build("allcnn_bn")`, 1,372,254 weights), 1024 random 32x32x3
  images.
* pyhessian: PyHessian (power iteration with deflation, `tol=1e-3`;
  Hutchinson trace) and ours on the same LeNet and the same 512 examples, the
  torch network built from the Keras weights (checked: the same logits); the
  row is skipped with a message when `torch` or `pyhessian` cannot be
  imported (they are not dependencies of this project). With
  `--separate_pyhessian` the row computes ours and the reference only, and
  PyHessian runs as row `pyhessian_torch` (`--measure pyhessian_torch
  --pyhessian_n N --pyhessian_parts top1,trace,top10`: each result printed as
  a `PARTIAL` line when done, so that a long run can be stopped); a
  `pyhessian_torch` row over the `lenet_hessian` row's examples is compared
  with that row's Lanczos values.

The Hessian rows count each product against a full-batch gradient of the same
data (and chunks) timed just before it under the same load ("paired"), plus the
solver's own time over the median gradient, and store each product's ratio;
`--chunk_size` sets the chunks of both.

Costs are counted in gradient evaluations: the time of the computation over
the median time of one full-batch gradient of the same data (the Keras
gradient, a `tf.function` over the same chunks, timed in the same process
before and after); the machine may be loaded by other jobs, so the counts,
measured in the same run, are what to compare, not the wall times.
"""

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

from bench.analysis_scale_report import report  # noqa: E402
from bench.report import write_section  # noqa: E402
from bench.timing import timed  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "analysis_scale.json")
ROWS = ("hvp_profile", "lenet_hessian", "lenet_hessian_steps", "lenet_trace", "lenet_diffusion", "allcnn_diffusion",
        "pyhessian")


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(name, n, seed=0):
    import keras

    from control_opt import models

    rng = np.random.default_rng(seed)
    shape = (28, 28, 1) if name == "lenet" else (32, 32, 3)
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = models.build(name, input_shape=shape, num_classes=10, seed=seed)
    return model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), x, y


def _gradient_timer(model, loss, x, y, chunk_size):
    """Seconds of one full-batch gradient (median of 3 after a warm-up), chunked as the analysis is."""
    from control_opt.analysis._problem import ModelProblem

    problem = ModelProblem(model, loss, x, y, chunk_size)
    problem.gradient()

    def timed():
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            problem.gradient()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return timed


class _PairedCost:
    """An operator that times one full-batch gradient before each product, so that each product's cost is
    counted against a gradient timed under the same load: cost = sum_i t(product_i) / t(gradient_i), plus the
    time outside the products (the solver's own work) over the median gradient."""

    def __init__(self, op, gradient):
        self.op, self.dim, self.gradient = op, op.dim, gradient
        self.ratios, self.gradient_times, self.product_seconds, self.gradient_seconds = [], [], 0.0, 0.0

    def matvec(self, v):
        t0 = time.perf_counter()
        self.gradient()
        t1 = time.perf_counter()
        out = self.op.matvec(v)
        t2 = time.perf_counter()
        self.ratios.append((t2 - t1) / (t1 - t0))
        self.gradient_times.append(t1 - t0)
        self.product_seconds += t2 - t1
        self.gradient_seconds += t1 - t0
        return out

    def cost(self, total_seconds):
        outside = max(0.0, total_seconds - self.gradient_seconds - self.product_seconds)
        return float(sum(self.ratios) + outside / statistics.median(self.gradient_times))

    def record(self, total_seconds):
        """The cost and what it is made of: each product's ratio (the first one traces the product's function),
        each paired gradient's seconds, and the solver's own time outside the products, in gradients."""
        outside = max(0.0, total_seconds - self.gradient_seconds - self.product_seconds)
        return dict(paired_gradients=self.cost(total_seconds), ratios=self.ratios,
                    gradient_times=self.gradient_times, first_ratio=self.ratios[0],
                    median_ratio_after_first=float(np.median(self.ratios[1:])) if len(self.ratios) > 1 else None,
                    outside_gradients=outside / statistics.median(self.gradient_times))


def measure(row, args):
    from control_opt import analysis

    out = dict(row=row)
    if row in ("lenet_hessian", "lenet_hessian_steps"):
        from control_opt.analysis._problem import ModelProblem

        model, loss, x, y = _setup("lenet", args.n)
        timer = _gradient_timer(model, loss, x, y, args.chunk_size)
        gradient = ModelProblem(model, loss, x, y, args.chunk_size).gradient
        g0 = timer()
        runs = ((1, None), (10, None)) if row == "lenet_hessian" else ((10, args.lanczos_steps),)
        for k, steps in runs:
            # a fresh operator per run (its first product traces, as a call with the model does)
            op = _PairedCost(analysis.hessian_operator(model, loss, x, y, chunk_size=args.chunk_size), gradient)
            eig, seconds = timed(lambda: analysis.hessian_eigenvalues(op, k=k, seed=0, num_steps=steps))
            out[f"top{k}"] = dict(values=eig.top.tolist(), residuals=eig.top_residuals.tolist(),
                                  steps=eig.num_steps, steps_given=steps, seconds=seconds - op.gradient_seconds,
                                  **op.record(seconds))
        g1 = timer()
        out["hvp_method"] = inspect.signature(analysis.hessian_eigenvalues).parameters["method"].default
        out["chunk_size"] = args.chunk_size
    elif row == "lenet_trace":
        model, loss, x, y = _setup("lenet", args.n)
        timer = _gradient_timer(model, loss, x, y, None)
        g0 = timer()
        trace, seconds = timed(lambda: analysis.hessian_trace(model, loss, x, y, num_probes=args.trace_probes,
                                                               seed=0))
        g1 = timer()
        out["trace"] = dict(value=trace.trace, stderr=trace.stderr, probes=trace.num_probes, seconds=seconds)
    elif row in ("lenet_diffusion", "allcnn_diffusion"):
        name, k = ("lenet", 100) if row == "lenet_diffusion" else ("allcnn_bn", 10)
        model, loss, x, y = _setup(name, args.n)
        timer = _gradient_timer(model, loss, x, y, 256)
        g0 = timer()
        spec, seconds = timed(lambda: analysis.diffusion_spectrum(model, loss, x, y, k=k, seed=0,
                                                                   max_memory=args.max_memory, verbose=True))
        g1 = timer()
        out.update(k=k, method=spec.method, values=spec.eigenvalues.tolist(),
                   residuals=None if spec.residuals is None else np.asarray(spec.residuals).tolist(),
                   trace=spec.trace, rank=spec.rank, products=spec.num_products, passes=spec.num_passes,
                   seconds=seconds)
    elif row == "pyhessian":
        out.update(_pyhessian(args))
        return out
    elif row == "pyhessian_torch":
        return dict(out, **_pyhessian_torch(args))
    elif row == "hvp_profile":
        out.update(_hvp_profile(args))
        return out
    else:
        raise ValueError(row)
    out.update(dim=int(sum(np.prod(v.shape) for v in model.trainable_variables)), n=args.n,
               gradient_seconds=[g0, g1], peak_mb=_peak_mb())
    return out


def _hvp_profile(args, repeats=5):
    """Where a product's time goes: one gradient, a Hessian-vector product by each method and chunk size (flat
    float64 in and out), and the float64 NumPy round trip alone, interleaved; medians of per-round ratios to the
    gradient. Each product's first call (which traces its function) is timed on its own, against the median
    gradient."""
    from control_opt import analysis
    from control_opt.analysis._problem import ModelProblem

    model, loss, x, y = _setup("lenet", args.n)
    problem = ModelProblem(model, loss, x, y)
    v = np.random.default_rng(0).standard_normal(problem.dim)
    variants = {"HVP forward_over_reverse": ("forward_over_reverse", None),
                "HVP double_backward": ("double_backward", None)}
    for chunk in (1024, 512):
        if chunk < args.n:
            variants[f"HVP double_backward, chunks of {chunk}"] = ("double_backward", chunk)
    ops = {name: analysis.hessian_operator(model, loss, x, y, method=m, chunk_size=c)
           for name, (m, c) in variants.items()}
    chunked = {c: ModelProblem(model, loss, x, y, c) for c in (1024, 512) if c < args.n}
    cases = {"gradient": problem.gradient}
    cases.update({f"gradient, chunks of {c}": p.gradient for c, p in chunked.items()})
    cases.update({name: (lambda op=op: op.matvec(v)) for name, op in ops.items()})
    cases["float64 round trip"] = lambda: problem.flatten(problem.unflatten(v)).numpy().astype(np.float64)
    for name, fn in cases.items():
        if name.startswith("gradient"):
            fn()
    first = {name: timed(fn)[1] for name, fn in cases.items() if not name.startswith("gradient")}
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn)[1])
    grad = np.array(times["gradient"])
    return dict(n=args.n, repeats=repeats, seconds={k: float(np.median(t)) for k, t in times.items()},
                ratio={k: float(np.median(np.array(t) / grad)) for k, t in times.items()},
                first_call_ratio={k: float(t / np.median(grad)) for k, t in first.items()})


def _pyhessian(args):
    from control_opt import analysis

    n = args.pyhessian_n
    model, loss, x, y = _setup("lenet", n)
    timer = _gradient_timer(model, loss, x, y, None)
    out = dict(n=n, dim=int(sum(np.prod(v.shape) for v in model.trainable_variables)))
    g0 = timer()
    ours = {}
    for k in (1, 10):
        eig, seconds = timed(lambda: analysis.hessian_eigenvalues(model, loss, x, y, k=k, seed=0))
        ours[f"top{k}"] = dict(values=eig.top.tolist(), seconds=seconds, steps=eig.num_steps)
    trace, seconds = timed(lambda: analysis.hessian_trace(model, loss, x, y, num_probes=args.trace_probes, seed=0))
    ours["trace"] = dict(value=trace.trace, stderr=trace.stderr, seconds=seconds, probes=trace.num_probes)
    # reference: a long Lanczos run with explicit residuals, and an independent Hutchinson run with more probes
    ref, seconds = timed(lambda: analysis.hessian_eigenvalues(model, loss, x, y, k=10, seed=1, num_steps=90,
                                                               return_eigenvectors=True))
    reference = dict(values=ref.top.tolist(), residuals=ref.top_residuals.tolist(), steps=90, seconds=seconds)
    ref_trace = analysis.hessian_trace(model, loss, x, y, num_probes=args.reference_trace_probes, seed=12345)
    reference["trace"] = dict(value=ref_trace.trace, stderr=ref_trace.stderr, probes=ref_trace.num_probes)
    g1 = timer()
    out.update(ours=ours, reference=reference, gradient_seconds=[g0, g1], peak_mb=_peak_mb())
    if not args.separate_pyhessian:
        out["pyhessian"] = _pyhessian_torch(args)
    return out


def _pyhessian_torch(args):
    """PyHessian's parts (`--pyhessian_parts`, each printed when done) on the same network and data
    (bench/pyhessian_lenet.py); skipped with a message when torch or pyhessian cannot be imported."""
    try:
        from bench import pyhessian_lenet
    except ImportError as error:
        return dict(skipped=f"torch/pyhessian not importable ({error}); PyHessian rows skipped")
    model, _, x, y = _setup("lenet", args.pyhessian_n)
    return dict(pyhessian_lenet.run(model, x, y, args.pyhessian_parts.split(",")), n=args.pyhessian_n)


def _run_row(row, args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "bench.bench_analysis_scale", "--measure", row, "--n",
           str(1024 if row.startswith("allcnn") else 4096), "--max_memory", str(args.max_memory),
           "--pyhessian_n", str(args.pyhessian_n), "--trace_probes", str(args.trace_probes),
           "--reference_trace_probes", str(args.reference_trace_probes), "--lanczos_steps", str(args.lanczos_steps)]
    if args.chunk_size:
        cmd += ["--chunk_size", str(args.chunk_size)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=6 * 3600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--max_memory", type=float, default=6e9)
    parser.add_argument("--pyhessian_n", type=int, default=512)
    parser.add_argument("--trace_probes", type=int, default=50)
    parser.add_argument("--reference_trace_probes", type=int, default=100)
    parser.add_argument("--lanczos_steps", type=int, default=40,
                        help="row lenet_hessian_steps: the Hessian's top 10 with this many Lanczos steps")
    parser.add_argument("--pyhessian_parts", default="top1,trace,top10", help="PyHessian's computations, in order")
    parser.add_argument("--separate_pyhessian", action="store_true",
                        help="row pyhessian computes ours and the reference only; PyHessian is row pyhessian_torch")
    parser.add_argument("--results", default=RESULTS,
                        help="JSON file of the rows (comma-separated files are merged for --report)")
    parser.add_argument("--notes", default=None, help="a markdown file appended to the section")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=4096, help=argparse.SUPPRESS)
    parser.add_argument("--chunk_size", type=int, default=None,
                        help="rows lenet_hessian*: examples per chunk of the products and the paired gradients")
    args = parser.parse_args()
    if args.measure:
        from absl import logging

        logging.set_verbosity(logging.INFO)
        load = os.getloadavg()[0]
        result = measure(args.measure, args)
        result.update(load_before=load, load_after=os.getloadavg()[0])  # 1-minute load averages
        print("RESULT " + json.dumps(result), flush=True)
        return
    records = {}
    for path in args.results.split(","):
        if os.path.exists(path):
            with open(path) as f:
                records.update(json.load(f))
    if not args.report:
        path = args.results.split(",")[0]
        for row in args.rows.split(","):
            records[row] = _run_row(row, args)
            print(json.dumps(records[row]), flush=True)
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path + ".tmp", "w") as f:
                json.dump(records, f, indent=1)
            os.replace(path + ".tmp", path)
    md = report(records)
    if args.notes:
        with open(args.notes) as f:
            md += "\n\n" + f.read().strip()
    if not args.no_write:
        write_section("analysis_scale", md)
    print(md)


if __name__ == "__main__":
    main()
