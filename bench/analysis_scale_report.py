"""The BENCHMARKS.md section of bench/bench_analysis_scale.py: its tables, rendered from the rows'
records (bench/results/analysis_scale.json). Costs are in gradient evaluations of the same data: Keras
gradients for ours, torch gradients for PyHessian."""

import statistics

import numpy as np

from bench.report import machine_line, markdown_table

__all__ = ["report"]


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
