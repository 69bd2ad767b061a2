"""Independent NumPy transcription of docs/math.md section 3 (Entropy-SGD / Entropy-Adam).

Written from the design notes, not from the library, so the golden trajectories
in the tests compare two separate readings of the same algorithm.
"""

import numpy as np


def entropy_sgd_reference(grad_fn, w0, num_steps, *, learning_rate, langevin_steps,
                          langevin_learning_rate, langevin_momentum, langevin_nesterov,
                          gamma, scoping, mean_decay, l2=0.0, momentum=0.0, nesterov=False,
                          adam=None):
    """Returns lists of (probe, anchor) after each gradient evaluation (noise off).

    `adam`: None for the momentum outer step, or (beta_1, beta_2, epsilon).
    """
    w = np.array(w0, dtype=np.float64)
    probe, mean = w.copy(), w.copy()
    inner_v = np.zeros_like(w)
    outer_v = np.zeros_like(w)
    m1, m2 = np.zeros_like(w), np.zeros_like(w)
    k = 0
    history = []
    for t in range(num_steps):
        g = grad_fn(probe) + l2 * probe
        if langevin_momentum:
            inner_v = langevin_momentum * inner_v + g
            d = g + langevin_momentum * inner_v if langevin_nesterov else inner_v
        else:
            d = g
        scope = gamma * (1.0 + scoping) ** k
        d = d - scope * (w - probe)
        probe = probe - langevin_learning_rate * d
        mean = mean_decay * mean + (1.0 - mean_decay) * probe
        if (t + 1) % langevin_steps == 0:
            g = (w - mean) + l2 * w
            if adam is None:
                if momentum:
                    outer_v = momentum * outer_v + g
                    d = g + momentum * outer_v if nesterov else outer_v
                else:
                    d = g
                w = w - learning_rate * d
            else:
                b1, b2, eps = adam
                m1 = b1 * m1 + (1 - b1) * g
                m2 = b2 * m2 + (1 - b2) * g * g
                step = k + 1
                alpha = learning_rate * np.sqrt(1 - b2**step) / (1 - b1**step)
                w = w - alpha * m1 / (np.sqrt(m2) + eps)
            k += 1
            probe, mean = w.copy(), w.copy()
            inner_v = np.zeros_like(w)
        history.append((probe.copy(), w.copy()))
    return history


def hopf_lax_reference(grad_fn, w0, num_steps, *, learning_rate, inner_steps, gamma, scoping,
                       mean_decay, l2=0.0, momentum=0.0, nesterov=False):
    """HopfLaxSGD from docs/math.md section 4 (the authors' fixed-point "FP" variant),
    with the scoping of section 2; returns lists of (probe, anchor) after each
    gradient evaluation.

    Proximal time `t_k = 1 / gamma_k`, `gamma_k = gamma0 (1 + gamma1)^k`. Inner
    step l (0-based) with `g = grad f(w') + wd w'`: `p <- g` at l = 0, else
    `p <- beta1 p + (1 - beta1) g`; then `w' <- w - t_k p`. After the L-th:
    `w <- w - eta d`, d the (Nesterov) momentum direction of `p` (p already
    carries the coupled L2 term: no second one), `k <- k + 1`, `w' <- w`.
    """
    w = np.array(w0, dtype=np.float64)
    probe = w.copy()
    p = np.zeros_like(w)
    outer_v = np.zeros_like(w)
    k = 0
    history = []
    for t in range(num_steps):
        position = t % inner_steps
        g = grad_fn(probe) + l2 * probe
        p = g if position == 0 else mean_decay * p + (1.0 - mean_decay) * g
        t_k = 1.0 / (gamma * (1.0 + scoping) ** k)
        probe = w - t_k * p
        if position == inner_steps - 1:
            if momentum:
                outer_v = momentum * outer_v + p
                d = p + momentum * outer_v if nesterov else outer_v
            else:
                d = p
            w = w - learning_rate * d
            k += 1
            probe = w.copy()
        history.append((probe.copy(), w.copy()))
    return history
