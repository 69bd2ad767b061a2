"""Estimating the local-entropy gradient by MCMC, with diagnostics.

    grad F_gamma(w) = gamma (w - <w'>),    <w'> = E[w'] under
    p(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])

(Chaudhari et al., Entropy-SGD [1], eq. 7; the viscous-HJ control of Deep
Relaxation [2] with `gamma = 1/t`). `local_entropy_gradient` runs
`num_chains` independent chains of a chosen kernel on that measure and
reports the estimate with its effective sample size (`effective_sample_size`:
the rank-free pooled multi-chain ESS of Vehtari et al. [5], always positive),
the potential scale reduction R-hat (Gelman-Rubin,
`tfp.mcmc.potential_scale_reduction`), for the Metropolis-adjusted kernels the
acceptance rate and, for the unadjusted SGLD, a discretization-bias diagnostic
(the estimate repeated at half the step; docs/math.md section 3).

The sampling runs in one `tf.function` per static configuration (loss, kernel,
chain counts, structure of `w`), cached: repeated calls with new values of
`w`, `gamma`, `beta`, `step_size` or `seed` do not retrace.

Kernels: "sgld" (`StochasticGradientLangevin`, minibatches through
`batch_fn`; not calibrated), "mala", "hmc", "nuts" (tfp's, on the full-data
target, with the step size adapted by dual averaging during burn-in; "mala"
is tfp's HMC with one leapfrog step, which is MALA exactly [4] and, unlike
`tfp.mcmc.MetropolisAdjustedLangevinAlgorithm`, can have its step size
adapted), or a callable `kernel(target_log_prob_fn) -> TransitionKernel`.

References:
  [1] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017. https://arxiv.org/abs/1611.01838
  [2] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
  [3] M. Welling, Y. W. Teh. Bayesian learning via stochastic gradient
      Langevin dynamics. ICML 2011.
  [4] R. M. Neal. MCMC using Hamiltonian dynamics. Handbook of Markov Chain
      Monte Carlo, 2011, section 5.2 (one leapfrog step is Langevin/MALA).
  [5] A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Buerkner.
      Rank-normalization, folding, and localization: an improved R-hat for
      assessing convergence of MCMC. Bayesian Analysis 16(2), 2021, eqs. 9-11
      (multi-chain autocorrelation, Geyer's initial monotone sequence).
"""

from __future__ import annotations

import collections
import warnings
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from control_opt._internal import checks, sampling, structures
from control_opt.mcmc.diagnostics import effective_sample_size
from control_opt.mcmc.gibbs import local_gibbs_log_prob
from control_opt.formulas.local_entropy import local_entropy_control
from control_opt.mcmc.sgld_kernel import StochasticGradientLangevin, curvature_step_size

__all__ = ["KERNELS", "LocalEntropyEstimate", "LocalGibbsSampler", "effective_sample_size", "local_entropy_gradient"]

# Traces of the cached sampling functions (a Python side effect of tracing), for tests.
TRACE_COUNT = collections.Counter()
_CACHE = structures.TraceCache()

KERNELS = ("sgld", "mala", "hmc", "nuts")

# Dual-averaging targets: the optimal acceptance of MALA (Roberts and Rosenthal 1998)
# and tfp's usual choice for HMC/NUTS.
_TARGET_ACCEPT = {"mala": 0.574, "hmc": 0.75, "nuts": 0.75}


class LocalEntropyEstimate(NamedTuple):
    """What `local_entropy_gradient` returns; every state-shaped field has `w`'s structure.

    Attributes:
      mean: `<w'>`, the sample mean over results and chains.
      gradient: `grad F_gamma(w) = gamma (w - <w'>)`.
      effective_sample_size: ESS of each coordinate, pooled over chains.
      standard_error: Monte Carlo standard error of `mean`, `sd / sqrt(ESS)`.
      r_hat: potential scale reduction of each coordinate (None for one chain).
      acceptance_rate: fraction of accepted proposals, a scalar (None for
        kernels without an accept step, e.g. SGLD).
      step_size: the (final, adapted) step size of the kernel.
      samples: with `return_samples`, shape `[num_results, num_chains, ...]`
        per part; else None.
      bias: SGLD only (else None): the Richardson estimate `2 (mean_h - mean_{h/2})`
        of the O(h) discretization bias of `mean`, from a second set of
        chains run at half the step. Read the estimate as
        `mean +- (standard_error + |bias|)`; a `bias` beyond `bias_standard_error`
        says the step is too large.
      bias_standard_error: Monte Carlo standard error of `bias`,
        `2 sqrt(se_h^2 + se_{h/2}^2)` (None where `bias` is None).
    """

    mean: Any
    gradient: Any
    effective_sample_size: Any
    standard_error: Any
    r_hat: Any
    acceptance_rate: Any
    step_size: Any
    samples: Any
    bias: Any = None
    bias_standard_error: Any = None


