"""A sweep killed mid-trial and restarted finishes the same trials, none run twice (experiments/training/sweeps.py).

Two trials, the first killed. The runner is a stand-in that keeps the runner's contract (`train_and_evaluate`
in experiments/training/run.py, whose own resume is tested in tests/experiments/test_resume.py): a call with a
workdir that holds a checkpoint continues from it, epoch by epoch, and returns the summary's
`final_test_accuracy`, here a function of the trial's values. The kill is simulated in process: the runner of
the first trial raises SystemExit after its first epoch's checkpoint, which Optuna does not catch, so the trial
is left RUNNING in the study, exactly as a killed process leaves it (Optuna marks an ordinary exception FAIL
instead; both are resumed the same way). That every trial's overrides are a valid runner config is checked
without training (`test_every_trial_config_is_a_valid_run`).
"""

import dataclasses
import json
import math
import os

import pytest

optuna = pytest.importorskip("optuna", reason="sweeps need Optuna, an optional dependency (pip install optuna)")

from experiments.training import registry, search_spaces, sweeps  # noqa: E402
from experiments.training.config import resolve_config  # noqa: E402
from experiments.training.schedules import parse_lr_schedule  # noqa: E402

SWEEP = sweeps.SweepConfig(optimizer="sgd", trials=2, epochs=2, tuning_seeds=(1000,), heldout_seeds=(),
                           run_overrides=dict(max_train_examples=200, max_test_examples=100, checkpoint_every=1))
CHECKPOINT = "checkpoint.json"


def _accuracy(config):
    """The stand-in run's result: a function of the trial's values (so a mixed-up trial shows)."""
    return 1.0 / (1.0 + abs(math.log(config["learning_rate"] / 0.1)) + abs(math.log(config["l2"] / 1e-4)))


def _epochs_done(workdir):
    path = os.path.join(workdir, CHECKPOINT)
    return json.load(open(path))["epoch"] if os.path.exists(path) else 0


def _stand_in_runner(config, workdir, stop_after=None):
    """Runs the epochs `workdir` has not done yet, a checkpoint after each; `stop_after`: the epoch to stop at."""
    os.makedirs(workdir, exist_ok=True)
    for epoch in range(_epochs_done(workdir) + 1, (stop_after or config["epochs"]) + 1):
        with open(os.path.join(workdir, CHECKPOINT), "w") as f:
            json.dump(dict(epoch=epoch, config=config), f)
    return dict(final_test_accuracy=_accuracy(config))


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
    calls = []  # (run directory, epochs it had done when the run started)

    def runner(config, workdir):
        calls.append((os.path.relpath(workdir, tmp_path), _epochs_done(workdir)))
        return _stand_in_runner(config, workdir)

    def killing_runner(config, workdir):
        if "0000" not in workdir:
            return runner(config, workdir)
        calls.append((os.path.relpath(workdir, tmp_path), _epochs_done(workdir)))
        _stand_in_runner(config, workdir, stop_after=1)  # the first epoch and its checkpoint ...
        raise _Killed()  # ... then the process dies

    with pytest.raises(_Killed):
        sweeps.run_sweep(SWEEP, str(tmp_path), runner=killing_runner, log=lambda *_: None)
    interrupted = optuna.load_study(study_name="sweep", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state.name for t in interrupted.trials] == ["RUNNING"]

    summary = sweeps.run_sweep(SWEEP, str(tmp_path), runner=runner, log=lambda *_: None)

    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    straight = _straight_params(SWEEP)
    assert [t["params"] for t in complete] == straight
    assert [t["value"] for t in complete] == [_accuracy(p) for p in straight]
    # The retry (trial 1) took over the killed trial 0's values and directory; trial 2 drew the next point.
    assert [(t["number"], t["retry_of"], t["trial_dir"]) for t in complete] == [(1, 0, "trials/0000"),
                                                                               (2, None, "trials/0002")]
    # Every run directory started from scratch exactly once; the killed one resumed after its first epoch.
    assert calls == [("trials/0000/seed_1000", 0), ("trials/0000/seed_1000", 1), ("trials/0002/seed_1000", 0)]
    # Run again: nothing to do, nothing run.
    again = sweeps.run_sweep(SWEEP, str(tmp_path), runner=runner, log=lambda *_: None)
    assert len(calls) == 3 and again["best"] == summary["best"]
    on_disk = json.loads((tmp_path / "sweep.json").read_text())
    assert on_disk["best"]["number"] == summary["best"]["number"]


@pytest.mark.parametrize("optimizer", sorted(search_spaces.SEARCH_SPACES))
def test_every_trial_config_is_a_valid_run(optimizer):
    """A trial's overrides at either corner of its space resolve to a runner config with the protocol's
    schedule, and the optimizer's constructor takes its values (what the runner checks before training)."""
    sweep = sweeps.SweepConfig(optimizer=optimizer, trials=1, epochs=40)
    spec = registry.OPTIMIZERS[optimizer]
    for corner in ("low", "high"):
        params = {d.name: getattr(d, corner) for d in search_spaces.search_space(optimizer)}
        config = resolve_config(sweeps.trial_config(sweep, params, seed=1000))
        assert (config.optimizer, config.epochs, config.seed) == (optimizer, 40, 1000)
        assert config.learning_rate == params.pop("learning_rate")
        assert parse_lr_schedule(config.lr_schedule) == [(20, config.learning_rate * search_spaces.LR_DROP)]
        assert {k: config.hyperparameters[k] for k in params} == params
        spec.build(config.hyperparameters, config.learning_rate, seed=1000)


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


def _summary(epochs, accuracies):
    return dict(sweep=dict(epochs=epochs), heldout=dict(params=dict(learning_rate=0.1), test_accuracy=accuracies,
                                                        **sweeps.seed_summary(list(accuracies.values()))))


def test_default_rule_weighs_the_worst_seed_at_the_experiments_budget():
    candidate = _summary(150, {"0": 0.95, "1": 0.94, "2": 0.95})  # mean 0.9467, SE 0.0033, worst 0.94
    rule = sweeps.default_rule
    assert rule(candidate, experiment_epochs=150, default_heldout={"0": 0.96, "1": 0.92, "2": 0.95})["adopt"]
    # the candidate's higher mean does not make up for its lower worst seed
    kept = rule(candidate, experiment_epochs=150, default_heldout={"0": 0.945, "1": 0.945, "2": 0.945})
    assert not kept["adopt"] and "worst held-out seed 0.9400 vs the default's 0.9450" in kept["reason"]
    # a better worst seed with a mean lower by more than the candidate's SE is kept out
    assert not rule(candidate, experiment_epochs=150, default_heldout={"0": 0.99, "1": 0.939, "2": 0.99})["adopt"]
    # evidence from another budget, or none about the default, changes nothing
    assert "the sweep ran 20" in rule(_summary(20, candidate["heldout"]["test_accuracy"]), experiment_epochs=150,
                                      default_heldout={"0": 0.5, "1": 0.5, "2": 0.5})["reason"]
    assert not rule(candidate, experiment_epochs=150)["adopt"]
    with pytest.raises(ValueError, match="not the sweep's"):
        rule(candidate, experiment_epochs=150, default_heldout={"0": 0.9})
