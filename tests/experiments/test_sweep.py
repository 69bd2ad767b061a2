"""A sweep killed mid-trial and restarted finishes the same trials, none run twice (experiments/training/sweeps.py).

Two trials, the first killed. Tiny budget: 200 training examples (2 steps per epoch), 2 epochs, a checkpoint every epoch. The kill
is simulated in process: the runner of one trial raises SystemExit after its first epoch's checkpoint,
which Optuna does not catch, so the trial is left RUNNING in the study, exactly as a killed process
leaves it (Optuna marks an ordinary exception FAIL instead; both are resumed the same way).
"""

import dataclasses
import json
import os

import pytest

optuna = pytest.importorskip("optuna", reason="sweeps need Optuna, an optional dependency (pip install optuna)")

from experiments.training import search_spaces, sweeps  # noqa: E402
from experiments.training.rundir import RunDir  # noqa: E402
from experiments.training.run import train_and_evaluate  # noqa: E402

SWEEP = sweeps.SweepConfig(optimizer="sgd", trials=2, epochs=2, tuning_seeds=(1000,), heldout_seeds=(),
                           run_overrides=dict(max_train_examples=200, max_test_examples=100, checkpoint_every=1))


def _straight_params(sweep):
    """The values a straight sweep draws, from the same sampler with a stand-in objective (no training)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sweeps.make_sampler(optuna, sweep), direction="maximize")
    space = search_spaces.search_space(sweep.optimizer)
    study.optimize(lambda t: sum(t.suggest_float(d.name, d.low, d.high, log=True) for d in space),
                   n_trials=sweep.trials)
    return [t.params for t in study.trials]


class _Killed(SystemExit):
    pass


def test_killed_sweep_resumes_same_trials_none_twice(tmp_path):
    calls = []  # (run directory, whether a checkpoint was there when the run started)

    def runner(config, workdir):
        calls.append((os.path.relpath(workdir, tmp_path), RunDir(workdir).has_checkpoint()))
        return train_and_evaluate(config, workdir)

    def killing_runner(config, workdir):
        if "0000" not in workdir:
            return runner(config, workdir)
        calls.append((os.path.relpath(workdir, tmp_path), RunDir(workdir).has_checkpoint()))
        train_and_evaluate(dict(config, epochs=1), workdir)  # the first epoch and its checkpoint ...
        raise _Killed()  # ... then the process dies

    with pytest.raises(_Killed):
        sweeps.run_sweep(SWEEP, str(tmp_path), runner=killing_runner, log=lambda *_: None)
    interrupted = optuna.load_study(study_name="sweep", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state.name for t in interrupted.trials] == ["RUNNING"]

    summary = sweeps.run_sweep(SWEEP, str(tmp_path), runner=runner, log=lambda *_: None)

    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert [t["params"] for t in complete] == _straight_params(SWEEP)
    # The retry (trial 1) took over the killed trial 0's values and directory; trial 2 drew the next point.
    assert [(t["number"], t["retry_of"], t["trial_dir"]) for t in complete] == [(1, 0, "trials/0000"),
                                                                               (2, None, "trials/0002")]
    # Every run directory started from scratch exactly once; the killed one was resumed from its checkpoint.
    fresh = [d for d, resumed in calls if not resumed]
    assert fresh == ["trials/0000/seed_1000", "trials/0002/seed_1000"]
    assert calls[1] == ("trials/0000/seed_1000", True) and len(calls) == 3
    rows = RunDir(str(tmp_path / "trials/0000/seed_1000")).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    # Run again: nothing to do, nothing run.
    before = len(calls)
    again = sweeps.run_sweep(SWEEP, str(tmp_path), runner=runner, log=lambda *_: None)
    assert len(calls) == before and again["best"] == summary["best"]
    on_disk = json.loads((tmp_path / "sweep.json").read_text())
    assert on_disk["best"]["number"] == summary["best"]["number"]


def test_another_sweep_in_the_same_directory_is_refused(tmp_path):
    sweeps._open_study(optuna, SWEEP, str(tmp_path))  # pylint: disable=protected-access
    with pytest.raises(ValueError, match="holds another sweep: epochs 2 != 3"):
        sweeps.run_sweep(dataclasses.replace(SWEEP, epochs=3), str(tmp_path), runner=None, log=lambda *_: None)


def test_heldout_seeds_must_be_unseen():
    with pytest.raises(ValueError, match=r"seeds \[1000\] are both tuning and held-out"):
        dataclasses.replace(SWEEP, heldout_seeds=(1000, 1))


def test_every_search_space_names_its_optimizers_arguments():
    for name in search_spaces.SEARCH_SPACES:
        assert search_spaces.search_space(name)[0].name == "learning_rate"
    assert search_spaces.lr_schedule_for(0.5, 150) == "75:0.05"


def test_seed_summary():
    s = sweeps.seed_summary([0.9, 0.92, 0.94])
    assert s["mean"] == pytest.approx(0.92) and s["worst"] == 0.9 and s["se"] == pytest.approx(0.02 / 3 ** 0.5)


def test_without_optuna_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)  # `import optuna` raises ImportError
    with pytest.raises(ImportError, match="pip install optuna"):
        sweeps.optuna_module()
