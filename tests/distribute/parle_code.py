"""Parle as the authors' code runs it, written independently in float64 NumPy, for the tests.

Read from `parle_mpi.py` (ucla-vision/parle, commit fe665ec, `parle_step`)
and written here in our own notation, n replicas in one process, no MPI,
noise and L2 off (the code has neither). Per replica a and parameter tensor:

    state:  x_a (anchor), x'_a (probe: the model), mu_a, v'_a = 0, v_a = 0, t = 0
    inner step (gradient g at the probe), gamma = min(gamma0 (1+gdot)^(t//L), gamma_max):
        g <- g + gamma (x'_a - x_a) ;  v'_a <- m' v'_a + g ;  x'_a <- x'_a - eta' (g + v'_a)
        mu_a <- beta1 mu_a + (1 - beta1) x'_a ;  t <- t + 1 per parameter tensor
    outer step, after L inner steps, rho = min(rho0 (1+gdot)^(t//L), rho_max):
        xbar = mean_b mu_b
        a_a = (x_a - mu_a) + rho (x_a - xbar) ;  v_a <- m v_a + a_a
        x_a <- x'_a - eta (a_a + v_a) ;  x'_a <- x_a          (mu_a, v'_a run on)

Each of the five places where the library's default rule departs can be
switched to the library's form (`departures`), so that one function gives the
code, the library's default, and every step in between:

    "momentum"  `d = g + m v` (Nesterov) in both loops instead of `d = g + v`
    "coupling"  the coupling `gamma (x' - x)` added after the momentum, outside its buffer
    "restart"   mu_a <- x_a and v'_a <- 0 at every outer step
    "anchor"    the outer step from the anchor `x_a` instead of from the probe
    "scoping"   the exponents k (gamma, inner) and k (rho, outer step k) instead of
                the code's per-tensor counter, (s P) // L and (k + 1) P for inner step s
"""

from __future__ import annotations

import numpy as np

DEPARTURES = ("momentum", "coupling", "restart", "anchor", "scoping")


def mlp_gradients(params, x, y):
    """Gradient of the mean softmax cross-entropy of `Dense(tanh) -> Dense` (Keras' layout)."""
    kernel1, bias1, kernel2, bias2 = params
    hidden = np.tanh(x @ kernel1 + bias1)
    logits = hidden @ kernel2 + bias2
    logits = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    residual = probabilities.copy()
    residual[np.arange(len(y)), y] -= 1.0
    residual /= len(y)
    back = (residual @ kernel2.T) * (1.0 - hidden ** 2)
    return [x.T @ back, back.sum(axis=0), hidden.T @ residual, residual.sum(axis=0)]


def _direction(gradient, velocity, momentum, code_form):
    velocity = momentum * velocity + gradient
    return (gradient + velocity if code_form else gradient + momentum * velocity), velocity


def parle(params, shard, *, steps, L, learning_rate, langevin_learning_rate, momentum, langevin_momentum,
          gamma, rho, scoping, gamma_max, rho_max, mean_decay, departures=(), gradients=mlp_gradients):
    """Run `steps` inner steps on `n = len(params)` replicas; returns their anchors `[n][tensor]`.

    `params[a]`: replica a's initial tensors; `shard(step, a)`: its `(x, y)`.
    `departures`: names from `DEPARTURES` to take in the library's form."""
    unknown = set(departures) - set(DEPARTURES)
    if unknown:
        raise ValueError(f"unknown departures {sorted(unknown)}")
    code_momentum = "momentum" not in departures
    n, tensors = len(params), len(params[0])
    anchors = [[np.array(p, np.float64) for p in replica] for replica in params]
    probes = [[p.copy() for p in replica] for replica in anchors]
    means = [[p.copy() for p in replica] for replica in anchors]
    inner_v = [[np.zeros_like(p) for p in replica] for replica in anchors]
    outer_v = [[np.zeros_like(p) for p in replica] for replica in anchors]
    for s in range(steps):
        k = s // L
        exponent = k if "scoping" in departures else (s * tensors) // L
        g_s = min(gamma * (1.0 + scoping) ** exponent, gamma_max)
        for a in range(n):
            grads = gradients(probes[a], *shard(s, a))
            for i in range(tensors):
                g = grads[i]
                coupling = g_s * (probes[a][i] - anchors[a][i])
                if "coupling" not in departures:
                    g = g + coupling
                d, inner_v[a][i] = _direction(g, inner_v[a][i], langevin_momentum, code_momentum)
                if "coupling" in departures:
                    d = d + coupling
                probes[a][i] = probes[a][i] - langevin_learning_rate * d
                means[a][i] = mean_decay * means[a][i] + (1.0 - mean_decay) * probes[a][i]
        if s % L != L - 1:
            continue
        exponent = k if "scoping" in departures else (k + 1) * tensors
        r_k = min(rho * (1.0 + scoping) ** exponent, rho_max)
        center = [sum(means[a][i] for a in range(n)) / n for i in range(tensors)]
        for a in range(n):
            for i in range(tensors):
                control = (anchors[a][i] - means[a][i]) + r_k * (anchors[a][i] - center[i])
                d, outer_v[a][i] = _direction(control, outer_v[a][i], momentum, code_momentum)
                base = anchors[a][i] if "anchor" in departures else probes[a][i]
                anchors[a][i] = base - learning_rate * d
                probes[a][i] = anchors[a][i].copy()
                if "restart" in departures:
                    means[a][i] = anchors[a][i].copy()
                    inner_v[a][i] = np.zeros_like(anchors[a][i])
    return anchors