def _find_field(results, name):
    """`results.name`, looking through wrapped kernels' `inner_results`."""
    while results is not None:
        if hasattr(results, name):
            return getattr(results, name)
        results = getattr(results, "inner_results", None)
    return None


def _final_step_size(results, default, dtype):
    """The adapted step size (dual averaging's `new_step_size`), else the kernel's own."""
    value = _find_field(results, "new_step_size")
    if value is None:
        value = _find_field(_find_field(results, "accepted_results"), "step_size")
    if value is None:
        value = _find_field(results, "step_size")
    if value is None:
        value = default
    return tf.cast(tf.nest.flatten(value)[0], dtype)


def local_entropy_gradient(
    loss_fn,
    w,
    *,
    gamma,
    beta,
    kernel="sgld",
    num_results=500,
    num_burnin_steps=200,
    num_chains=4,
    seed,
    step_size=None,
    num_leapfrog_steps=8,
    max_tree_depth=6,
    batch_fn=None,
    adapt_step_size=True,
    estimate_bias=True,
    return_samples=False,
    jit_compile=False,
):
    """Estimates `<w'>` and `grad F_gamma(w) = gamma (w - <w'>)` by MCMC on the local Gibbs measure.

    Chains start at `w + xi / sqrt(beta gamma)` (over-dispersed for the
    coupling Gaussian, so R-hat is meaningful), run `num_burnin_steps`
    discarded steps (during which MALA/HMC/NUTS adapt their step size) and
    then `num_results` recorded steps.

    Example:
      >>> A = tf.constant([1.0, 4.0])
      >>> f = lambda w: 0.5 * tf.reduce_sum(A * w ** 2)
      >>> est = local_entropy_gradient(f, tf.ones(2), gamma=1.0, beta=10.0, kernel="hmc", seed=[0, 1])
      >>> est.gradient  # closed form: gamma A w / (A + gamma) = [0.5, 0.8]

    Args:
      loss_fn: `f` for one weight structure, returning a floating-point scalar
        (an integer dtype is an error: it has no gradient); with `batch_fn`
        (SGLD only) called as `loss_fn(w', batch)`.
      w: the anchor, a tensor or nested structure of tensors.
      gamma: scope `> 0`.
      beta: inverse temperature `> 0`.
      kernel: "sgld", "mala", "hmc", "nuts", or a callable
        `kernel(target_log_prob_fn) -> tfp.mcmc.TransitionKernel` (called
        with the function of `local_gibbs_log_prob`; its state is the flat
        list of `w`'s parts, or one tensor for a single-tensor `w`).
      num_results: recorded steps per chain.
      num_burnin_steps: discarded steps per chain.
      num_chains: independent chains (>= 2 for R-hat).
      seed: a stateless seed.
      step_size: the kernel's (initial) step size; default for SGLD
        `curvature_step_size`: `eta' (lambda_max + gamma) = 0.2` with
        `lambda_max` the largest curvature of `f` at `w` (power iteration on
        Hessian-vector products) and `h = 2 eta' / beta`; for the others the
        leapfrog step `0.5 / sqrt(beta (gamma + 1))` (MALA's `h` is its square).
      num_leapfrog_steps: HMC's leapfrog steps.
      max_tree_depth: NUTS's tree depth limit (at most `2^depth` gradients per step).
      batch_fn: optional `batch_fn(seed) -> batch` for SGLD's minibatches.
      adapt_step_size: dual-averaging adaptation for MALA/HMC/NUTS over the
        first 80% of burn-in.
      estimate_bias: SGLD only: also run the chains at half the step and
        report the bias diagnostic `bias` (doubles the cost).
      return_samples: keep the samples in the result.
      jit_compile: compile the sampling with XLA.

    Returns:
      A `LocalEntropyEstimate`.

    Raises:
      ValueError: a bad argument (named), NaN in `w`, a `loss_fn` that cannot
        be evaluated at `w`, returns a non-float, or is (or has a gradient)
        NaN/Inf at `w`, or a run that produced NaN/Inf samples.
    """
    num_results = checks.check_int("num_results", num_results, 2)
    num_chains = checks.check_int("num_chains", num_chains, 1)
    num_burnin_steps = checks.check_int("num_burnin_steps", num_burnin_steps, 0)
    if seed is None:
        raise ValueError("`seed` must be given (explicit stateless seeds).")
    checks.check_positive("gamma", gamma, tensor=True)
    checks.check_positive("beta", beta, tensor=True)
    if step_size is not None:
        checks.check_positive("step_size", step_size, tensor=True)
    _check_kernel(kernel, batch_fn)
    w = structures.check_finite(structures.as_tensors(w, "w"), "w")
    probe_batch = () if batch_fn is None else (batch_fn(tf.constant([0, 0], tf.int32)),)
    structures.evaluate_loss_at(loss_fn, w, "loss_fn", "w", *probe_batch, check_gradient=True)
    dtype = tf.nest.flatten(w)[0].dtype
    bias_run = bool(estimate_bias) and kernel == "sgld"
    if step_size is None:
        step_size = _default_step(loss_fn, w, gamma, beta, kernel, probe_batch)
    settings = dict(
        kernel=kernel,
        num_burnin_steps=num_burnin_steps,
        num_leapfrog_steps=num_leapfrog_steps,
        max_tree_depth=max_tree_depth,
        batch_fn=batch_fn,
        adapt_step_size=adapt_step_size,
    )

    def build(loss_ref):
        def run(w, gamma, beta, step_size, seed):
            TRACE_COUNT["local_entropy_gradient"] += 1
            sampler = LocalGibbsSampler(loss_ref(), w, gamma=gamma, beta=beta, step_size=step_size, **settings)
            main_seed, half_seed = tf.unstack(sampling.split_seed(seed, 2, "bias_check"))
            out = sampler.sample(num_results, num_chains, seed=main_seed if bias_run else seed)
            if not bias_run:
                return out, ()
            half = LocalGibbsSampler(loss_ref(), w, gamma=gamma, beta=beta, step_size=step_size / 2.0, **settings)
            return out, half.sample(num_results, num_chains, seed=half_seed)[0]

        if not tf.executing_eagerly():
            return run
        return tf.function(run, jit_compile=jit_compile, autograph=False)

    key = (
        tuple(sorted((k, v) for k, v in settings.items() if k != "kernel")),
        kernel,
        num_results,
        num_chains,
        bias_run,
        bool(jit_compile),
    )
    if tf.executing_eagerly():
        run = _CACHE.get(loss_fn, key, build)
    else:
        run = build(lambda: loss_fn)
    as_value = lambda v: tf.cast(v, dtype)
    out, half_samples = run(w, as_value(gamma), as_value(beta), as_value(step_size), tfp.random.sanitize_seed(seed))
    single = len(tf.nest.flatten(w)) == 1 and not tf.nest.is_nested(w)
    estimate = _summarize(w, gamma, single, *out, return_samples=return_samples)
    if bias_run:
        half = _summarize(w, gamma, single, half_samples, (), out[2])
        bias = tf.nest.map_structure(lambda m, m_half: 2.0 * (m - m_half), estimate.mean, half.mean)
        bias_se = tf.nest.map_structure(
            lambda se, se_half: 2.0 * tf.sqrt(tf.square(se) + tf.square(se_half)),
            estimate.standard_error,
            half.standard_error,
        )
        estimate = estimate._replace(bias=bias, bias_standard_error=bias_se)
    return estimate


