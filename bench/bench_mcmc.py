"""Effective samples per second of the local-Gibbs-measure samplers, and the error of grad F_gamma.

    python -m bench.bench_mcmc [--quick]

Target: the local Gibbs measure `p(w'; w) ∝ exp(-beta [f(w') + gamma/2 |w - w'|^2])`
(Entropy-SGD, Chaudhari et al. 2017) of

  (a) a 100-dimensional anisotropic quadratic `f = 1/2 w^T A w` (eigenvalues of
      A from 1 to 100, rotated), whose Gibbs measure is the Gaussian
      N((A + gamma I)^-1 gamma w, (beta (A + gamma I))^-1);
  (b) the weights of the MNIST-1D authors' MLP (15,210 weights) on 1000 MNIST-1D
      examples (generated locally by the `mnist1d` package), anchored at
      weights trained for a few epochs with Adam.

Samplers (`control_opt.mcmc.estimators.LocalGibbsSampler`, the machinery of
`local_entropy_gradient`; 4 chains): our
`StochasticGradientLangevin` (full-batch gradients in (a), minibatches of 100 in
(b); uncalibrated), and tfp's MALA, HMC and NUTS with dual-averaging step-size
adaptation during burn-in. Each sampler is one `tf.function`, called once to
trace and warm up and then timed on a second call (burn-in plus `n` recorded
steps; time per step = wall time / steps). ESS is the library's pooled
multi-chain estimate (`control_opt.mcmc.diagnostics.effective_sample_size`,
Vehtari et al. 2021 with Geyer's initial monotone sequence; positive by
construction, at most N M log10(N M)), summarized by its median and minimum
over coordinates. (tfp's cross-chain `effective_sample_size`, used before,
reported a negative minimum for NUTS on the MLP.)

Part (c): the error `|g_hat - g| / |g|` of the estimated local-entropy gradient
`g_hat = gamma (w - <w'>)` against the closed form on (a), as a function of the
number of samples per chain (prefixes of one run).

The table goes to BENCHMARKS.md, section "mcmc".
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import tensorflow as tf

from bench.report import machine_line, markdown_table, write_section
from control_opt.mcmc.estimators import LocalGibbsSampler

KERNELS = ("sgld", "mala", "hmc", "nuts")


def quadratic_problem(dim=100, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    a = (q * np.geomspace(1.0, 100.0, dim)) @ q.T
    a_tf = tf.constant(a, tf.float32)
    anchor = rng.normal(size=dim).astype(np.float32)

    def loss(w):
        return 0.5 * tf.reduce_sum(w * tf.linalg.matvec(a_tf, w))

    return a, loss, anchor


def mlp_problem(num_examples=1000, seed=0):
    """The MNIST-1D authors' MLP (`control_opt.models.build("mnist1d_mlp")`), briefly
    trained with Adam so that the anchor sits in a basin, on `num_examples` examples."""
    import keras

    from control_opt import datasets, models

    data = datasets.load("mnist1d")
    x = np.asarray(data.x_train[:num_examples], np.float32)
    y = np.asarray(data.y_train[:num_examples], np.int64)
    model = models.build("mnist1d_mlp", seed=seed)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    model.fit(x, y, batch_size=100, epochs=5, verbose=0)
    return model, loss, x, y


def timed_estimate(loss_fn, w, n, kernel, *, num_chains=4, **kwargs):
    """One compiled sampler run twice (seeds differ): the first call traces, the second is timed.

    Time per step counts burn-in and recorded steps alike (one step of all chains).
    """
    sampler = LocalGibbsSampler(loss_fn, w, kernel=kernel, **kwargs)
    sample = tf.function(lambda seed: sampler.sample(n, num_chains, seed=seed), autograph=False)
    tf.nest.map_structure(lambda t: t.numpy(), sample(tf.constant([9, 9])))  # trace + warm up
    start = time.perf_counter()
    out = sample(tf.constant([1, 2]))
    tf.nest.map_structure(lambda t: t.numpy(), out)
    seconds_per_step = (time.perf_counter() - start) / (n + sampler.num_burnin_steps)
    est = sampler.summarize(*out, return_samples=True)
    ess = np.concatenate([np.ravel(e.numpy()) for e in tf.nest.flatten(est.effective_sample_size)])
    rhat = np.concatenate([np.ravel(r.numpy()) for r in tf.nest.flatten(est.r_hat)])
    per_step = ess / n
    return {
        "kernel": kernel,
        "ms_per_step": 1e3 * seconds_per_step,
        "ess_median_per_s": float(np.median(per_step) / seconds_per_step),
        "ess_min_per_s": float(np.min(per_step) / seconds_per_step),
        "ess_median": float(np.median(ess)),
        "r_hat_max": float(np.max(rhat)),
        "acceptance": None if est.acceptance_rate is None else float(est.acceptance_rate),
        "step_size": float(est.step_size),
        "estimate": est,
        "results": n,
    }


def row(problem, r, gradient_error=None):
    acceptance = "-" if r["acceptance"] is None else f"{r['acceptance']:.2f}"
    error = "-" if gradient_error is None else f"{gradient_error:.3f}"
    return [problem, r["kernel"], r["results"], f"{r['ms_per_step']:.2f}", f"{r['ess_median']:.0f}",
            f"{r['ess_median_per_s']:.0f}", f"{r['ess_min_per_s']:.1f}", f"{r['r_hat_max']:.3f}", acceptance,
            f"{r['step_size']:.2e}", error]


def run(quick=False):
    scale = 0.25 if quick else 1.0
    gamma, beta = 1.0, 10.0
    a, q_loss, anchor = quadratic_problem()
    true_mean = np.linalg.solve(a + gamma * np.eye(len(a)), gamma * anchor)
    true_gradient = gamma * (anchor - true_mean)
    rows, details = [], {}

    # (a) 100-dim quadratic. SGLD's step: eta' (lambda_max + gamma) = 0.5, eta' = h beta / 2.
    sgld_step = 2.0 * (0.5 / (100.0 + gamma)) / beta
    counts = {"sgld": 4000, "mala": 4000, "hmc": 400, "nuts": 150}
    for kernel in KERNELS:
        kwargs = dict(gamma=gamma, beta=beta, num_burnin_steps=int((150 if kernel == "nuts" else 300) * scale))
        if kernel == "sgld":
            kwargs["step_size"] = sgld_step
        if kernel == "nuts":
            kwargs["max_tree_depth"] = 6
        r = timed_estimate(q_loss, tf.constant(anchor), max(20, int(counts[kernel] * scale)), kernel, **kwargs)
        error = np.linalg.norm(r["estimate"].gradient.numpy() - true_gradient) / np.linalg.norm(true_gradient)
        rows.append(row("quadratic d=100", r, error))
        details[("quadratic", kernel)] = r

    # (c) error of grad F_gamma vs samples per chain, from prefixes of the runs above.
    error_rows = []
    for kernel in KERNELS:
        samples = details[("quadratic", kernel)]["estimate"].samples.numpy()  # [results, chains, d]
        for n in (10, 30, 100, 300, 1000, 3000):
            if n > samples.shape[0]:
                continue
            g_hat = gamma * (anchor - samples[:n].mean(axis=(0, 1)))
            error_rows.append((kernel, n, np.linalg.norm(g_hat - true_gradient) / np.linalg.norm(true_gradient)))

    # (b) MLP on MNIST-1D.
    from control_opt._internal.keras_adaptor import keras_loss_fn, minibatch_fn, model_weights

    model, loss, x, y = mlp_problem()
    m_loss = keras_loss_fn(model, loss, x, y)
    weights = model_weights(model)
    m_gamma, m_beta = 1.0, 1000.0
    counts = {"sgld": 1000, "mala": 1000, "hmc": 200, "nuts": 60}
    for kernel in KERNELS:
        kwargs = dict(gamma=m_gamma, beta=m_beta, num_burnin_steps=int((50 if kernel == "nuts" else 200) * scale))
        if kernel == "sgld":
            kwargs.update(step_size=1e-4, batch_fn=minibatch_fn(x, y, 100))  # eta' = h beta / 2 = 0.05
        if kernel == "nuts":
            kwargs["max_tree_depth"] = 5
        r = timed_estimate(m_loss, weights, max(10, int(counts[kernel] * scale)), kernel, **kwargs)
        rows.append(row(f"MNIST-1D MLP ({sum(w.shape.num_elements() for w in weights)} weights)", r))
    return rows, error_rows, sum(w.shape.num_elements() for w in weights)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the samples (a smoke run)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows, error_rows, num_weights = run(quick=args.quick)
    header = ["target", "kernel", "results/chain", "ms/step (4 chains)", "ESS (median)", "ESS/s (median)",
              "ESS/s (min)", "R-hat max", "accept", "step size", "grad F rel. error"]
    kernels = sorted({k for k, _, _ in error_rows}, key=KERNELS.index)
    counts = sorted({n for _, n, _ in error_rows})
    lookup = {(k, n): e for k, n, e in error_rows}
    error_table = markdown_table(
        ["samples/chain (x4 chains)", *kernels],
        [[n, *(f"{lookup[(k, n)]:.3f}" if (k, n) in lookup else "-" for k in kernels)] for n in counts],
    )
    command = "python -m bench.bench_mcmc" + (" --quick" if args.quick else "")
    md = "\n\n".join([
        "## MCMC on the local Gibbs measure (`bench/bench_mcmc.py`)",
        f"`{command}`. {machine_line()} Total wall time {time.perf_counter() - start:.0f} s. "
        "All numbers from this one run.",
        "Target `exp(-beta [f(w') + gamma/2 |w - w'|^2])`: (a) `f = 1/2 w^T A w`, d = 100, eig(A) in [1, 100], "
        f"gamma = 1, beta = 10; (b) cross-entropy of the MNIST-1D authors' MLP (`models.build(\"mnist1d_mlp\")`, {num_weights} weights) on 1000 MNIST-1D "
        "examples, gamma = 1, beta = 1000, anchored at Adam-trained weights (SGLD: minibatches of 100). "
        "4 chains each; each sampler is one tf.function, traced and warmed up by a first call and timed on a second "
        "(burn-in + n steps; ms/step = wall time / steps; ESS/s = ESS / (n steps x ms/step)); "
        "ESS pooled over chains (Vehtari et al. 2021, `control_opt.mcmc.diagnostics.effective_sample_size`; always "
        "positive, <= N M log10(N M); an earlier version of this table used tfp's cross-chain ESS, which gave a "
        "negative minimum for NUTS on the MLP). `mala` is tfp HMC with one leapfrog step (exactly MALA, adaptable step). "
        "SGLD is uncalibrated: its ESS counts samples of a biased chain (for (a) its mean is exact, "
        "its covariance inflated by 1/(1 - eta' lambda/2)).",
        markdown_table(header, rows),
        "Relative error `|g_hat - g| / |g|` of `g_hat = gamma (w - <w'>)` against the closed form "
        "`gamma A (A + gamma I)^-1 w` on (a), from the first n samples of each chain of the runs above:",
        error_table,
    ])
    print(md)
    write_section("mcmc", md)


if __name__ == "__main__":
    sys.exit(main())
