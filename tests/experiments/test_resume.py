"""Resume after an interruption, checked against an uninterrupted run and against numbers worked out by hand.

The interruption is the worst place for one: after epoch 2's metrics.csv row and
TensorBoard points are written, before its checkpoint (as a kill there would
leave it). The resumed run must redo epoch 2 from the epoch-1 checkpoint and end
bit for bit where the uninterrupted run ends, with no duplicate TensorBoard step.

With `checkpoint_every` > 1 the interruption falls between checkpoints: epochs
past the latest checkpoint are logged (and a metrics row may be torn) but must be
dropped and recomputed, again ending bit for bit where the straight run ends.
"""

import collections
import math
import os

import keras
import numpy as np
import pytest

from control_opt.optimizers import find_anchored_optimizer
from experiments import train
from experiments.training import callbacks, registry, rundir

N_TRAIN, BATCH, EPOCHS = 400, 50, 3
# lr 0.1, dropped to 0.05 from effective epoch 1.5: 8 steps per epoch, first step of epoch 1.5 is step 12.
TINY = dict(optimizer="sgd", epochs=EPOCHS, batch_size=BATCH, max_train_examples=N_TRAIN, max_test_examples=200,
            steps_per_execution=4, verbose=0, learning_rate=0.1, lr_schedule="1.5:0.05", checkpoint_every=1)
LOGGED_RATES = [0.1, 0.05, 0.05]  # the rate of each epoch's last step (7, 15, 23), by hand


class Interrupted(Exception):
    pass


def interrupt_before_checkpoint(monkeypatch, epoch):
    """Makes RunDir.save_checkpoint fail for `epoch`, after that epoch's metrics and TensorBoard writes."""
    save = rundir.RunDir.save_checkpoint

    def failing(self, model, *, epoch: int, **kwargs):
        if epoch == interrupt_at:
            raise Interrupted(f"killed before the checkpoint of epoch {epoch}")
        return save(self, model, epoch=epoch, **kwargs)

    interrupt_at = epoch
    monkeypatch.setattr(rundir.RunDir, "save_checkpoint", failing)
    return lambda: monkeypatch.setattr(rundir.RunDir, "save_checkpoint", save)


def metric_rows(workdir):
    return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in rundir.RunDir(workdir).read_metrics()]


def steps_per_tag(workdir):
    counts = collections.Counter()
    for split, points in callbacks.read_scalar_events(os.path.join(workdir, "tensorboard")).items():
        for tag, step, _ in points:
            counts[(split, tag, step)] += 1
    return counts


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight") / "run")
    train.train_and_evaluate(dict(TINY), workdir)
    return workdir


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("resumed") / "run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        interrupt_before_checkpoint(monkeypatch, epoch=2)
        with pytest.raises(Interrupted):
            train.train_and_evaluate(dict(TINY), workdir)
    # The state the interruption left: epoch 2 logged, the checkpoint still at epoch 1.
    assert [r["epoch"] for r in metric_rows(workdir)] == [1, 2]
    assert steps_per_tag(workdir)[("validation", "epoch_loss", 2)] == 1
    model = keras.models.load_model(os.path.join(workdir, "checkpoint.keras"))
    assert int(model.optimizer.iterations.numpy()) == N_TRAIN // BATCH
    train.train_and_evaluate(dict(TINY), workdir)
    return workdir


def test_resumed_run_ends_with_the_uninterrupted_runs_weights(straight, resumed):
    a = keras.models.load_model(os.path.join(straight, "checkpoint.keras"))
    b = keras.models.load_model(os.path.join(resumed, "checkpoint.keras"))
    for wa, wb in zip(a.get_weights() + [np.asarray(v) for v in a.optimizer.variables],
                      b.get_weights() + [np.asarray(v) for v in b.optimizer.variables]):
        np.testing.assert_array_equal(wa, wb)


