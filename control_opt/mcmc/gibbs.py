"""The local Gibbs measure around an anchor, as a `tfp.mcmc` target.

Local entropy (Chaudhari et al., ICLR 2017 [1], eq. 3-4) is the log partition
function of the Gibbs measure coupled to the anchor `w`:

    p(w'; w)  ∝  exp(-beta [ f(w') + gamma/2 |w - w'|^2 ])

    F_gamma(w) = -1/beta log ∫ exp(-beta [f(w') + gamma/2 |w - w'|^2]) dw'
    grad F_gamma(w) = gamma (w - <w'>),       <.> the mean under p(.; w)

(the sign convention of [2]: F_gamma is a smoothed loss, minimized). With
`gamma = 1/t` it is the Cole-Hopf solution `u(w, t)` of the viscous
Hamilton-Jacobi equation `u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u`,
`u(., 0) = f` (Chaudhari et al., Deep Relaxation [2], section 3), so `<w'>`
and hence the control `grad u` are what every sampler in the library
estimates.

`local_gibbs_log_prob` returns `log p` up to its normalizing constant, in the
calling convention of `tfp.mcmc` kernels: `target_log_prob_fn(*state_parts)`
for a list-like state, `target_log_prob_fn(state)` for a single tensor or a
structure passed whole. Leading axes of the state beyond the anchor's shape
are independent chains.

References:
  [1] P. Chaudhari et al. Entropy-SGD: Biasing gradient descent into wide
      valleys. ICLR 2017. https://arxiv.org/abs/1611.01838
  [2] P. Chaudhari, A. Oberman, S. Osher, S. Soatto, G. Carlier. Deep
      relaxation: partial differential equations for optimizing deep neural
      networks. Research in the Mathematical Sciences, 2018.
      https://arxiv.org/abs/1704.04932
"""

from __future__ import annotations

import tensorflow as tf

from control_opt._internal import checks, structures

__all__ = ["local_gibbs_log_prob", "local_gibbs_energy"]


def local_gibbs_energy(loss_fn, anchor, state, *, gamma, batch_ndims, batch=None):
    """`f(w') + gamma/2 |w - w'|^2` for a batch of probes `w'` (`state`).

    Args:
      loss_fn: `f`, written for one weight structure; called as `f(w')` or,
        when `batch` is given, `f(w', batch)`.
      anchor: `w`, broadcastable against `state`.
      state: the probes `w'`, with `batch_ndims` leading batch axes.
      gamma: the scope.
      batch_ndims: number of leading batch (chain) axes of `state`.
      batch: optional minibatch passed to `loss_fn`.
    """
    args = () if batch is None else (batch,)
    loss = structures.batched_loss(loss_fn, state, batch_ndims, *args)
    displacement = tf.nest.map_structure(lambda a, s: a - s, anchor, state)
    return loss + 0.5 * gamma * structures.squared_norm(displacement, batch_ndims)


def local_gibbs_log_prob(loss_fn, anchor, *, gamma, beta, batch=None, anchor_batch_ndims=0):
    """Unnormalized log density of the local Gibbs measure `p(w'; w)`.

        log p(w'; w) = -beta [ f(w') + gamma/2 |w - w'|^2 ] + const

    Any `tfp.mcmc` kernel accepts the result as its `target_log_prob_fn`
    (MALA, HMC, NUTS, ...). For a structure of weights pass the state as the
    flat list `tf.nest.flatten(anchor)` (tfp's list convention; the function is
    then called with one positional argument per part) or as one structure.

    Example:
      >>> A = tf.constant([1.0, 4.0])
      >>> f = lambda w: 0.5 * tf.reduce_sum(A * w ** 2)
      >>> log_prob = local_gibbs_log_prob(f, tf.ones(2), gamma=1.0, beta=10.0)
      >>> kernel = tfp.mcmc.MetropolisAdjustedLangevinAlgorithm(log_prob, step_size=0.1)

    Args:
      loss_fn: `f(w')` for one weight structure, returning a scalar (see
        `control_opt.keras_loss_fn` for a Keras model's loss as a
        function of its weights). When `batch` is given it is called as
        `loss_fn(w', batch)`.
      anchor: `w`, a tensor or nested structure of tensors (the centre of the
        coupling). Its first `anchor_batch_ndims` axes may index independent
        anchors (one per SDE path), in which case the state must carry them
        as its trailing batch axes.
      gamma: the scope, > 0.
      beta: the inverse temperature, > 0 (`beta = 1/eps^2` of Entropy-SGD).
      batch: optional fixed minibatch passed to `loss_fn`.
      anchor_batch_ndims: number of leading batch axes of `anchor`.

    Returns:
      `target_log_prob_fn(*state_parts)` returning `log p` with the state's
      batch shape (one value per chain).

    Raises:
      ValueError: non-positive `gamma` or `beta`, NaN/Inf in `anchor`, or a
        `loss_fn` that cannot be evaluated at (the structure of) `anchor`.
    """
    checks.check_positive("gamma", gamma, tensor=True)
    checks.check_positive("beta", beta, tensor=True)
    anchor = structures.check_finite(structures.as_tensors(anchor, "anchor"), "anchor")
    args = () if batch is None else (batch,)
    if anchor_batch_ndims:
        structures.batched_loss(loss_fn, anchor, anchor_batch_ndims, *args)
    else:
        structures.evaluate_loss_at(loss_fn, anchor, "loss_fn", "anchor", *args)
    event = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape[anchor_batch_ndims:], a.dtype), anchor)
    num_parts = len(tf.nest.flatten(anchor))

    def target_log_prob_fn(*state_parts):
        if len(state_parts) == num_parts:
            state = tf.nest.pack_sequence_as(anchor, list(state_parts))
        elif len(state_parts) == 1:
            state = state_parts[0]
        else:
            raise ValueError(
                f"`state` has {len(state_parts)} parts but `anchor` has {num_parts}; pass "
                "`tf.nest.flatten(anchor)`-shaped parts or one structure like `anchor`."
            )
        state = structures.as_tensors(state, "state")
        batch_ndims = structures.batch_ndims_of(state, event, "state", "anchor")
        if batch_ndims < anchor_batch_ndims:
            raise ValueError(f"`state` must carry the {anchor_batch_ndims} batch axes of `anchor`.")
        energy = local_gibbs_energy(loss_fn, anchor, state, gamma=gamma, batch_ndims=batch_ndims, batch=batch)
        return -beta * energy

    return target_log_prob_fn
