"""The runner with --strategy=mirrored --replicas=2 (elastic_sgd, parle), in a fresh process."""

import json
import os
import pathlib
import sys

import pytest

from experiments import analysis_run, train
from tests.experiments.support import run_test_loss
from tests.support import processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("replicas_runner")
    proc = processes.run([sys.executable, os.path.join(os.path.dirname(__file__), "replicas_runner_script.py"),
                          str(out)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert "RUNNER_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    return dict(json.loads((out / "results.json").read_text()), out=str(out))


def test_parle_and_elastic_sgd_train_on_two_replicas(results):
    for name in ("parle", "elastic_sgd"):
        assert results[name]["optimizer"] == name
        assert results[name]["final_test_loss"] < 10.0


def test_per_replica_train_losses_and_spread_go_to_tensorboard(results):
    by_step = {}
    for tag, step, value in results["train_scalars"]:
        by_step.setdefault(step, {})[tag] = value
    assert sorted(by_step) == [1, 2]
    for scalars in by_step.values():
        assert {"replica_0_loss", "replica_1_loss", "replica_spread"} <= set(scalars)
        # Keras' train loss is their mean (equal shards).
        assert abs((scalars["replica_0_loss"] + scalars["replica_1_loss"]) / 2 - scalars["epoch_loss"]) < 1e-4
        assert scalars["replica_0_loss"] != scalars["replica_1_loss"] and scalars["replica_spread"] > 0


def test_metrics_csv_has_each_replicas_train_metrics_and_the_centers_test_metrics(results):
    header = results["metrics_header"]
    assert header == list(train.METRICS_COLUMNS) + ["train_loss_r0", "train_accuracy_r0",
                                                    "train_loss_r1", "train_accuracy_r1"]
    assert len(results["metrics_rows"]) == 2
    for values in results["metrics_rows"]:
        row = dict(zip(header, values))
        # Keras' train metrics are the replicas' mean (equal shards).
        assert abs((row["train_loss_r0"] + row["train_loss_r1"]) / 2 - row["train_loss"]) < 1e-4
        assert abs((row["train_accuracy_r0"] + row["train_accuracy_r1"]) / 2 - row["train_accuracy"]) < 1e-4
        assert row["train_loss_r0"] != row["train_loss_r1"]
        assert 0.0 <= row["test_accuracy"] <= 1.0
    assert results["curves"] > 0


def test_resume_on_two_replicas_keeps_the_replica_columns(results):
    header = results["metrics_header"]
    drop = header.index("wall_time_s")
    strip = lambda rows: [[v for i, v in enumerate(r) if i != drop] for r in rows]  # noqa: E731
    assert strip(results["resumed_rows"]) == strip(results["metrics_rows"])


def test_resume_on_two_replicas_continues_the_same_run(results):
    assert results["resume_equal"]


def test_analyze_analyses_the_center_the_run_evaluated_at(results):
    """`experiments.analyze` on 2-replica runs, in this 1-device process (as from the command line):
    it analyses the center (the model of the file, loaded without the per-replica optimizer state
    that only a strategy of 2 replicas can hold), whose test loss is the run's own final one."""
    tiny = analysis_run.AnalysisConfig(diffusion_examples=8, hessian_examples=50, hessian_k=1, lanczos_steps=4,
                                       density_probes=1, density_steps=4, trace_probes=2, figures=False)
    parle = os.path.join(results["out"], "straight")
    result = analysis_run.analyze_run(parle, tiny)
    assert result["run"]["weights"] == "center of 2 replicas"
    assert result["run"]["steps"] == 8  # 2 effective epochs of 4 steps (checkpoint.json)
    assert result["run"]["train_loss"] > 0 and result["hessian"]["dim"] == result["diffusion"]["dim"]
    for workdir in ("straight", "e"):
        workdir = pathlib.Path(results["out"]) / workdir
        model, _, _, _, weights = analysis_run.load_run(str(workdir))
        assert weights == "center of 2 replicas"
        summary = json.loads((workdir / "summary.json").read_text())
        assert abs(run_test_loss(model, workdir) - summary["final_test_loss"]) < 1e-5 * summary["final_test_loss"]


def test_clear_errors_for_another_number_of_replicas_or_too_many(results):
    assert "replicas: workdir has 2, requested 1" in results["other_replicas"]
    assert "5 replicas need 5 devices" in results["too_many"]


@pytest.mark.parametrize("overrides, message", [
    (dict(replicas=2, strategy="default"), "leave --strategy out"),
    (dict(replicas=0, strategy="mirrored"), "replicas must be a positive integer"),
    (dict(replicas=3, strategy="mirrored", batch_size=50), "multiple of replicas=3"),
    (dict(optimizer="sgd", rho=0.1), "rho does not apply"),
])
def test_replica_config_is_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        train.resolve_config(train.config_from_dict(overrides))


def test_replica_local_optimizers_resolve_their_defaults():
    parle = train.resolve_config(train.config_from_dict(dict(optimizer="parle")))
    assert (parle.langevin_steps, parle.rho, parle.gamma, parle.mean_decay) == (25, 0.5, 0.01, 0.75)
    elastic = train.resolve_config(train.config_from_dict(dict(optimizer="elastic_sgd")))
    assert (elastic.rho, elastic.communication_period) == (0.1, 1)
