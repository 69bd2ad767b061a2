"""What both training loops share around their epochs: steps, determinism, compile, summary, errors.

`fit` (`run.py`) and the multi-worker loop (`distributed_loop.py`) are two
drivers of the same per-epoch callbacks (`callbacks.py`); this module holds the
rest they share, so neither imports the other's private names:

  steps(config, n_train)     steps per effective epoch and per execution
  op_determinism(enabled)    TF op determinism for the run only
  compile_model(...)         the runner's loss and metrics
  summary_of(...) / report(...) summary.json's dict and the final line printed
  finish(...)                curves.png, summary.json and the final line of a run that ran
  TrainingDiverged / raise_if_diverged(...)  the one-line error of a NaN/inf loss, naming the rate that caused it
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from experiments import figures
from experiments.training.schedules import learning_rate_at

__all__ = ["TrainingDiverged", "diverged", "raise_if_diverged", "effective_steps_per_execution", "steps",
           "op_determinism", "compile_model", "summary_of", "report", "finish"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def raise_if_diverged(config, recorder, *, schedule, steps_per_epoch: int, path: str) -> None:
    """Raises `diverged(...)` when the recorder saw a NaN/inf loss (both loops end so)."""
    if recorder.diverged_epoch is not None:
        raise diverged(config, epoch=recorder.diverged_epoch, schedule=schedule, steps_per_epoch=steps_per_epoch,
                       checkpoint_epoch=recorder.checkpoint_epoch, path=path)


def diverged(config, *, epoch: int, schedule, steps_per_epoch: int, checkpoint_epoch, path: str) -> TrainingDiverged:
    """The error of a loss that became NaN/inf during effective epoch `epoch` (0-based).

    It names the step sizes in force: the outer learning rate and, for an optimizer with
    an inner Langevin loop (Entropy-SGD, Parle: `langevin_learning_rate`), the Langevin
    rate eta', and suggests lowering the larger of the two when both are given (the inner
    loop takes L steps of eta' per outer step: with eta' >= eta it is the likelier cause).
    """
    kept = (f"the checkpoint of effective epoch {checkpoint_epoch} in {path} is kept"
            if checkpoint_epoch else f"no checkpoint was written in {path}")
    lr = learning_rate_at(schedule, epoch * steps_per_epoch)
    langevin = config.hyperparameters.get("langevin_learning_rate")
    rates = f"outer learning rate {lr:g}"
    advice = "Try a smaller learning rate."
    if langevin is not None:
        rates += f", Langevin learning rate {langevin:g}"
        if langevin >= lr:
            advice = "Try a smaller --langevin_learning_rate (the inner loop's step eta')."
        else:
            advice = "Try a smaller --learning_rate or --langevin_learning_rate."
    return TrainingDiverged(f"the loss became NaN or infinite during effective epoch {epoch + 1} "
                            f"(optimizer {config.optimizer}, {rates}); training stopped and {kept}. {advice}")


def effective_steps_per_execution(requested: int, steps_per_epoch: int) -> int:
    """The largest divisor of steps_per_epoch not above `requested`.

    Keras runs `steps_per_execution` steps per call whatever the epoch boundary, so
    a value that does not divide the epoch would shift every later epoch's data.
    """
    return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def steps(config, n_train: int) -> tuple[int, int]:
    """(steps per effective epoch, steps per execution) of `config` on `n_train` examples.

    Raises:
      ValueError: the batch is larger than the training set.
    """
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n_train} training examples")
    steps_per_execution = effective_steps_per_execution(config.steps_per_execution, steps_per_epoch)
    if config.replicas > 1:
        # Keras 3.15 under a MirroredStrategy of several replicas fails with steps_per_execution > 1
        # (even with plain SGD: "You must feed a value for placeholder tensor ... while/cond").
        steps_per_execution = 1
    return steps_per_epoch, steps_per_execution


@contextlib.contextmanager
def op_determinism(enabled):
    """TF op determinism on for the run when `enabled`; the process's setting is restored after.

    Left on, it would silently turn XLA off for later jit_compile work in the same
    process (Keras checks it). TF has no public getter or switch-off, hence the
    private module, used only if present.
    """
    from tensorflow.python.framework import config as tf_config  # pylint: disable=import-outside-toplevel

    restore = (enabled and hasattr(tf_config, "is_op_determinism_enabled")
               and hasattr(tf_config, "disable_op_determinism") and not tf_config.is_op_determinism_enabled())
    if enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if restore:
            tf_config.disable_op_determinism()


def compile_model(model, optimizer, *, jit_compile=False, steps_per_execution=1):
    """The runner's loss (cross-entropy on logits) and metric (accuracy) on `model`."""
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    if model._distribute_strategy is None and model.built and not model.optimizer.built:  # pylint: disable=protected-access
        # Built here, as Keras does under a strategy: without one Keras builds the optimizer inside the
        # first traced step, and a variable made while tf.function traces makes it trace the step twice
        # (about half of a small run's start-up).
        model.optimizer.build(model.trainable_variables)


def summary_of(config, rows, *, steps_per_epoch, steps_per_execution, jit_compile, ms_per_gradient_evaluation,
            time_breakdown=None, **extra):
    """summary.json's dict from the metric rows (the last row's numbers are the final ones)."""
    last = rows[-1]
    return dict(
        optimizer=config.optimizer, model=config.model, dataset=config.dataset,
        epochs=last["epoch"], gradient_evaluations=last["gradient_evaluations"],
        steps_per_epoch=steps_per_epoch, batch_size=config.batch_size,
        final_test_accuracy=last["test_accuracy"], final_test_loss=last["test_loss"],
        final_train_accuracy=last["train_accuracy"], final_train_loss=last["train_loss"],
        best_test_accuracy=max(r["test_accuracy"] for r in rows),
        wall_time_s=last["wall_time_s"], ms_per_gradient_evaluation=ms_per_gradient_evaluation,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution,
        time_breakdown=time_breakdown, **extra,
    )


def report(summary_dict):
    """Prints the run's final line."""
    ms = summary_dict.get("ms_per_gradient_evaluation")
    ms_text = f", {ms:.2f} ms per gradient evaluation" if ms is not None else ""
    print(f"final test accuracy (anchor): {summary_dict['final_test_accuracy']:.4f}  "
          f"(test loss {summary_dict['final_test_loss']:.4f}, train accuracy "
          f"{summary_dict['final_train_accuracy']:.4f}; {summary_dict['gradient_evaluations']} gradient "
          f"evaluations, {summary_dict['wall_time_s']:.1f} s{ms_text})", flush=True)


def finish(config, rundir, recorder, timer, *, steps_per_epoch, steps_per_execution, jit_compile, title="",
           **extra):
    """curves.png, then summary.json (a run with a summary is complete), then the final line."""
    with timer.phase("finish"):
        figures.save_png(figures.training_curves(recorder.rows,
                                                 f"{config.optimizer} / {config.model} / {config.dataset}{title}"),
                         rundir.curves, dpi=100)
    summary = summary_of(config, recorder.rows, steps_per_epoch=steps_per_epoch,
                         steps_per_execution=steps_per_execution,
                         jit_compile=jit_compile,  # Keras may have turned XLA off
                         ms_per_gradient_evaluation=recorder.ms_per_gradient_evaluation(),
                         time_breakdown=timer.breakdown(len(recorder.epoch_timings)), **extra)
    rundir.write_summary(summary)
    report(summary)
    return summary
