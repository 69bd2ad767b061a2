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

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
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


def _grads(seconds, record):
    return seconds / statistics.mean(record["gradient_seconds"])


def _gradient_range(record):
    """The gradient's seconds timed before / after the computation (their spread is the load's)."""
    g0, g1 = record["gradient_seconds"]
    return f"{g0:.1f} / {g1:.1f}"


def _rel(values, reference):
    values, reference = np.asarray(values, float), np.asarray(reference, float)[: len(values)]
    return float(np.max(np.abs(values - reference) / np.abs(reference)))


def _hessian_label(r, t):
    stop = t.get("stop_label") or ("default stop" if t.get("steps_given") is None else f"{t['steps_given']} steps given")
    chunk = r.get("chunk_size")  # rows from before this field existed were all over one chunk
    chunks = f"chunks of {chunk}" if chunk else f"one chunk of {r['n']}"
    return f"Lanczos, {stop}, {r.get('hvp_method', 'default')} HVP, {chunks}"


def report(records):
    rows = []
    for key in sorted(key for key in records if key.startswith("lenet_hessian")):
        r = records[key]
        for k in (1, 10):
            if f"top{k}" not in r:
                continue
            t = r[f"top{k}"]
            cost = (f"{t['paired_gradients']:.1f} paired ({_grads(t['seconds'], r):.0f} unpaired)"
                    if "paired_gradients" in t else f"{_grads(t['seconds'], r):.0f}")
            if "first_ratio" in t:
                cost += (f"; first product {t['first_ratio']:.2f}, the others' median "
                         f"{t['median_ratio_after_first']:.2f}, solver {t['outside_gradients']:.1f}")
            rows.append([f"LeNet ({r['dim']:,})", r["n"], f"Hessian top-{k} ({_hessian_label(r, t)})",
                         f"{t['steps']} products", cost, _gradient_range(r), f"{t['seconds']:.0f}",
                         f"{max(t['residuals']) / t['values'][0]:.1e} (Lanczos estimate)", f"{r['peak_mb']:.0f}"])
    for key, label in (("lenet_diffusion", "LeNet"), ("allcnn_diffusion", "All-CNN-BN")):
        if key in records:
            r = records[key]
            residual = "exact (eigh)" if r["residuals"] is None else f"{max(r['residuals']) / r['values'][0]:.1e}"
            rows.append([f"{label} ({r['dim']:,})", r["n"], f"D top-{r['k']} ({r['method']} route, auto)",
                         f"{r['products']} products, {r['passes']} Jacobian passes",
                         f"{_grads(r['seconds'], r):.0f}", _gradient_range(r), f"{r['seconds']:.0f}", residual,
                         f"{r['peak_mb']:.0f}"])
    md = ("## Analysis at the papers' scale (control_opt.analysis, issue 21)\n\n"
          "Command: `python -m bench.bench_analysis_scale` (rows `lenet_hessian`, `lenet_hessian_steps`, "
          "`hvp_profile`, `lenet_trace`, `lenet_diffusion`, `allcnn_diffusion`, `pyhessian`, `pyhessian_torch`; "
          f"the runs are in the notes below). {machine_line()} CPU only. Random images with random labels, "
          "float32, inference mode. Cost = the computation's time over the time of one full-batch gradient of "
          "the same data in the same process (median of 3, before and after, averaged). **The machine was "
          "loaded by other jobs during these runs (the load of each run is in the notes below): the wall times are inflated "
          "several-fold and only the gradient counts, measured in the same run, compare.** Peak = maxrss of the "
          "row's own process (TensorFlow included). Residual = the largest residual over the top eigenvalue "
          "(relative); the eigenvalue is within it of an eigenvalue of the matrix.\n\n"
          + markdown_table(["network (weights)", "examples", "computation", "products", "cost [gradients]",
                            "gradient before / after [s]", "wall [s]", "max relative residual", "peak RSS [MB]"], rows))
    if "hvp_profile" in records:
        r = records["hvp_profile"]
        first = r.get("first_call_ratio", {})
        md += (f"\n\nWhere a Hessian-vector product's time goes (LeNet, {r['n']} examples; row `hvp_profile`, "
               f"{r['repeats']} interleaved rounds after each product's first call, median of per-round ratios to "
               f"one gradient over the {r['n']} examples in one chunk; the first call, which traces the product's "
               "function, over the median gradient):\n\n"
               + markdown_table(["computation", "median [s]", "gradients", "first call [gradients]"],
                                [[k, f"{r['seconds'][k]:.3f}", f"{r['ratio'][k]:.2f}",
                                  f"{first[k]:.2f}" if k in first else ""] for k in r["seconds"]]))
    if "pyhessian" in records:
        r = records["pyhessian"]
        ref = r["reference"]
        prow = []
        for k in (1, 10):
            o = r["ours"][f"top{k}"]
            prow.append([f"top-{k} eigenvalues", "ours (Lanczos, default stop)", f"{o['values'][0]:.6g}",
                         f"{_rel(o['values'], ref['values']):.1e}", f"{_grads(o['seconds'], r):.0f}",
                         f"{o['seconds']:.0f}"])
        o = r["ours"]["trace"]
        prow.append(["trace", f"ours (Hutchinson, {o['probes']} probes)", f"{o['value']:.5g} ± {o['stderr']:.2g}",
                     f"{abs(o['value'] - ref['trace']['value']) / abs(ref['trace']['value']):.1e}",
                     f"{_grads(o['seconds'], r):.0f}", f"{o['seconds']:.0f}"])
        p = r.get("pyhessian") or next((records[key] for key in sorted(records) if key.startswith("pyhessian_torch")
                                         and records[key].get("n") == r["n"]), dict(skipped="no PyHessian row"))
        if "skipped" in p:
            note = f"PyHessian: {p['skipped']}."
        else:
            for k in (1, 10):
                if f"top{k}" not in p:
                    continue
                t = p[f"top{k}"]
                prow.append([f"top-{k} eigenvalues", "PyHessian (power iteration, tol 1e-3)", f"{t['values'][0]:.6g}",
                             f"{_rel(sorted(t['values'], reverse=True), ref['values']):.1e}",
                             f"{t['seconds'] / p['torch_gradient_seconds']:.0f} torch", f"{t['seconds']:.0f}"])
            t = p.get("trace", dict(value=float("nan"), stderr=float("nan"), probes=0, seconds=float("nan")))
            prow.append(["trace", f"PyHessian (Hutchinson, {t['probes']} probes, tol 1e-3)",
                         f"{t['value']:.5g} ± {t['stderr']:.2g}",
                         f"{abs(t['value'] - ref['trace']['value']) / abs(ref['trace']['value']):.1e}",
                         f"{t['seconds'] / p['torch_gradient_seconds']:.0f} torch", f"{t['seconds']:.0f}"])
            note = (f"The torch network is built from the Keras weights inside the bench (largest logit difference "
                    f"{p['logits_max_abs_diff']:.1e}); one torch gradient of the same data took "
                    f"{p['torch_gradient_seconds']:.2f} s against {statistics.mean(r['gradient_seconds']):.2f} s "
                    "for Keras; each tool's cost is counted in its own gradient evaluations of the same data "
                    "(Keras for ours, torch for PyHessian). PyHessian's top-n values are listed in the order it "
                    "returns them; agreement sorts them first.")
        md += ("\n\nSide by side with PyHessian (LeNet, the same " + f"{r['n']} examples and weights). Reference: "
               f"our Lanczos with {ref['steps']} steps and explicit residuals (largest "
               f"{max(ref['residuals']) / ref['values'][0]:.1e} relative; top eigenvalue {ref['values'][0]:.6g}) "
               f"and an independent Hutchinson run of {ref['trace']['probes']} probes "
               f"({ref['trace']['value']:.5g} ± {ref['trace']['stderr']:.2g}). Agreement = the largest relative "
               "difference to the reference over the eigenvalues given (for the trace: to the reference's "
               "mean).\n\n"
               + markdown_table(["quantity", "tool", "value (top)", "agreement with reference",
                                 "cost [own gradients]", "wall [s]"], prow) + "\n\n" + note)
    md += _pyhessian_at_scale(records)
    return md