def _check_kernel(kernel, batch_fn):
    if not (callable(kernel) or kernel in KERNELS):
        raise ValueError(f"`kernel` must be one of {KERNELS} or a callable building a TransitionKernel, got {kernel!r}.")
    if batch_fn is not None and kernel != "sgld":
        raise ValueError("`batch_fn` is for the 'sgld' kernel; calibrated kernels need the full-data target.")
    checks.check_callable("batch_fn", batch_fn, "batch_fn(seed) -> batch")


def _default_step(loss_fn, w, gamma, beta, kernel, probe_batch):
    """SGLD: `curvature_step_size` at the anchor; the others: leapfrog step `0.5 / sqrt(beta (gamma + 1))`."""
    if kernel == "sgld":
        return curvature_step_size(loss_fn, w, beta, gamma, *probe_batch)
    return 0.5 * tf.math.rsqrt(tf.cast(beta, tf.float64) * (tf.cast(gamma, tf.float64) + 1.0))


class LocalGibbsSampler:
    """Chains on the local Gibbs measure of `loss_fn` around `w`: the pieces of `local_entropy_gradient`.

    Builds the transition kernel once (`.kernel`), draws over-dispersed
    initial states, runs `tfp.mcmc.sample_chain` (`sample`, graph-safe: wrap it
    in one `tf.function` and call it repeatedly, e.g. to time it) and turns the
    samples into a `LocalEntropyEstimate` (`summarize`). Arguments as in
    `local_entropy_gradient`; `num_burnin_steps` is fixed here because the
    step-size adaptation is scheduled over it.
    """

    def __init__(
        self,
        loss_fn,
        w,
        *,
        gamma,
        beta,
        kernel="sgld",
        num_burnin_steps=200,
        step_size=None,
        num_leapfrog_steps=8,
        max_tree_depth=6,
        batch_fn=None,
        adapt_step_size=True,
    ):
        checks.check_positive("gamma", gamma, tensor=True)
        checks.check_positive("beta", beta, tensor=True)
        self.num_burnin_steps = checks.check_int("num_burnin_steps", num_burnin_steps, 0)
        if step_size is not None:
            checks.check_positive("step_size", step_size, tensor=True)
        _check_kernel(kernel, batch_fn)
        self.gamma, self.beta = gamma, beta
        self.w = w = structures.check_finite(structures.as_tensors(w, "w"), "w")
        self._flat_w = flat_w = tf.nest.flatten(w)
        self._single = single = len(flat_w) == 1 and not tf.nest.is_nested(w)
        # tfp kernels see the flat list of parts (their list convention); `loss_fn` sees `w`'s structure.
        anchor = flat_w[0] if single else flat_w

        def flat_loss(state, *args):
            parts = [state] if single else list(state)
            return loss_fn(tf.nest.pack_sequence_as(w, parts), *args)

        probe_batch = () if batch_fn is None else (batch_fn(tf.constant([0, 0], tf.int32)),)
        structures.evaluate_loss_at(loss_fn, w, "loss_fn", "w", *probe_batch, check_gradient=True)
        self._dtype = dtype = flat_w[0].dtype
        if step_size is None:
            step_size = _default_step(loss_fn, w, gamma, beta, kernel, probe_batch)

        if kernel == "sgld":
            h = tf.cast(step_size, dtype)
            transition = StochasticGradientLangevin(
                flat_loss, anchor, step_size=h, beta=beta, gamma=gamma, batch_fn=batch_fn, validate_args=False
            )
            self._initial_step = h
        else:
            target = local_gibbs_log_prob(flat_loss, anchor, gamma=gamma, beta=beta)
            self._initial_step = initial_step = tf.cast(step_size, dtype)
            if callable(kernel):
                transition = kernel(target)
                if not isinstance(transition, tfp.mcmc.TransitionKernel):
                    raise ValueError(f"`kernel` must return a tfp.mcmc.TransitionKernel, got {type(transition).__name__}.")
            elif kernel == "mala":
                # HMC with one leapfrog step of size eps is exactly MALA with step eps^2 (Neal 2011,
                # section 5.2), and unlike tfp's MALA kernel it keeps its step size in its results,
                # which dual-averaging adaptation needs.
                transition = tfp.mcmc.HamiltonianMonteCarlo(target, step_size=initial_step, num_leapfrog_steps=1)
            elif kernel == "hmc":
                transition = tfp.mcmc.HamiltonianMonteCarlo(
                    target, step_size=initial_step,
                    num_leapfrog_steps=checks.check_int("num_leapfrog_steps", num_leapfrog_steps, 1),
                )
            else:
                transition = tfp.mcmc.NoUTurnSampler(
                    target, step_size=initial_step, max_tree_depth=checks.check_int("max_tree_depth", max_tree_depth, 1)
                )
            if not callable(kernel) and adapt_step_size and self.num_burnin_steps > 0:
                transition = tfp.mcmc.DualAveragingStepSizeAdaptation(
                    transition,
                    num_adaptation_steps=max(1, int(0.8 * self.num_burnin_steps)),
                    target_accept_prob=tf.constant(_TARGET_ACCEPT[kernel], dtype),
                )
        self.kernel = transition

    def initial_state(self, num_chains, seed):
        """`num_chains` states `w + xi / sqrt(beta gamma)` in tfp's convention (flat list, or one tensor)."""
        dtype = self._dtype
        spread = tf.math.rsqrt(tf.cast(self.beta, dtype) * tf.cast(self.gamma, dtype))
        batched = [tf.tile(a[tf.newaxis], [num_chains] + [1] * a.shape.rank) for a in self._flat_w]
        noise = sampling.standard_normal_like(batched, seed, "chain_start")
        start = [a + tf.cast(spread, a.dtype) * x for a, x in zip(batched, noise)]
        return start[0] if self._single else start

    def sample(self, num_results, num_chains, *, seed):
        """`(samples, accepted, final_step_size)` of `num_chains` chains after burn-in (graph-safe)."""
        init_seed, chain_seed = tf.unstack(sampling.split_seed(seed, 2, "local_entropy_gradient"))

        def trace_fn(_, results):
            accepted = _find_field(results, "is_accepted")
            return () if accepted is None else tf.cast(accepted, self._dtype)

        with warnings.catch_warnings():
            # SGLD is uncalibrated by design; tfp warns about it on every run.
            warnings.filterwarnings("ignore", message="supplied `TransitionKernel` is not calibrated")
            samples, accepted, final = tfp.mcmc.sample_chain(
                num_results,
                self.initial_state(num_chains, init_seed),
                kernel=self.kernel,
                num_burnin_steps=self.num_burnin_steps,
                trace_fn=trace_fn,
                return_final_kernel_results=True,
                seed=chain_seed,
            )
        return samples, accepted, _final_step_size(final, self._initial_step, self._dtype)

    def summarize(self, samples, accepted, final_step_size, *, return_samples=False):
        """The `LocalEntropyEstimate` of samples `[num_results, num_chains, ...]` (per part)."""
        return _summarize(self.w, self.gamma, self._single, samples, accepted, final_step_size,
                          return_samples=return_samples)


