"""experiments.analyze / experiments.analysis_run / experiments.training.snapshots, on a tiny run."""

import dataclasses
import json
import math
import os
import sys

import keras
import numpy as np
import pytest

from control_opt import datasets
from control_opt.optimizers import EntropySGD
from control_opt.optimizers.callbacks import AnchorSwap
from experiments import analysis_run, train
from experiments.training.config import TrainConfig
from experiments.training.rundir import RunDir
from experiments.training.snapshots import WeightSnapshots, projection_matrix, read_snapshots
from tests.experiments.support import write_cifar10
from tests.support import processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# 400 examples in batches of 50: 8 gradient evaluations per effective epoch (as tests/test_train_experiment.py).
TINY = dict(optimizer="sgd", epochs=2, batch_size=50, max_train_examples=400, max_test_examples=200,
            steps_per_execution=4, verbose=0)
SMALL = analysis_run.AnalysisConfig(diffusion_examples=64, hessian_examples=200, hessian_k=3, lanczos_steps=20,
                                    density_probes=2, density_steps=20, trace_probes=8, area_batches=4)


def run_python(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return processes.run([sys.executable, *args], cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory):
    """A tiny SGD run of the runner with its weight snapshots (`snapshot_every`), then analysed."""
    workdir = str(tmp_path_factory.mktemp("analyze") / "wd")
    train.train_and_evaluate(train.config_from_dict(dict(TINY, epochs=6, snapshot_every=4)), workdir)
    snapshots = read_snapshots(os.path.join(workdir, "snapshots.npz"))
    assert len(snapshots.steps) >= 12 and snapshots.steps[-1] <= 48  # 6 epochs x 8 steps, every 4
    result = analysis_run.analyze_run(workdir, SMALL)
    return workdir, result


def test_analysis_json_has_the_fields_with_finite_consistent_values(analysed_run):
    workdir, result = analysed_run
    with open(os.path.join(workdir, "analysis.json")) as f:
        stored = json.load(f)
    assert stored == json.loads(json.dumps(result))
    d, h, t = stored["diffusion"], stored["hessian"], stored["trajectory"]
    assert 0 < stored["run"]["train_loss"] < 10 and 0 <= stored["run"]["train_accuracy"] <= 1
    assert stored["run"]["optimizer"] == "sgd" and stored["run"]["num_weights"] == 5210 == d["dim"] == h["dim"]
    for key in ("trace", "rank_tolerance", "isotropy", "anisotropy", "gradient_norm", "temperature"):
        assert math.isfinite(d[key]), key
    assert d["num_examples"] == 64 and len(d["eigenvalues"]) == 63  # rank D <= N - 1
    assert 0 < d["rank_fraction"] <= 1 and d["rank"] <= 63 and d["rank_fraction"] == d["rank"] / 5210
    assert d["rank_tolerance"] == pytest.approx(d["eigenvalues"][0] * 5210 * np.finfo(np.float32).eps)
    assert sum(d["eigenvalues"]) == pytest.approx(d["trace"], rel=1e-6)
    assert d["temperature"] == pytest.approx(0.1 / (2 * 50))
    assert h["top_eigenvalue"] == h["top_eigenvalues"][0] and len(h["top_eigenvalues"]) == 3
    assert all(np.diff(h["top_eigenvalues"]) <= 0)
    assert all(math.isfinite(v) for v in h["top_eigenvalues"] + h["top_residuals"])
    assert math.isfinite(h["trace"]) and h["trace_stderr"] > 0 and 0 <= h["near_zero_fraction"] <= 1
    density = np.asarray(h["density"]["density"])
    assert np.trapezoid(density, h["density"]["grid"]) == pytest.approx(1, abs=0.02)
    num_snapshots = len(read_snapshots(os.path.join(workdir, "snapshots.npz")).steps)
    assert t["num_states"] == num_snapshots and t["dt"] == 4 and t["evenly_spaced"] and not t["projected"]
    assert math.isfinite(t["area_rate"]) and t["area_stderr"] > 0 and math.isfinite(t["area_z"])
    assert 0 < t["explained_ratio"][1] <= t["explained_ratio"][0] <= 1


def test_figures_are_written(analysed_run):
    workdir, result = analysed_run
    for name in analysis_run.FIGURES.values():
        path = os.path.join(workdir, name)
        assert os.path.getsize(path) > 1000
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(result["figures"]) == {"diffusion", "hessian", "trajectory"}


def test_missing_workdir_and_checkpoint_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        analysis_run.analyze_run(str(tmp_path / "nowhere"), SMALL)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"checkpoint\.keras is missing"):
        analysis_run.analyze_run(str(tmp_path), SMALL)


