"""The runner's per-epoch cost pieces: PhaseTimer's accounting, the traced test evaluation
(the same numbers as Keras' evaluate), metrics.csv appends and torn lines, the training-only
baseline."""

import os

import keras
import pytest

from control_opt import datasets, models
from experiments import train
from experiments.training import evaluation, phases, rundir, run


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_phase_timer_charges_nested_phases_exclusively():
    clock = FakeClock()
    timer = phases.PhaseTimer(clock)
    timer.start("fit_loop")
    clock.now = 1.0
    timer.start("train_steps")  # begins in one callback ...
    clock.now = 4.0
    with timer.phase("anchor_swap"):
        clock.now = 4.5
    clock.now = 6.0
    assert timer.stop("train_steps")  # ... ends in another
    assert not timer.stop("train_steps") and not timer.running("train_steps")
    clock.now = 7.0
    timer.start("checkpoint")
    clock.now = 9.0
    timer.stop_all()  # closes checkpoint and fit_loop
    assert timer.seconds == {"fit_loop": 2.0, "train_steps": 4.5, "anchor_swap": 0.5, "checkpoint": 2.0}
    breakdown = timer.breakdown(epochs=2)
    assert breakdown["total_s"] == 9.0  # the phases add up to the outermost one's wall time
    assert list(breakdown["phases"]) == ["train_steps", "anchor_swap", "checkpoint", "fit_loop"]  # PHASES order
    assert breakdown["phases"]["train_steps"] == dict(s=4.5, calls=1, ms_per_epoch=2250.0, share=0.5)


@pytest.fixture(scope="module")
def small_model():
    data = datasets.load("mnist1d")
    model = models.build("mnist1d_cnn", input_shape=data.input_shape, num_classes=data.num_classes, seed=3)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], steps_per_execution=4)
    model.fit(data.x_train[:200], data.y_train[:200], batch_size=50, epochs=1, verbose=0)
    return model, data.x_test[:230], data.y_test[:230]


@pytest.mark.parametrize("batch_size", [230, 1000, 100, 50])  # one batch; full batches and a remainder
def test_traced_evaluation_gives_keras_evaluate_numbers_bit_for_bit(small_model, batch_size):
    model, x, y = small_model
    traced = evaluation.TestSetEvaluator(model, x, y, batch_size)()
    keras_numbers = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    assert traced == {name: float(value) for name, value in keras_numbers.items()}
    assert traced == evaluation.TestSetEvaluator(model, x, y, batch_size)()  # metrics reset at each call


def test_metrics_rows_are_appended_and_a_torn_last_line_is_ignored(tmp_path):
    files = rundir.RunDir(str(tmp_path))
    row = lambda e: dict(epoch=e, gradient_evaluations=8 * e, wall_time_s=0.5 * e, learning_rate=0.1,
                         train_loss=1.0 / e, train_accuracy=0.5, test_loss=2.0 / e, test_accuracy=0.25)
    files.write_metrics([row(1)])
    files.append_metrics(row(2))
    assert files.read_metrics() == [row(1), row(2)]
    with open(files.metrics, "a") as f:
        f.write("3,24,1.5,0.1,0.33")  # a kill in the middle of the next append
    assert files.read_metrics() == [row(1), row(2)]
    assert files.metrics_until(2) == [row(1), row(2)]


def test_training_only_baseline_ends_where_the_whole_run_ends(tmp_path):
    config = dict(optimizer="entropy_sgd", epochs=2, batch_size=50, max_train_examples=400, max_test_examples=200,
                  steps_per_execution=4, verbose=0, langevin_steps=3)
    summary = train.train_and_evaluate(config, str(tmp_path / "whole"))
    only = run.train_only(config)
    assert only["gradient_evaluations"] == summary["gradient_evaluations"] == 16
    assert (only["final_test_accuracy"], only["final_test_loss"]) == (summary["final_test_accuracy"],
                                                                      summary["final_test_loss"])
    assert len(only["epoch_s"]) == 2 and only["fit_s"] >= sum(only["epoch_s"])
    phases_run = summary["time_breakdown"]["phases"]
    assert {"startup", "train_steps", "evaluation", "anchor_swap", "metrics_csv", "tensorboard", "checkpoint",
            "fit_loop", "finish"} <= set(phases_run)
    assert phases_run["train_steps"]["calls"] == phases_run["evaluation"]["calls"] == 2
    assert phases_run["checkpoint"]["calls"] == 1  # default checkpoint_every: the last epoch only
    assert not os.path.exists(tmp_path / "only")
    with pytest.raises(ValueError, match="default strategy only"):
        run.train_only(dict(config, strategy="mirrored"))


def test_the_train_step_is_traced_once(tmp_path, monkeypatch):
    # Without a strategy Keras builds the optimizer inside the first traced step, and a variable made while
    # tf.function traces makes it trace the step twice; session.compile_model builds it first.
    from keras.src.backend.tensorflow import trainer  # pylint: disable=import-outside-toplevel

    traced, step = [], trainer.TensorFlowTrainer.train_step
    monkeypatch.setattr(trainer.TensorFlowTrainer, "train_step", lambda self, data: traced.append(1) or step(self, data))
    train.train_and_evaluate(dict(optimizer="entropy_adam", epochs=1, batch_size=50, max_train_examples=100,
                                  max_test_examples=50, verbose=0, langevin_steps=2), str(tmp_path / "wd"))
    assert len(traced) == 1


def test_checkpoint_every_defaults_to_10_may_change_on_resume_and_is_1_for_the_papers_rows():
    from experiments.training import paper_runs

    assert train.resolve_config({}).checkpoint_every == 10
    assert "checkpoint_every" in train.RESUMABLE_CHANGES
    assert train.config_from_dict(dict(config="esgd_lenet")).checkpoint_every == 1
    assert train.config_from_dict({"config": "esgd_lenet", "checkpoint_every": 4}).checkpoint_every == 4