def _summarize(w, gamma, single, samples, accepted, final_step_size, *, return_samples=False):
    """The `LocalEntropyEstimate` of samples `[num_results, num_chains, ...]` (per part of `w`)."""
    sample_parts = [samples] if single else list(samples)
    if tf.executing_eagerly() and not all(np.all(np.isfinite(s.numpy())) for s in sample_parts):
        raise ValueError(
            "the chains produced NaN or Inf although `loss_fn` and its gradient are finite at `w`: the sampler "
            "diverged (reduce `step_size`) or `loss_fn` is not finite where the chains went."
        )
    num_chains = sample_parts[0].shape[1]
    means, ess, stderr, rhat = [], [], [], []
    for part in sample_parts:
        means.append(tf.reduce_mean(part, axis=[0, 1]))
        n_eff = effective_sample_size(part)
        ess.append(n_eff)
        sd = tf.math.reduce_std(part, axis=[0, 1])
        stderr.append(sd / tf.sqrt(tf.cast(n_eff, sd.dtype)))
        if num_chains > 1:
            rhat.append(tfp.mcmc.potential_scale_reduction(part, independent_chain_ndims=1))
    pack = lambda parts: tf.nest.pack_sequence_as(w, parts)
    mean = pack(means)
    gradient = tf.nest.map_structure(
        lambda anchor_part, m: local_entropy_control(anchor_part, m, tf.cast(gamma, anchor_part.dtype)), w, mean
    )
    acceptance = tf.reduce_mean(accepted) if tf.nest.flatten(accepted) else None
    return LocalEntropyEstimate(
        mean=mean,
        gradient=gradient,
        effective_sample_size=pack(ess),
        standard_error=pack(stderr),
        r_hat=pack(rhat) if num_chains > 1 else None,
        acceptance_rate=acceptance,
        step_size=final_step_size,
        samples=pack(sample_parts) if return_samples else None,
    )
