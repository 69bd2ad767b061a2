"""Hutchinson's trace estimator with its standard error.

For probes `z` with `E[z z^T] = I` (Rademacher entries +-1, or Gaussian),
`E[z^T A z] = tr(A)`. With `n` independent probes the estimate is the sample
mean of `z_k^T A z_k` and its standard error the sample standard deviation
over `sqrt(n)`. For Rademacher probes the variance of one sample is
`2 sum_{i != j} A_ij^2` (the diagonal contributes nothing), for Gaussian
probes `2 |A|_F^2`.

References:
  M. F. Hutchinson, A stochastic estimator of the trace of the influence
  matrix for Laplacian smoothing splines (1990); H. Avron and S. Toledo,
  Randomized algorithms for estimating the trace of an implicit symmetric
  positive semi-definite matrix, J. ACM (2011).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from absl import logging

from control_opt._internal import checks
from control_opt.analysis._problem import as_operator

__all__ = ["TraceEstimate", "hutchinson_trace"]


class TraceEstimate(NamedTuple):
    """What `hutchinson_trace` / `hessian_trace` return: `trace` (the mean of
    `samples`), `stderr` (`std(samples, ddof=1) / sqrt(num_probes)`), `samples`
    (`z_k^T A z_k`), `num_probes`, `distribution`."""

    trace: float
    stderr: float
    samples: Any
    num_probes: int
    distribution: str

    def z_score(self, value):
        """`(trace - value) / stderr`: how many standard errors `value` is from the estimate."""
        if self.stderr > 0:
            return (self.trace - float(value)) / self.stderr
        return 0.0 if self.trace == value else np.inf

    def consistent_with(self, value, num_stderr=3.0):
        """Whether `value` lies within `num_stderr` standard errors of the estimate."""
        return bool(abs(self.z_score(value)) <= num_stderr)


def hutchinson_trace(operator, *, num_probes=100, seed=None, distribution="rademacher", verbose=False):
    """Hutchinson estimate of `tr(A)`, `(1/n) sum_k z_k^T A z_k`, with its standard error.

    Args:
      operator: a `LinearOperator`, an object with `matvec`/`dim`, or a dense matrix.
      num_probes: `n >= 2` (the standard error needs two samples).
      seed: integer seed (numpy) for the probes.
      distribution: "rademacher" (lower variance) or "gaussian".
    """
    op = as_operator(operator)
    num_probes = checks.check_int("num_probes", num_probes, 2)
    if distribution not in ("rademacher", "gaussian"):
        raise ValueError(f"`distribution` must be 'rademacher' or 'gaussian', got {distribution!r}.")
    rng = np.random.default_rng(checks.resolve_seed(seed))
    samples = np.empty(num_probes)
    for k in range(num_probes):
        z = rng.choice([-1.0, 1.0], size=op.dim) if distribution == "rademacher" else rng.standard_normal(op.dim)
        samples[k] = z @ op.matvec(z)
        if verbose and (k + 1) % 10 == 0:
            logging.info("Hutchinson probe %d / %d: running mean %.6g", k + 1, num_probes, samples[: k + 1].mean())
    return TraceEstimate(float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(num_probes)), samples,
                         num_probes, distribution)