def test_command_line_and_importing_defines_no_flags(analysed_run, tmp_path):
    """One subprocess (TensorFlow imports once): import defines no flags; then `define_flags` + `main`
    on a missing workdir (exit 2, the path named) and on the tiny run with small flags."""
    workdir, _ = analysed_run
    small = ["--diffusion_examples=16", "--hessian_examples=50", "--hessian_k=2", "--lanczos_steps=6",
             "--density_steps=6", "--density_probes=1", "--trace_probes=2", "--area_batches=2", "--nofigures"]
    code = ("import sys\n"
            "import experiments.analyze, experiments.analysis_run, experiments.training.snapshots\n"
            "from absl import flags\n"
            "print('FLAGS', sorted(flags.FLAGS))\n"
            "experiments.analyze.define_flags()\n"
            f"flags.FLAGS(['analyze', '--workdir={tmp_path / 'absent'}'])\n"
            "try:\n    experiments.analyze.main(['analyze'])\n"
            "except SystemExit as e:\n    print('EXIT', e.code)\n"
            f"flags.FLAGS(['analyze', '--workdir={workdir}', *{small!r}])\n"
            "experiments.analyze.main(['analyze'])\n")
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    defined = set(eval(next(l for l in lines if l.startswith("FLAGS "))[6:]))  # pylint: disable=eval-used
    assert not defined & {"workdir", "diffusion_examples", "hessian_k"}
    assert "EXIT 2" in lines and "absent does not exist" in result.stderr
    assert any(l.startswith("D: rank") for l in lines), result.stdout[-2000:]
    with open(os.path.join(workdir, "analysis.json")) as f:
        stored = json.load(f)
    assert stored["diffusion"]["num_examples"] == 16 and len(stored["hessian"]["top_eigenvalues"]) == 2


def test_the_runs_own_data_are_analysed_and_data_dir_overrides(tmp_path, monkeypatch):
    """A CIFAR-10 run recorded data_dir=a/ and preprocess=standardize; $CONTROL_OPT_DATA_DIR points
    at b/ (other images) and the loader's default is ZCA: analyze must still see a/ standardized,
    and b/ standardized once its `data_dir` (--data_dir) says b/."""
    monkeypatch.setattr(datasets.registry, "_MEMORY_CACHE", {})
    monkeypatch.setenv("CONTROL_OPT_CACHE_DIR", str(tmp_path / "cache"))
    for seed, folder in enumerate(("a", "b")):
        write_cifar10(tmp_path / folder, n_per_file=3, n_test=2, seed=seed)  # 15 training images, random
    monkeypatch.setenv("CONTROL_OPT_DATA_DIR", str(tmp_path / "b"))
    workdir = tmp_path / "run"
    RunDir(str(workdir)).write_config(TrainConfig(dataset="cifar10", data_dir=str(tmp_path / "a"),
                                                  dataset_kwargs="preprocess=standardize", model="lenet"))
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss="mse")
    model.save(workdir / "checkpoint.keras")
    tiny = analysis_run.AnalysisConfig(diffusion_examples=4, hessian_examples=4, hessian_k=1, lanczos_steps=3,
                                       density_probes=1, density_steps=3, trace_probes=2, figures=False)
    for data_dir, expected_dir in ((None, "a"), (str(tmp_path / "b"), "b")):
        _, _, (x, _), _, _ = analysis_run.load_run(str(workdir), data_dir)
        expected = datasets.load("cifar10", str(tmp_path / expected_dir), preprocess="standardize")
        np.testing.assert_array_equal(x, expected.x_train)
        result = analysis_run.analyze_run(str(workdir), dataclasses.replace(tiny, data_dir=data_dir))
        loss = analysis_run.loss_and_accuracy(model, expected.x_train, expected.y_train)[0]
        assert result["run"]["train_loss"] == pytest.approx(loss, rel=1e-6)


# ------------------------------------------------------------------ the snapshot callback


def _tiny_model(optimizer="sgd", steps_per_execution=1):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=steps_per_execution)
    return model


