r"""Diagnostics of SGD as variational inference for a finished run of `experiments.train`.

    python -m experiments.train --optimizer=sgd --workdir=runs/sgd
    python -m experiments.analyze --workdir=runs/sgd
    python -m experiments.analyze --workdir=runs/sgd --diffusion_examples=1000 --hessian_examples=0

Reads the run's checkpoint.keras (for an anchored optimizer, the anchor; for
Elastic-SGD / Parle on several replicas, mirrored or multi-worker, the center),
config.json (model and data set) and, when present, snapshots.npz (weight
snapshots of `experiments.training.snapshots.WeightSnapshots`), and writes into
the run directory:

* analysis.json: the diffusion matrix D (spectrum, trace, isotropy, numerical rank
  with its tolerance), the Hessian (top eigenvalues with residuals, SLQ density,
  Hutchinson trace with standard error, near-zero fraction), and with snapshots
  the trajectory's top-2 PC projection and stochastic-area rate with its
  standard error;
* diffusion_spectrum.png, hessian_density.png, trajectory.png.

The flags are `experiments.analysis_run.AnalysisConfig`'s fields (plus
--workdir); the logic lives in `experiments.analysis_run.analyze_run`, which
notebooks and tests call directly. Importing this module defines no flags.

Exit status: 0 on success, 2 when the run directory, its checkpoint or its
config is missing (the message names the file).
"""

import sys

from absl import app, flags

from experiments import config_flags
from experiments.analysis_run import AnalysisConfig, analyze_run

__all__ = ["define_flags", "main"]

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> list[str]:
    """Defines --workdir and one flag per AnalysisConfig field on `flag_values`; returns their names."""
    flags.DEFINE_string("workdir", None, "Run directory of experiments.train to analyse (required).",
                        flag_values=flag_values)
    flags.mark_flag_as_required("workdir", flag_values=flag_values)
    return ["workdir", *config_flags.define_config_flags(AnalysisConfig, flag_values)]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_flags.config_from_flags(AnalysisConfig, FLAGS)
    try:
        result = analyze_run(FLAGS.workdir, config)
    except (FileNotFoundError, MemoryError) as e:  # a missing file, or no analysis route fits in memory
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    d, h, t = result["diffusion"], result["hessian"], result["trajectory"]
    print(f"D: rank {d['rank']} / {d['dim']} (fraction {d['rank_fraction']:.4g}, tolerance {d['rank_tolerance']:.3g}, "
          f"N = {d['num_examples']}); Hessian: top {h['top_eigenvalue']:.4g}, trace {h['trace']:.4g} "
          f"+- {h['trace_stderr']:.2g}, near-zero fraction {h['near_zero_fraction']:.3f}", flush=True)
    if t is not None:
        print(f"trajectory: area rate {t['area_rate']:.3g} +- {t['area_stderr']:.2g} per step (z = {t['area_z']:.2f})",
              flush=True)
    print(f"wrote {FLAGS.workdir}/analysis.json", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
