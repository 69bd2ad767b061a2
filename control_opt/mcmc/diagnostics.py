"""Convergence diagnostics of MCMC output: the effective sample size.

References:
  A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Buerkner.
  Rank-normalization, folding, and localization: an improved R-hat for
  assessing convergence of MCMC. Bayesian Analysis 16(2), 2021, eqs. 9-11
  (multi-chain autocorrelation, Geyer's initial monotone sequence).
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["effective_sample_size"]


def effective_sample_size(samples):
    """ESS per coordinate of `samples` `[num_results, num_chains, ...]`, pooled over chains (graph-safe).

    Vehtari et al. 2021, eqs. 9-11 (without rank normalization), as in Stan:
    with `N` results per chain, `M` chains, `W` the mean within-chain variance,
    `B/N` the variance of the chain means and `var+ = (N-1)/N W + B/N`,

        rho_t = 1 - (W - mean_m acov_m(t)) / var+           (acov biased, by FFT)
        P_k   = rho_{2k} + rho_{2k+1}, truncated before the first P_k <= 0 and
                made non-increasing (Geyer's initial monotone sequence)
        tau   = max(-1 + 2 sum_k P_k, 1 / log10(N M)),      ESS = N M / tau

    so `0 < ESS <= N M log10(N M)` whatever the chains do (tfp's cross-chain
    estimate can turn negative when chains disagree).
    """
    x = tf.convert_to_tensor(samples)
    n, m = x.shape[0], x.shape[1]
    if n is None or m is None or n < 2:
        raise ValueError(f"`samples` needs static [num_results >= 2, num_chains, ...] axes, got {x.shape}.")
    dtype = x.dtype
    chain_mean = tf.reduce_mean(x, axis=0)
    centred = x - chain_mean
    chain_var = tf.reduce_sum(tf.square(centred), axis=0) / (n - 1)
    within = tf.reduce_mean(chain_var, axis=0)
    between_over_n = tf.math.reduce_variance(chain_mean, axis=0) * m / (m - 1) if m > 1 else tf.zeros_like(within)
    var_plus = (n - 1) / n * within + between_over_n
    # Biased autocovariance of each chain by FFT, lags on the last axis.
    rank = x.shape.rank
    perm = list(range(1, rank)) + [0]
    series = tf.transpose(centred, perm)
    n_fft = 2 ** int(math.ceil(math.log2(2 * n)))
    spectrum = tf.signal.rfft(series, [n_fft])
    acov = tf.signal.irfft(spectrum * tf.math.conj(spectrum), [n_fft])[..., :n] / n
    mean_acov = tf.reduce_mean(acov, axis=0)  # [..., n]
    rho = 1.0 - tf.math.divide_no_nan(within[..., tf.newaxis] - mean_acov, var_plus[..., tf.newaxis])
    pairs = n // 2
    pair_sums = tf.reduce_sum(tf.reshape(rho[..., : 2 * pairs], tf.concat([tf.shape(rho)[:-1], [pairs, 2]], 0)), -1)
    positive = tf.math.cumprod(tf.cast(pair_sums > 0, dtype), axis=-1)  # 1 up to the first non-positive pair
    monotone = -tf.transpose(
        tf.scan(tf.maximum, tf.transpose(-pair_sums, [rank - 2] + list(range(rank - 2)))),
        list(range(1, rank - 1)) + [0],
    )  # running minimum over k
    tau = -1.0 + 2.0 * tf.reduce_sum(positive * monotone, axis=-1)
    total = float(n * m)
    tau = tf.maximum(tau, tf.cast(1.0 / math.log10(total), dtype) if total > 1 else tf.ones_like(tau))
    return total / tau
