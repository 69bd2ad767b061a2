"""How far each departure of `Parle`'s default rule from the authors' code moves the trajectory.

    python -m bench.bench_parle_departures [--outer 20] [--langevin_steps 25] [--write]

The float64 NumPy transcription of the code (tests/distribute/parle_code.py;
`Parle(authors_code=True)` equals it to 1e-15 and `Parle()` equals it with
all five departures to 1e-15, tests/distribute/test_replica_options.py) runs
on 2 replicas, a tanh MLP (6 -> 16 -> 2, random teacher labels, 8 examples per
replica per step), Parle's defaults (eta = eta' = 0.1, m = m' = 0.9, L = 25,
gamma0 = 0.01, rho0 = 0.01 L n = 0.5, scoping 1e-3, beta1 = 0.75, caps 1 and
10). For each departure, alone (the code with that one place in the library's
form) and all together (the library's default): the largest difference of the
replicas' anchors from the code's after `--outer` outer steps, next to how
far the code's anchors moved. A trajectory measure, not an accuracy one.
"""

import argparse
import sys

import numpy as np

from bench.report import machine_line, markdown_table, write_section
from tests.distribute import parle_code


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outer", type=int, default=20)
    parser.add_argument("--langevin_steps", type=int, default=25)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    L, n = args.langevin_steps, 2
    rng = np.random.default_rng(0)
    steps = L * args.outer
    x = rng.normal(size=(steps * 8 * n, 6))
    y = (np.tanh(x @ rng.normal(size=(6, 3))) @ rng.normal(size=(3,)) > 0).astype(int)
    init = [rng.normal(size=(6, 16)) * 0.4, np.zeros(16), rng.normal(size=(16, 2)) * 0.25, np.zeros(2)]

    def shard(step, replica):
        start = (step * n + replica) * 8
        return x[start:start + 8], y[start:start + 8]

    hyper = dict(steps=steps, L=L, learning_rate=0.1, langevin_learning_rate=0.1, momentum=0.9,
                 langevin_momentum=0.9, gamma=0.01, rho=0.01 * L * n, scoping=1e-3, gamma_max=1.0, rho_max=10.0,
                 mean_decay=0.75)
    params = [[p.copy() for p in init] for _ in range(n)]
    code = parle_code.parle(params, shard, **hyper)
    moved = max(float(np.abs(c - p).max()) for c, p in zip(code[0], init))
    rows = []
    for name in (*parle_code.DEPARTURES, "all five (the library's default)"):
        departures = parle_code.DEPARTURES if name.startswith("all") else (name,)
        other = parle_code.parle(params, shard, departures=departures, **hyper)
        diff = max(float(np.abs(p - q).max()) for a, b in zip(code, other) for p, q in zip(a, b))
        rows.append([name, f"{diff:.3g}", f"{diff / moved:.3g}"])
    table = markdown_table(["departure (alone)", "largest anchor difference from the code",
                            "relative to the code's largest move"], rows)
    command = "python -m bench.bench_parle_departures " + " ".join(sys.argv[1:])
    text = ("## Parle: each departure of the default rule from the authors' code "
            "(`bench/bench_parle_departures.py`)\n\n"
            f"Command: `{command}`. {machine_line()} Float64 NumPy transcription of the code, 2 replicas, tanh MLP "
            f"6-16-2, 8 examples per replica per step, Parle's defaults (L = {L}), {args.outer} outer steps; the "
            f"code's anchors moved up to {moved:.3g} from the start. Trajectory difference, not accuracy.\n\n"
            f"{table}\n")
    print(text)
    if args.write:
        write_section("parle_departures", text)


if __name__ == "__main__":
    main()
