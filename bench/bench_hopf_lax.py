"""Hopf-Lax on a 1-D grid: the O(n) lower envelope against the O(n^2) brute force.

    python -m bench.bench_hopf_lax [--repeats=3] [--brute_max_n=30000] [--max_n=1000000]

Times `control_opt.pde.hopf_lax` (Felzenszwalb-Huttenlocher lower envelope, a
Python loop over the grid plus a vectorized query) and the brute-force oracle
`control_opt.pde.lower_envelope._brute_force` (NumPy, blocks of rows) on the
same random non-convex `f`, median of `--repeats` runs each, in one process;
the brute force only up to `--brute_max_n` points. Fits the exponent `k` of
`time ~ n^k` for both, and writes the table to BENCHMARKS.md (section "hopf_lax").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from bench.report import machine_line, markdown_table, write_section
from control_opt.pde import hopf_lax
from control_opt.pde.lower_envelope import _brute_force

SIZES = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
T = 0.05


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, n)
    return np.sin(25.0 * x) + 0.5 * x**2 + 0.1 * rng.normal(size=n), x


def median_seconds(fns, repeats):
    """Median time of each function, the runs interleaved so that load drifts hit all alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def exponent(ns, seconds):
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def run(repeats, brute_max_n, max_n):
    rows, fast_ns, fast_s, brute_ns, brute_s = [], [], [], [], []
    for n in (n for n in SIZES if n <= max_n):
        f, x = problem(n)
        fns = [lambda: hopf_lax(f, x, T)]
        if n <= brute_max_n:
            fns.append(lambda: _brute_force(f, x, T))
        fast, *brute = median_seconds(fns, repeats)
        fast_ns.append(n)
        fast_s.append(fast)
        if brute:
            (brute,) = brute
            # Same answer, as a guard on what is being timed.
            assert np.allclose(hopf_lax(f, x, T).u, _brute_force(f, x, T)[0], rtol=1e-12, atol=1e-12)
            brute_ns.append(n)
            brute_s.append(brute)
            brute_cells = (f"{brute * 1e3:.2f}", f"{brute / fast:.1f}x")
        else:
            brute_cells = ("not run (O(n^2))", "-")
        rows.append((f"{n:,}", f"{fast * 1e3:.2f}", f"{fast / n * 1e9:.0f}", *brute_cells))
        print(rows[-1], flush=True)
    k_brute = exponent(brute_ns, brute_s) if len(brute_ns) > 1 else None
    # What the brute force would cost at the largest n, from its largest run and n^2.
    extrapolated = brute_s[-1] * (fast_ns[-1] / brute_ns[-1]) ** 2 if brute_ns else None
    return rows, exponent(fast_ns, fast_s), k_brute, (fast_ns[-1], extrapolated)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--brute_max_n", type=int, default=30_000)
    parser.add_argument("--max_n", type=int, default=1_000_000)
    parser.add_argument("--no_write", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args(argv)
    rows, k_fast, k_brute, (n_max, extrapolated) = run(args.repeats, args.brute_max_n, args.max_n)
    command = ("python -m bench.bench_hopf_lax"
               f" --repeats={args.repeats} --brute_max_n={args.brute_max_n} --max_n={args.max_n}")
    table = markdown_table(
        ["n (1-D grid)", "lower envelope O(n) [ms]", "ns / point", "brute force O(n^2) [ms]",
         "brute / O(n)"], rows)
    brute_text = f"{k_brute:.2f}" if k_brute is not None else "n/a"
    md = "\n".join([
        "## Hopf-Lax on a grid: lower envelope vs brute force",
        "",
        f"`{command}`",
        "",
        f"`control_opt.pde.hopf_lax(values, grid, t={T})` on a random non-convex `f` "
        "(sin(25x) + x^2/2 + noise on [-1, 1]), median of "
        f"{args.repeats} runs; the brute force (`lower_envelope._brute_force`, NumPy in blocks "
        f"of rows) runs in the same process up to n = {args.brute_max_n:,} only, and is checked "
        "to give the same `u`.",
        "",
        table,
        "",
        f"Fitted exponent of time ~ n^k (least squares on log-log): lower envelope k = {k_fast:.2f} "
        f"(all n), brute force k = {brute_text} (n <= {args.brute_max_n:,}). "
        "The lower envelope's stack pass is a plain Python loop (the query pass is vectorized), "
        "hence the ~0.5-1 us per point: 10^6 points take about a second. The brute force is "
        "vectorized NumPy but O(n^2)"
        + (f": extrapolated as n^2 from its largest run, n = {n_max:,} would take about "
           f"{extrapolated / 60:.0f} minutes, so it is not run there. " if extrapolated else ". ")
        + "The runs of both methods are interleaved; the machine is shared, so single "
        "timings are noisy, the exponents less so.",
        "",
        machine_line(),
    ])
    if not args.no_write:
        write_section("hopf_lax", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
