"""experiments.train: the default experiment's runner, end to end with tiny settings."""

import csv
import dataclasses
import json
import os
import sys

import keras
import numpy as np
import pytest

from control_opt import datasets
from control_opt.optimizers import find_anchored_optimizer
from experiments import train
from experiments.training import data as training_data
from experiments.training.callbacks import read_scalar_events
from experiments.training import schedules
from tests.support import processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 400 examples in batches of 50: 8 gradient evaluations per effective epoch.
TINY = dict(optimizer="sgd", epochs=2, batch_size=50, max_train_examples=400, max_test_examples=200,
            steps_per_execution=4, verbose=0)


def tiny(**overrides):
    return train.config_from_dict({**TINY, **overrides})


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def snapshot(workdir):
    """Bytes of every file in the workdir except TensorBoard events."""
    out = {}
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[name] = f.read()
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run") / "wd")
    summary = train.train_and_evaluate(tiny(), workdir)
    return workdir, summary


# ------------------------------------------------------------------ config


def test_default_config_is_the_entropy_sgd_experiment():
    config = train.default_config()
    assert (config.optimizer, config.model, config.dataset) == ("entropy_sgd", "mnist1d_cnn", "mnist1d")
    assert train.default_workdir(config) == os.path.join("runs", "entropy_sgd_mnist1d")
    resolved = train.resolve_config(config)
    assert resolved.learning_rate == 1.0 and resolved.langevin_steps == 20 and resolved.momentum == 0.0
    assert resolved.beta_1 is None  # an Adam argument: not taken by Entropy-SGD


def test_resolution_fills_the_optimizers_defaults_and_is_idempotent():
    resolved = train.resolve_config({"optimizer": "sgd"})
    assert (resolved.learning_rate, resolved.momentum, resolved.nesterov) == (0.1, 0.9, True)
    assert resolved.langevin_steps is None and resolved.beta_1 is None
    assert train.resolve_config(resolved) == resolved
    assert train.resolve_config({"optimizer": "adam", "learning_rate": 3}).learning_rate == 3.0


def test_unknown_override_key_is_named():
    with pytest.raises(ValueError, match="unknown config key.*learnig_rate"):
        train.config_from_dict({"learnig_rate": 0.1})


@pytest.mark.parametrize("key, value, message", [
    ("optimizer", "rmsprop", r"unknown optimizer 'rmsprop'.*sgd, adam, entropy_sgd, entropy_adam, hopf_lax"),
    ("model", "resnet", r"unknown model 'resnet'.*mnist1d_cnn"),
    ("dataset", "imagenet", r"unknown dataset 'imagenet'.*mnist1d"),
    ("beta_1", 0.5, r"beta_1 does not apply to optimizer 'sgd'"),
    ("epochs", 0, "epochs must be a positive integer"),
    ("epochs", "3", "epochs must be of type int"),
    ("learning_rate", -1.0, "learning_rate must be a positive"),
    ("verbose", 3, "verbose must be 0, 1 or 2"),
    ("checkpoint_every", 0, "checkpoint_every must be a positive integer"),
])
def test_bad_config_values_raise(key, value, message):
    with pytest.raises(ValueError, match=message):
        train.resolve_config(tiny(**{key: value}))


# ------------------------------------------------------------------ lr schedule


@pytest.mark.parametrize("text", ["2", "a:0.1", "2:0.1:3", "2:0.1,1:0.01", "2:0.1,2:0.01", "2:-1", "-1:0.1",
                                  "2:0.1,,", "2:nan", "inf:0.1"])
def test_bad_lr_schedule_raises_with_the_form(text):
    with pytest.raises(ValueError, match=r"bad lr_schedule.*EPOCH:VALUE"):
        train.parse_lr_schedule(text)
    with pytest.raises(ValueError, match="bad lr_schedule"):
        train.resolve_config(tiny(lr_schedule=text))