def _torch_cost(part, p):
    """PyHessian's cost in torch gradients: its products (counted) times one product's cost in gradients
    (measured paired, so that a change of load cancels), or else its seconds over one gradient's."""
    if "products" in part and "product_over_gradient" in p:
        return f"{part['products'] * p['product_over_gradient']:.0f} torch ({part['products']} products)"
    return f"{part['seconds'] / part.get('torch_gradient_seconds', p['torch_gradient_seconds']):.0f} torch"


def _pyhessian_at_scale(records):
    """PyHessian over the Hessian row's examples, against that row's Lanczos values (the reference: each value
    within its stated residual of an eigenvalue), and its trace beside ours (row `lenet_trace`)."""
    h = records.get("lenet_hessian")
    ours_trace = records.get("lenet_trace")
    # The reference: the most accurate top-10 run over these examples (the smallest residual of the 10th value).
    candidates = [records[key]["top10"] for key in ("lenet_hessian", "lenet_hessian_50", "lenet_hessian_steps")
                  if key in records and h is not None and records[key].get("n") == h["n"]]
    reference = min(candidates, key=lambda top: top["residuals"][-1]) if candidates else None
    rows = []
    for key in sorted(records):
        p = records[key]
        if not key.startswith("pyhessian_torch") or h is None or p.get("n") != h["n"] or "skipped" in p:
            continue
        for k in (1, 10):
            o = reference
            if k == 1:
                rows.append([f"top-{k} eigenvalue", "ours (Lanczos, default stop; row lenet_hessian)",
                             f"{h['top1']['values'][0]:.6g}", f"{_rel(h['top1']['values'], o['values']):.1e}",
                             f"{h['top1']['paired_gradients']:.0f} paired", f"{h['top1']['seconds']:.0f}"])
            if k == 10:
                rows.append(["top-10 eigenvalues", "ours (Lanczos, default stop; row lenet_hessian)",
                             f"{h['top10']['values'][0]:.6g}", f"{_rel(h['top10']['values'], o['values']):.1e}",
                             f"{h['top10']['paired_gradients']:.0f} paired", f"{h['top10']['seconds']:.0f}"])
            if f"top{k}" in p:
                t = p[f"top{k}"]
                rows.append([f"top-{k} eigenvalue{'s' if k > 1 else ''}", "PyHessian (power iteration, tol 1e-3)",
                             f"{t['values'][0]:.6g}", f"{_rel(sorted(t['values'], reverse=True), o['values']):.1e}",
                             _torch_cost(t, p), f"{t['seconds']:.0f}"])
            elif k == 10:
                rows.append(["top-10 eigenvalues", "PyHessian (power iteration, tol 1e-3)", "not run to the end",
                             "", "", ""])
        if "trace" in p:
            t = p["trace"]
            if ours_trace is not None and ours_trace.get("n") == p["n"]:
                o = ours_trace["trace"]
                z = (o["value"] - t["value"]) / np.hypot(o["stderr"], t["stderr"])
                rows.append(["trace", f"ours (Hutchinson, {o['probes']} probes; row lenet_trace)",
                             f"{o['value']:.5g} ± {o['stderr']:.2g}", f"difference {z:+.2f} combined SE",
                             f"{_grads(o['seconds'], ours_trace):.0f}", f"{o['seconds']:.0f}"])
            rows.append(["trace", f"PyHessian (Hutchinson, {t['probes']} probes, tol 1e-3)",
                         f"{t['value']:.5g} ± {t['stderr']:.2g}", "", _torch_cost(t, p), f"{t['seconds']:.0f}"])
    if not rows:
        return ""
    return (f"\n\nSide by side with PyHessian over the Hessian row's {h['n']} examples (the same weights). Reference "
            f"for the eigenvalues: our most accurate top-10 run ({reference['steps']} Lanczos steps; values 1-9 with "
            f"residual estimates at most {max(reference['residuals'][:9]) / reference['values'][0]:.0e} relative, "
            f"the 10th {reference['residuals'][9] / reference['values'][0]:.1e}); agreement = the largest relative "
            "difference to it over the values given. There is no independent trace reference at this N: the two "
            "Hutchinson estimates are compared in combined standard errors. PyHessian's costs are in torch gradients "
            "of the same data: where its products were counted, their number times one product's cost in "
            "gradients (measured paired before it started), a figure that does not depend on the load; else its "
            "wall time over one gradient's, timed once before it started.\n\n"
            + markdown_table(["quantity", "tool", "value (top)", "agreement with reference", "cost [own gradients]",
                              "wall [s]"], rows))


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
