"""Step-by-step trace of the default experiment's Entropy-SGD chain: where a blow-up starts, in which loop.

    python -m bench.trace_chain --seed 1 --first 2780 --last 2800 [--hessian] [--set langevin_nesterov=True]

Replays the run of `python -m experiments.train --seed=S` (same config, data order, network,
optimizer, op determinism; one Keras step per minibatch) up to step `--last` and prints, for each
step in [--first, --last], the outer step k and inner step l, the minibatch loss at the probe (before
the step), and the norms summed over the variables of the probe's distance to the anchor |w' - w|,
of the Langevin velocity |v'| and of the anchor |w|. A blow-up of the inner loop shows as the loss
and |v'| growing within an outer step with |w| fixed; an outer-loop one as |w| jumping at l = L - 1.

With --hessian, also the top eigenvalue lambda of the minibatch loss's Hessian at the probe (power
iteration, 30 double-backward Hessian-vector products) and eta' lambda against the stability limits
of the inner momentum recursion on a quadratic: Nesterov 2(1+m')/(1+2m'), heavy ball 2(1+m').
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from experiments.training import inputs, registry, session  # noqa: E402
from experiments.training.config import resolve_config  # noqa: E402
from experiments.training.data import train_batches  # noqa: E402
from experiments.training.options import parse_options  # noqa: E402
from experiments.training.schedules import learning_rate_schedule  # noqa: E402


def top_eigenvalue(model, loss_fn, x, y, iterations=30):
    """Largest Hessian eigenvalue of `loss_fn(y, model(x))` at the model's weights (power iteration)."""
    variables = model.trainable_variables
    v = [tf.random.stateless_normal(w.shape, seed=[0, i]) for i, w in enumerate(variables)]
    value = 0.0
    for _ in range(iterations):
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(u * u) for u in v]))
        v = [u / norm for u in v]
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = loss_fn(y, model(x, training=True))
            grads = inner.gradient(loss, variables)
            grad_v = tf.add_n([tf.reduce_sum(g * u) for g, u in zip(grads, v)])
        hv = outer.gradient(grad_v, variables)
        value = float(tf.add_n([tf.reduce_sum(h * u) for h, u in zip(hv, v)]))
        v = hv
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, required=True, help="first step to print")
    parser.add_argument("--last", type=int, required=True, help="last step to print")
    parser.add_argument("--hessian", action="store_true")
    parser.add_argument("--set", default="", help="runner overrides KEY=VALUE,... (e.g. langevin_nesterov=True)")
    args = parser.parse_args()
    config = resolve_config(dict(parse_options(args.set), seed=args.seed, optimizer="entropy_sgd"))
    data = inputs.load_data(config)
    x_train, y_train, _, _ = inputs.examples(config, data)
    steps_per_epoch, _ = session.steps(config, len(x_train))
    schedule = learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch)
    keras.utils.set_random_seed(config.seed)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with session.op_determinism(True):
        optimizer = registry.OPTIMIZERS[config.optimizer].build(config.hyperparameters, schedule, config.seed)
        model = inputs.build_model(config, data)
        session.compile_model(model, optimizer, steps_per_execution=1)
        m = optimizer.langevin_momentum
        print(f"inner loop: eta' {optimizer.langevin_learning_rate}, m' {m}, Nesterov {optimizer.langevin_nesterov}; "
              f"stability on a quadratic: eta' lambda < {2 * (1 + m) / (1 + 2 * m):.3f} (Nesterov), "
              f"< {2 * (1 + m):.2f} (heavy ball)")
        batches = train_batches(x_train, y_train, seed=config.seed, batch_size=config.batch_size, initial_epoch=0,
                                epochs=args.last // steps_per_epoch + 1)
        for step, (x, y) in enumerate(batches):
            shown = step >= args.first
            curvature = top_eigenvalue(model, loss_fn, x, y) if shown and args.hessian else None
            loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
            if shown:
                probe = [v.numpy() for v in model.trainable_variables]
                anchor = [a.numpy() for a in optimizer._anchors]  # pylint: disable=protected-access
                velocity = ([v.numpy() for v in optimizer._langevin_velocities]  # pylint: disable=protected-access
                            if m else [np.zeros(1)])
                k, l = divmod(step, optimizer.langevin_steps)
                line = (f"step {step} (epoch {step // steps_per_epoch + 1}, k {k}, l {l}): loss {loss:.4f}  "
                        f"|w'-w| {sum(np.linalg.norm(p - a) for p, a in zip(probe, anchor)):.3f}  "
                        f"|v'| {sum(np.linalg.norm(v) for v in velocity):.3f}  "
                        f"|w| {sum(np.linalg.norm(a) for a in anchor):.3f}")
                if curvature is not None:
                    line += f"  lambda {curvature:.2f}, eta' lambda {optimizer.langevin_learning_rate * curvature:.2f}"
                print(line, flush=True)
            if step >= args.last:
                break


if __name__ == "__main__":
    main()