def test_lr_schedule_counts_effective_epochs_in_gradient_evaluations():
    assert train.parse_lr_schedule(" 1:0.5, 2.5:0.1 ") == [(1.0, 0.5), (2.5, 0.1)]
    assert train.parse_lr_schedule("") == [] and train.parse_lr_schedule(None) == []
    config = train.resolve_config(tiny(learning_rate=1.0, lr_schedule="1:0.5,2.5:0.1"))
    assert config.lr_schedule == "1:0.5,2.5:0.1"
    schedule = schedules.learning_rate_schedule(config.learning_rate, config.lr_schedule, steps_per_epoch=10)
    assert isinstance(schedule, keras.optimizers.schedules.PiecewiseConstantDecay)
    expected = {0: 1.0, 9: 1.0, 10: 0.5, 24: 0.5, 25: 0.1, 1000: 0.1}
    for step, lr in expected.items():
        assert float(schedule(step)) == pytest.approx(lr)
        assert train.learning_rate_at(schedule, step) == lr  # read from the schedule, float32 shortest decimal
    assert schedules.learning_rate_schedule(1.0, "0:0.3", 10) == 0.3
    assert schedules.learning_rate_schedule(1.0, "", 10) == 1.0
    assert train.learning_rate_at(0.3, 123) == 0.3


# ------------------------------------------------------------------ data order


def test_data_order_depends_on_seed_and_epoch_only():
    a = train.epoch_permutation(0, 3, 100)
    np.testing.assert_array_equal(a, train.epoch_permutation(0, 3, 100))
    assert sorted(a) == list(range(100))
    assert not np.array_equal(a, train.epoch_permutation(0, 4, 100))
    assert not np.array_equal(a, train.epoch_permutation(1, 3, 100))
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    batches = list(training_data.train_batches(x, y, seed=5, batch_size=3, initial_epoch=1, epochs=3))
    assert len(batches) == 6  # 3 full batches per epoch, the remainder dropped per epoch
    for epoch, chunk in ((1, batches[:3]), (2, batches[3:])):
        order = np.concatenate([np.asarray(by) for _, by in chunk])
        np.testing.assert_array_equal(order, train.epoch_permutation(5, epoch, 10)[:9])


# ------------------------------------------------------------------ end to end