def test_snapshots_thin_to_a_bounded_evenly_spaced_set_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")
    path = str(tmp_path / "s.npz")
    model = _tiny_model()
    model.fit(x, y, batch_size=4, epochs=5, verbose=0, callbacks=[WeightSnapshots(path, every=1, max_snapshots=8)])
    s = read_snapshots(path)  # 50 steps, recorded every step and thinned: spacing 8, steps 0..48
    assert len(s) <= 8 and s.every == 8 and list(s.steps) == list(range(0, 49, 8))
    assert s.weights.shape == (len(s), 4 * 3 + 4 + 4 + 1) and s.weights.dtype == np.float32
    final = np.concatenate([v.numpy().reshape(-1) for v in model.trainable_variables])
    assert not np.allclose(s.weights[0], s.weights[-1])
    # resume: rows written after the "checkpoint" step are dropped, recording goes on
    model.optimizer.iterations.assign(38)  # 10 more steps end at 48
    callback = WeightSnapshots(path, every=1, max_snapshots=8)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    s = read_snapshots(path)
    assert list(s.steps) == [0, 8, 16, 24, 32, 40, 48] and s.every == 8
    np.testing.assert_array_equal(s.weights[-1], np.concatenate(
        [v.numpy().reshape(-1) for v in model.trainable_variables]))
    assert not np.array_equal(s.weights[-1], final)


def test_snapshots_projection(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    model = _tiny_model()
    path = str(tmp_path / "p.npz")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[WeightSnapshots(path, every=2, projection_dim=5, projection_seed=3)])
    s = read_snapshots(path)
    assert s.projected and s.weights.shape == (3, 5) and list(s.steps) == [0, 2, 4]
    flat = np.concatenate([v.numpy().reshape(-1) for v in model.trainable_variables])
    np.testing.assert_allclose(s.weights[-1], projection_matrix(21, 5, 3) @ flat, rtol=1e-5, atol=1e-6)


def test_snapshots_of_an_anchored_optimizer_are_the_anchor(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(24, 3)).astype("float32"), rng.normal(size=(24, 1)).astype("float32")
    model = _tiny_model(EntropySGD(learning_rate=0.5, langevin_steps=3, seed=0))
    path = str(tmp_path / "a.npz")
    # 6 steps per epoch, 2 outer steps; AnchorSwap puts the anchor into the model at the end
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False,
              callbacks=[AnchorSwap(), WeightSnapshots(path, every=1)])
    s = read_snapshots(path)
    anchor = np.concatenate([v.numpy().reshape(-1) for v in model.trainable_variables])
    np.testing.assert_array_equal(s.weights[-1], anchor)
    # between outer steps the anchor does not move while the probe does
    np.testing.assert_array_equal(s.weights[1], s.weights[0])
    np.testing.assert_array_equal(s.weights[2], s.weights[0])
    assert not np.array_equal(s.weights[3], s.weights[0])


def test_trajectory_area_of_a_rotating_and_a_reversible_process():
    rng = np.random.default_rng(0)
    dt, steps, w = 0.01, 40000, 0.5
    for drift, expected in ((np.array([[1.0, -w], [w, 1.0]]), -w), (np.diag([1.0, 2.0]), 0.0)):
        x = np.zeros((steps, 2))
        noise = rng.normal(size=(steps, 2)) * np.sqrt(2 * dt)
        for i in range(1, steps):
            x[i] = x[i - 1] - dt * drift @ x[i - 1] + noise[i]
        out = analysis_run.trajectory_area(x, dt, burn_in_fraction=0.1, num_batches=20)
        assert out["projection"].shape == (steps - steps // 10, 2)
        # PCs may flip the orientation: compare the magnitude
        assert abs(abs(out["area_rate"]) - abs(expected)) < 4 * out["area_stderr"] + 0.05
        assert abs(abs(out["heldout_area_rate"]) - abs(expected)) < 4 * out["heldout_area_stderr"] + 0.05
        if expected == 0.0:
            assert abs(out["area_z"]) < 4 and abs(out["heldout_area_z"]) < 4


def test_in_sample_pcs_give_a_random_walk_an_area_and_held_out_pcs_do_not():
    """The bias `trajectory_area` documents: a random walk on its own top-2 PCs traces an arc."""
    rng = np.random.default_rng(3)
    z_in, z_out = [], []
    for _ in range(12):
        walk = np.cumsum(rng.normal(size=(1000, 20)), axis=0)
        out = analysis_run.trajectory_area(walk, 1.0, burn_in_fraction=0.0, num_batches=10)
        z_in.append(abs(out["normalized_rate"]))
        z_out.append(out["heldout_normalized_rate"])
    # in-sample: the Karhunen-Loeve arc, the same magnitude in every draw; held-out: zero mean
    assert np.std(z_in) < 0.5 * np.mean(z_in)
    assert abs(np.mean(z_out)) < 3 * np.std(z_out) / np.sqrt(len(z_out))