def test_resumed_metrics_equal_the_uninterrupted_rows_and_the_hand_counts(straight, resumed):
    rows = metric_rows(resumed)
    assert rows == metric_rows(straight)  # row for row, every column but the wall time
    steps_per_epoch = math.ceil(N_TRAIN / BATCH)  # 400 / 50 divides: no partial batch to drop
    assert [r["gradient_evaluations"] for r in rows] == [steps_per_epoch * e for e in range(1, EPOCHS + 1)]
    assert [r["learning_rate"] for r in rows] == LOGGED_RATES
    model = keras.models.load_model(os.path.join(resumed, "checkpoint.keras"))
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * steps_per_epoch


def test_no_tensorboard_step_appears_twice_after_a_resume(straight, resumed):
    counts = steps_per_tag(resumed)
    assert counts == steps_per_tag(straight)
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n > 1}
    expected = {("train", tag, step) for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate")
                for step in range(1, EPOCHS + 1)}
    expected |= {("validation", tag, step) for tag in ("epoch_loss", "epoch_accuracy") for step in range(1, EPOCHS + 1)}
    assert set(counts) == expected
    # The points are the recomputed ones: equal to metrics.csv of the resumed run.
    points = callbacks.read_scalar_events(os.path.join(resumed, "tensorboard"))
    by_step = {step: value for tag, step, value in points["validation"] if tag == "epoch_loss"}
    for row in metric_rows(resumed):
        assert by_step[row["epoch"]] == pytest.approx(row["test_loss"], rel=1e-6)
    lrs = [value for tag, _, value in sorted(points["train"], key=lambda p: p[1]) if tag == "epoch_learning_rate"]
    assert lrs == pytest.approx(LOGGED_RATES)


def test_truncate_events_is_idempotent(resumed, tmp_path):
    import shutil

    logdir = str(tmp_path / "tb")
    shutil.copytree(os.path.join(resumed, "tensorboard"), logdir)
    assert callbacks.truncate_events(logdir, EPOCHS) == 0
    assert callbacks.truncate_events(logdir, 1) == 3 * 2 + 2 * 2  # steps 2 and 3 of 3 + 2 tags
    assert callbacks.truncate_events(logdir, 1) == 0
    assert {step for points in callbacks.read_scalar_events(logdir).values() for _, step, _ in points} == {1}


# ------------------------------------------------------------------ checkpoint_every > 1

# Entropy-SGD with L = 3 inner steps over 8-step epochs: every checkpoint falls mid inner loop.
# Checkpoints after effective epochs 2, 4 and 5 (the last).
SPARSE = dict(TINY, optimizer="entropy_sgd", langevin_steps=3, epochs=5, checkpoint_every=2)


def final_state(workdir):
    model = keras.models.load_model(os.path.join(workdir, "checkpoint.keras"))
    return model.get_weights() + [np.asarray(v) for v in model.optimizer.variables]


def assert_same_state(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


@pytest.fixture(scope="module")
def sparse_straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("sparse") / "run")
    summary = train.train_and_evaluate(dict(SPARSE), workdir)
    return workdir, summary


@pytest.fixture(scope="module")
def sparse_resumed(tmp_path_factory):
    """Killed during effective epoch 4's training: epochs 1-3 logged, the latest checkpoint that of
    epoch 2, and a torn metrics row as a kill during an append leaves it."""
    workdir = str(tmp_path_factory.mktemp("sparse_resumed") / "run")
    begin = callbacks.Recorder.on_epoch_begin

    def killed_in_epoch_4(self, epoch, logs=None):
        if epoch == 3:
            raise Interrupted("killed during effective epoch 4")
        return begin(self, epoch, logs)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(callbacks.Recorder, "on_epoch_begin", killed_in_epoch_4)
        with pytest.raises(Interrupted):
            train.train_and_evaluate(dict(SPARSE), workdir)
    assert [r["epoch"] for r in metric_rows(workdir)] == [1, 2, 3]
    assert steps_per_tag(workdir)[("validation", "epoch_loss", 3)] == 1
    assert rundir.read_json(os.path.join(workdir, "checkpoint.json"))["epoch"] == 2
    with open(os.path.join(workdir, "metrics.csv"), "a") as f:
        f.write("4,32,1.2")
    train.train_and_evaluate(dict(SPARSE), workdir)
    return workdir