def test_run_writes_every_file(finished_run):
    workdir, summary = finished_run
    names = set(os.listdir(workdir))
    assert {"config.json", "metrics.csv", "checkpoint.keras", "checkpoint.json", "summary.json",
            "curves.png", "tensorboard"} <= names
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    with open(os.path.join(workdir, "config.json")) as f:
        assert f.read() and json.load(open(os.path.join(workdir, "config.json"))) == dataclasses.asdict(
            train.resolve_config(tiny()))
    rows = read_rows(workdir)
    assert tuple(rows[0]) == train.METRICS_COLUMNS
    assert [(int(r["epoch"]), int(r["gradient_evaluations"])) for r in rows] == [(1, 8), (2, 16)]
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("train_accuracy", "test_accuracy"))
    assert float(rows[0]["wall_time_s"]) <= float(rows[1]["wall_time_s"])
    assert summary == json.load(open(os.path.join(workdir, "summary.json")))
    assert summary["final_test_accuracy"] == pytest.approx(float(rows[-1]["test_accuracy"]))
    assert summary["gradient_evaluations"] == 16 and summary["ms_per_gradient_evaluation"] > 0
    with open(os.path.join(workdir, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for split in ("train", "validation"):
        assert any(n.startswith("events.out.tfevents") for n in os.listdir(os.path.join(workdir, "tensorboard", split)))
    assert json.load(open(os.path.join(workdir, "checkpoint.json")))["epoch"] == 2
    model = keras.models.load_model(os.path.join(workdir, "checkpoint.keras"))
    assert int(model.optimizer.iterations.numpy()) == 16


def test_finished_run_just_reports(finished_run, capsys):
    workdir, summary = finished_run
    before = snapshot(workdir)
    assert train.train_and_evaluate(tiny(), workdir) == summary
    assert snapshot(workdir)["checkpoint.keras"] == before["checkpoint.keras"]
    assert "final test accuracy (anchor)" in capsys.readouterr().out


def test_resume_continues_the_same_trajectory(finished_run, tmp_path, capsys):
    straight, _ = finished_run
    resumed = str(tmp_path / "resumed")
    train.train_and_evaluate(tiny(epochs=1), resumed)
    assert [int(r["epoch"]) for r in read_rows(resumed)] == [1]
    # Same command with more epochs extends the run; execution settings may change.
    train.train_and_evaluate(tiny(steps_per_execution=8, verbose=2), resumed)
    assert "resuming" in capsys.readouterr().out
    a = keras.models.load_model(os.path.join(straight, "checkpoint.keras"))
    b = keras.models.load_model(os.path.join(resumed, "checkpoint.keras"))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
    keys = ("epoch", "gradient_evaluations", "train_loss", "test_loss", "test_accuracy")
    assert [[r[k] for k in keys] for r in read_rows(straight)] == [[r[k] for k in keys] for r in read_rows(resumed)]


def test_workdir_with_another_config_is_refused_untouched(finished_run):
    workdir, _ = finished_run
    before = snapshot(workdir)
    with pytest.raises(train.ConfigMismatchError, match=r"learning_rate: workdir has 0.1, requested 0.2.*seed"):
        train.train_and_evaluate(tiny(learning_rate=0.2, seed=1), workdir)
    with pytest.raises(train.ConfigMismatchError, match="already holds 2 effective epochs"):
        train.train_and_evaluate(tiny(epochs=1), workdir)
    assert snapshot(workdir) == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    with pytest.raises(train.TrainingDiverged, match="NaN or infinite during effective epoch 2.*epoch 1"):
        train.train_and_evaluate(tiny(epochs=3, lr_schedule="1:1e8", checkpoint_every=1), workdir)
    assert [int(r["epoch"]) for r in read_rows(workdir)] == [1]
    model = keras.models.load_model(os.path.join(workdir, "checkpoint.keras"))
    assert int(model.optimizer.iterations.numpy()) == 8
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not os.path.exists(os.path.join(workdir, "summary.json"))


def test_nan_loss_before_the_first_checkpoint_says_none_was_written_and_a_rerun_starts_afresh(tmp_path):
    workdir = str(tmp_path / "nan_sparse")
    with pytest.raises(train.TrainingDiverged, match="epoch 2.*no checkpoint was written"):
        train.train_and_evaluate(tiny(epochs=3, lr_schedule="1:1e8", checkpoint_every=2), workdir)
    assert [int(r["epoch"]) for r in read_rows(workdir)] == [1]  # logged, past any checkpoint
    assert not os.path.exists(os.path.join(workdir, "checkpoint.keras"))
    with pytest.raises(train.TrainingDiverged, match="no checkpoint was written"):  # again from scratch
        train.train_and_evaluate(tiny(epochs=3, lr_schedule="1:1e8", checkpoint_every=2), workdir)
    assert [int(r["epoch"]) for r in read_rows(workdir)] == [1]  # the old row dropped, not doubled
    events = read_scalar_events(os.path.join(workdir, "tensorboard"))
    assert sorted(step for tag, step, _ in events["validation"] if tag == "epoch_loss") == [1]


def test_jit_compile_is_really_used_and_op_determinism_is_scoped_to_the_run(finished_run, tmp_path):
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()  # the finished (deterministic) run restored it
    summary = train.train_and_evaluate(tiny(epochs=1, jit_compile=True), str(tmp_path / "jit"))
    assert summary["jit_compile"] is True  # Keras silently drops XLA under op determinism


def test_fit_on_mnist1d_beats_chance(tmp_path):
    summary = train.train_and_evaluate(
        train.config_from_dict(dict(optimizer="sgd", epochs=4, verbose=0)), str(tmp_path / "full"))
    assert summary["steps_per_epoch"] == 40
    assert summary["final_test_accuracy"] > 0.4  # chance is 0.1


# ------------------------------------------------------------------ command line


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    return processes.run([sys.executable, "-m", "experiments.train", *args], cwd=cwd, env=env)


def test_command_line_runs_and_reports(tmp_path):
    result = run_cli("--optimizer=sgd", "--epochs=1", "--batch_size=50", "--max_train_examples=200",
                     "--max_test_examples=100", "--verbose=0", "--checkpoint_every=5", f"--workdir={tmp_path / 'cli'}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "final test accuracy (anchor): 0." in result.stdout
    assert os.path.exists(tmp_path / "cli" / "summary.json")
    assert json.load(open(tmp_path / "cli" / "config.json"))["checkpoint_every"] == 5


def test_command_line_rejects_unknown_optimizer(tmp_path):
    result = run_cli("--optimizer=nope", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown optimizer 'nope'" in result.stderr and "entropy_sgd" in result.stderr
    assert not os.path.exists(tmp_path / "runs")


# ------------------------------------------------------------------ anchored optimizers


@pytest.mark.parametrize("optimizer,extra", [
    ("entropy_sgd", dict(langevin_steps=3, noise=1e-3, learning_rate=0.5)),
    ("hopf_lax", dict(inner_steps=3)),
])
def test_anchored_resume_mid_inner_loop_continues_the_same_trajectory(optimizer, extra, tmp_path):
    # 8 steps per epoch, L = 3: the first epoch ends in the middle of an inner loop.
    config = dict(optimizer=optimizer, epochs=2, **extra)
    straight = str(tmp_path / "straight")
    train.train_and_evaluate(tiny(**config), straight)
    resumed = str(tmp_path / "resumed")
    train.train_and_evaluate(tiny(**{**config, "epochs": 1}), resumed)
    checkpoint = keras.models.load_model(os.path.join(resumed, "checkpoint.keras"))
    anchored = find_anchored_optimizer(checkpoint)
    assert int(anchored.inner_step) == 2 and bool(anchored.anchor_in_model)
    train.train_and_evaluate(tiny(**config), resumed)
    a = keras.models.load_model(os.path.join(straight, "checkpoint.keras"))
    b = keras.models.load_model(os.path.join(resumed, "checkpoint.keras"))
    for wa, wb in zip(a.get_weights() + [np.asarray(v) for v in a.optimizer.variables],
                      b.get_weights() + [np.asarray(v) for v in b.optimizer.variables]):
        np.testing.assert_array_equal(wa, wb)
    keys = ("epoch", "test_loss", "test_accuracy")
    assert [[r[k] for k in keys] for r in read_rows(straight)] == [[r[k] for k in keys] for r in read_rows(resumed)]


def test_metrics_and_summary_are_measured_at_the_anchor(tmp_path):
    workdir = str(tmp_path / "anchor")
    summary = train.train_and_evaluate(tiny(optimizer="entropy_sgd", epochs=1, langevin_steps=3), workdir)
    model = keras.models.load_model(os.path.join(workdir, "checkpoint.keras"))
    assert bool(find_anchored_optimizer(model).anchor_in_model)  # the checkpoint holds the anchor in the model
    data = datasets.load("mnist1d")
    _, accuracy = model.evaluate(data.x_test[:200], data.y_test[:200], verbose=0)
    assert abs(accuracy - summary["final_test_accuracy"]) < 1e-6


def test_entropy_sgd_on_mnist1d_beats_chance(tmp_path):
    summary = train.train_and_evaluate(
        train.config_from_dict(dict(optimizer="entropy_sgd", epochs=4, verbose=0)), str(tmp_path / "esgd"))
    assert summary["final_test_accuracy"] > 0.4  # chance is 0.1