def test_checkpoint_every_changes_neither_the_trajectory_nor_the_logs(sparse_straight, tmp_path):
    sparse, summary = sparse_straight
    every_epoch = str(tmp_path / "every_epoch")
    dense_summary = train.train_and_evaluate(dict(SPARSE, checkpoint_every=1), every_epoch)
    assert summary["time_breakdown"]["phases"]["checkpoint"]["calls"] == 3  # epochs 2, 4, 5
    assert dense_summary["time_breakdown"]["phases"]["checkpoint"]["calls"] == 5
    assert_same_state(final_state(sparse), final_state(every_epoch))
    assert metric_rows(sparse) == metric_rows(every_epoch)
    assert steps_per_tag(sparse) == steps_per_tag(every_epoch)


def test_resume_between_checkpoints_drops_the_rows_past_it_and_equals_the_straight_run(sparse_straight,
                                                                                        sparse_resumed):
    straight_dir, _ = sparse_straight
    assert_same_state(final_state(straight_dir), final_state(sparse_resumed))
    assert metric_rows(sparse_resumed) == metric_rows(straight_dir)  # epoch 3 recomputed once, the torn row gone
    counts = steps_per_tag(sparse_resumed)
    assert counts == steps_per_tag(straight_dir) and set(counts.values()) == {1}
    points = callbacks.read_scalar_events(os.path.join(sparse_resumed, "tensorboard"))
    by_step = {step: value for tag, step, value in points["validation"] if tag == "epoch_accuracy"}
    assert [by_step[r["epoch"]] for r in metric_rows(sparse_resumed)] == pytest.approx(
        [r["test_accuracy"] for r in metric_rows(sparse_resumed)], rel=1e-6)
    assert rundir.read_json(os.path.join(sparse_resumed, "checkpoint.json"))["epoch"] == 5


# ------------------------------------------------------------------ plug-ins by registration


def test_a_registered_optimizer_runs_without_touching_the_runner(monkeypatch, tmp_path):
    built = []

    class PlainSGD(keras.optimizers.SGD):
        def __init__(self, learning_rate=0.01, **kwargs):
            built.append(learning_rate)
            super().__init__(learning_rate=learning_rate, **kwargs)

    monkeypatch.setitem(registry.OPTIMIZERS, "plain_sgd",
                        registry.OptimizerSpec(cls=PlainSGD, defaults=dict(learning_rate=0.05, lr_schedule="")))
    summary = train.train_and_evaluate(dict(TINY, optimizer="plain_sgd", epochs=1, learning_rate=None,
                                            lr_schedule=None), str(tmp_path / "plain"))
    assert built == [0.05] and summary["gradient_evaluations"] == N_TRAIN // BATCH
    with pytest.raises(ValueError, match="learnig_rate, which SGD's constructor does not take"):
        registry.register_optimizer("bad", keras.optimizers.SGD, defaults=dict(learnig_rate=1.0))


def test_mirrored_strategy_runs(tmp_path):
    summary = train.train_and_evaluate(dict(TINY, epochs=1, strategy="mirrored"), str(tmp_path / "mirrored"))
    assert summary["gradient_evaluations"] == N_TRAIN // BATCH and 0 <= summary["final_test_accuracy"] <= 1
    with pytest.raises(ValueError, match=r"unknown strategy 'tpu'.*default, mirrored"):
        train.resolve_config(dict(TINY, strategy="tpu"))


def test_old_workdir_without_a_strategy_key_resumes(straight, tmp_path):
    import json
    import shutil

    workdir = str(tmp_path / "old")
    shutil.copytree(straight, workdir)
    path = os.path.join(workdir, "config.json")
    stored = json.load(open(path))
    del stored["strategy"]
    with open(path, "w") as f:
        json.dump(stored, f)
    assert train.train_and_evaluate(dict(TINY), workdir)["epochs"] == EPOCHS  # complete: just reports


def test_anchored_runs_find_the_optimizer_through_the_helper(tmp_path):
    workdir = str(tmp_path / "esgd")
    train.train_and_evaluate(dict(TINY, optimizer="entropy_sgd", epochs=1, learning_rate=None, lr_schedule=None,
                                  langevin_steps=3), workdir)
    model = keras.models.load_model(os.path.join(workdir, "checkpoint.keras"))
    assert bool(find_anchored_optimizer(model).anchor_in_model)
