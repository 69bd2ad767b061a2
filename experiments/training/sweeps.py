"""A sweep: an Optuna study whose objective is the runner, resumable trial by trial.

    W/study.db                  the Optuna study (SQLite): every trial, its values and state
    W/trials/NNNN/seed_S/       one runner workdir (`train_and_evaluate`) per trial and tuning seed
    W/heldout/seed_S/           the best trial's configuration rerun on each held-out seed
    W/sweep.json                the summary (written atomically after every trial)

Protocol (the same for every optimizer): `trials` configurations drawn from the optimizer's
search space (`search_spaces.py`) by Optuna's scrambled Sobol sampler, each trained for `epochs`
effective epochs (the same gradient evaluations for every optimizer) on each tuning seed; a trial's
value is its *worst* tuning seed's final test accuracy (a rule that weighs the worst seed); the best
trial is then rerun on the held-out seeds, which no trial used, and reported as mean, standard error
(sample standard deviation / sqrt(n)) and worst seed.

Why the quasi-random sampler: it does not adapt to the values, so a sweep that is killed and resumed
proposes exactly the trials a straight one does (Optuna counts the Sobol index in the study itself),
and every optimizer gets the same well-spread points of its unit cube.

Resuming. Running the same sweep again continues it: a trial that is COMPLETE is never run again;
a trial that an interruption left RUNNING (a killed process) or FAIL (an exception, Ctrl-C) is
marked failed and re-enqueued once with the same values and the same directory, so its runner runs
resume from their last checkpoint instead of starting over (`retry_of` names the trial it replaces).
`trials` and `heldout_seeds` may change (the held-out seeds do not define the trials: a resumed sweep
may be reported on more seeds; each held-out run directory is reused, so the best trial must be the one
those directories were run with, or the runner refuses them); the other settings must match the
study's (`SweepConfig.identity`), or the sweep is refused.
One process per sweep directory at a time. A trial whose run diverges (loss NaN/inf) is a finished
trial with value 0 (user attribute `diverged`), not a failure.

Defaults. `default_rule` states once how a sweep may change an experiment default (registry.py): its
best trial, by the worst tuning seed, replaces the default only at the experiment's own budget and only
if its worst held-out seed beats the default's on the same seeds.

Optuna is an optional dependency (requirements.txt says why): the library and the runner do not
import it; `optuna_module()` raises a clear error when it is missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from control_opt._internal import atomic
from experiments.training import search_spaces
from experiments.training.run import train_and_evaluate
from experiments.training.session import TrainingDiverged

__all__ = ["SweepConfig", "default_rule", "make_sampler", "optuna_module", "run_sweep", "seed_summary", "trial_config"]

STUDY_FILE = "study.db"
SUMMARY_FILE = "sweep.json"
RESUMABLE = ("trials", "heldout_seeds")  # SweepConfig fields a resumed sweep may change


def optuna_module():
    """`import optuna`, or an ImportError that says how to install it."""
    try:
        import optuna  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ImportError("sweeps need Optuna, an optional dependency: pip install optuna "
                          "(or pip install 'control_opt[sweep]')") from e
    return optuna


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What defines a sweep (its directory is not part of it).

    Attributes:
      optimizer: registered optimizer with a search space (`search_spaces.SEARCH_SPACES`).
      trials: trials to complete (may grow when a sweep is resumed).
      epochs: effective epochs of every run (the gradient-evaluation budget per run).
      tuning_seeds: seeds every trial is trained on (its value: the worst of them).
      heldout_seeds: seeds the best trial is rerun on, after the trials; none of tuning_seeds.
      replicas: replicas of every run (2 for Elastic-SGD / Parle in the protocol).
      sampler_seed: seed of the scrambled Sobol sequence.
      run_overrides: other runner settings shared by every run (max_train_examples, ...).
    """

    optimizer: str
    trials: int
    epochs: int = 150
    tuning_seeds: tuple[int, ...] = (1000,)
    heldout_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    replicas: int = 1
    sampler_seed: int = 0
    run_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        search_spaces.search_space(self.optimizer)  # ValueError naming the declared ones
        for name in ("trials", "epochs", "replicas"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.tuning_seeds:
            raise ValueError("tuning_seeds must name at least one seed")
        shared = sorted(set(self.tuning_seeds) & set(self.heldout_seeds))
        if shared:
            raise ValueError(f"seeds {shared} are both tuning and held-out seeds: held-out seeds must be unseen")
        fixed = sorted(set(self.run_overrides) & {"optimizer", "seed", "epochs", "replicas", "learning_rate",
                                                   "lr_schedule"})
        if fixed:
            raise ValueError(f"run_overrides may not set {', '.join(fixed)}: the sweep sets them")

    def identity(self) -> dict[str, Any]:
        """What must match for a sweep to resume (`trials` and `heldout_seeds` may differ)."""
        values = dataclasses.asdict(self)
        for name in RESUMABLE:
            values.pop(name)
        values["tuning_seeds"] = list(self.tuning_seeds)
        values["run_overrides"] = dict(self.run_overrides)
        values["search_space"] = [dataclasses.asdict(d) for d in search_spaces.search_space(self.optimizer)]
        return values


def trial_config(sweep: SweepConfig, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The runner's overrides for one run of a trial with values `params` on `seed`."""
    return dict(sweep.run_overrides, optimizer=sweep.optimizer, seed=seed, epochs=sweep.epochs,
                replicas=sweep.replicas, verbose=0, **search_spaces.as_overrides(params, sweep.epochs))


def _run(config, workdir, runner):
    """One runner run: (final test accuracy, None) or (0.0, the divergence message)."""
    try:
        return float(runner(config, workdir)["final_test_accuracy"]), None
    except TrainingDiverged as e:
        return 0.0, str(e)


def _objective(sweep: SweepConfig, path: str, runner):
    def objective(trial):
        trial_dir = trial.user_attrs.get("trial_dir") or os.path.join("trials", f"{trial.number:04d}")
        trial.set_user_attr("trial_dir", trial_dir)
        params = {d.name: trial.suggest_float(d.name, d.low, d.high, log=True)
                  for d in search_spaces.search_space(sweep.optimizer)}
        accuracies, diverged = {}, {}
        for seed in sweep.tuning_seeds:
            accuracy, message = _run(trial_config(sweep, params, seed),
                                     os.path.join(path, trial_dir, f"seed_{seed}"), runner)
            accuracies[str(seed)] = accuracy
            if message:
                diverged[str(seed)] = message
        trial.set_user_attr("test_accuracy", accuracies)
        if diverged:
            trial.set_user_attr("diverged", diverged)
        return min(accuracies.values())
    return objective


def make_sampler(optuna, sweep: SweepConfig):
    """The sweep's sampler: Optuna's scrambled Sobol sequence seeded by `sampler_seed` (its first point
    from a RandomSampler of the same seed, as Optuna does)."""
    with warnings.catch_warnings():  # "QMCSampler is experimental": its interface, not its results
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=sweep.sampler_seed,
                                          warn_independent_sampling=False)


def _open_study(optuna, sweep: SweepConfig, path: str):
    """The sweep's study, created or resumed; a study of another sweep is refused."""
    os.makedirs(path, exist_ok=True)
    storage = f"sqlite:///{os.path.abspath(os.path.join(path, STUDY_FILE))}"
    sampler = make_sampler(optuna, sweep)
    study = optuna.create_study(study_name="sweep", storage=storage, sampler=sampler, direction="maximize",
                                load_if_exists=True)
    identity = json.loads(json.dumps(sweep.identity()))
    stored = study.user_attrs.get("sweep")
    if stored is None:
        study.set_user_attr("sweep", identity)
        stored = identity
    stored = {k: v for k, v in stored.items() if k not in RESUMABLE}  # studies that recorded them
    if stored != identity:
        differences = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise ValueError(f"{path} holds another sweep: {', '.join(f'{k} {stored.get(k)!r} != {identity.get(k)!r}' for k in differences)}; "
                         "use another directory")
    return study


def _requeue_interrupted(optuna, study) -> list[int]:
    """Marks RUNNING / FAIL trials failed and enqueues each once more with its values and directory."""
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    requeued = []
    for t in trials:
        if t.state not in (states.RUNNING, states.FAIL) or t.number in retried:
            continue
        if t.state == states.RUNNING:
            study.tell(t.number, state=states.FAIL)
        if "trial_dir" not in t.user_attrs:  # killed before its values were drawn: nothing to resume
            continue
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "trial_dir": t.user_attrs["trial_dir"]})
        requeued.append(t.number)
    return requeued


def seed_summary(accuracies: Sequence[float]) -> dict[str, float]:
    """Mean, standard error (sample sd / sqrt(n); NaN for one seed) and worst of per-seed accuracies."""
    values = np.asarray(accuracies, dtype=float)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return dict(mean=float(values.mean()), se=se, worst=float(values.min()), n=int(len(values)))


def _write_summary(optuna, sweep: SweepConfig, path: str, study, heldout=None):
    states = optuna.trial.TrialState
    rows = [dict(number=t.number, state=t.state.name, params=t.params, value=t.value,
                 trial_dir=t.user_attrs.get("trial_dir"), retry_of=t.user_attrs.get("retry_of"),
                 test_accuracy=t.user_attrs.get("test_accuracy"), diverged=t.user_attrs.get("diverged"))
            for t in study.get_trials(deepcopy=False)]
    complete = [t for t in study.get_trials(deepcopy=False, states=(states.COMPLETE,))]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    summary = dict(sweep=sweep.identity(), trials_requested=sweep.trials, heldout_seeds=list(sweep.heldout_seeds),
                   trials=rows,
                   best=None if best is None else dict(number=best.number, params=best.params, value=best.value),
                   heldout=heldout)
    text = json.dumps(summary, indent=1, default=str) + "\n"
    atomic.atomic_write(os.path.join(path, SUMMARY_FILE), lambda f: f.write(text))
    return best, summary


def run_sweep(sweep: SweepConfig, path: str, *, runner: Callable = train_and_evaluate, log=print) -> dict:
    """Runs (or resumes) `sweep` in directory `path`; returns the summary written to sweep.json.

    `runner(config_overrides, workdir)` is the objective's run (`train_and_evaluate`; tests wrap it).

    Raises:
      ImportError: Optuna is not installed.
      ValueError: bad settings, or `path` holds another sweep.
    """
    optuna = optuna_module()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(optuna, sweep, path)
    requeued = _requeue_interrupted(optuna, study)
    if requeued:
        log(f"resuming interrupted trial(s) {requeued} from their checkpoints")
    states = optuna.trial.TrialState
    done = len(study.get_trials(deepcopy=False, states=(states.COMPLETE,)))
    log(f"sweep {sweep.optimizer} in {path}: {done}/{sweep.trials} trials complete")

    def after_trial(study, trial):
        _write_summary(optuna, sweep, path, study)
        log(f"trial {trial.number} {trial.state.name}: value {trial.value} params {trial.params}")

    if done < sweep.trials:
        study.optimize(_objective(sweep, path, runner), n_trials=sweep.trials - done, callbacks=[after_trial])
    best, summary = _write_summary(optuna, sweep, path, study)
    if not sweep.heldout_seeds:
        return summary
    accuracies = {}
    for seed in sweep.heldout_seeds:
        accuracy, message = _run(trial_config(sweep, best.params, seed), os.path.join(path, "heldout", f"seed_{seed}"),
                                 runner)
        accuracies[str(seed)] = accuracy
        if message:
            log(f"held-out seed {seed} diverged: {message}")
    heldout = dict(trial=best.number, params=best.params, test_accuracy=accuracies,
                   **seed_summary(list(accuracies.values())))
    _, summary = _write_summary(optuna, sweep, path, study, heldout=heldout)
    log(f"best trial {best.number} on held-out seeds {list(sweep.heldout_seeds)}: mean {heldout['mean']:.4f} "
        f"+- {heldout['se']:.4f} (SE), worst {heldout['worst']:.4f}")
    return summary


def default_rule(summary: Mapping[str, Any], *, experiment_epochs: int,
                 default_heldout: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The rule that turns a sweep into an experiment default, weighing the worst seed.

    The candidate is the sweep's best trial: the highest *worst* tuning-seed accuracy (the trial's
    value). It replaces the experiment's default only if

      1. the sweep ran at the experiment's budget (`epochs == experiment_epochs`): a configuration
         tuned for a shorter run (its rate drop at half of it) is not evidence about the longer one;
      2. the default was run on the same held-out seeds at that budget (`default_heldout`,
         {seed: test accuracy}), and the candidate's worst held-out seed is higher than the
         default's worst, with a mean no lower than the default's by more than the candidate's
         standard error.

    Args:
      summary: a sweep's summary (`run_sweep`'s return, sweep.json) with its held-out results.
      experiment_epochs: the experiment's default budget (`default_config().epochs`).
      default_heldout: the default's final test accuracy per held-out seed at the sweep's budget, or None.

    Returns:
      dict(adopt: bool, params: the candidate's values, reason: one sentence).
    """
    held = summary.get("heldout")
    if not held:
        raise ValueError("the sweep has no held-out results: run it with heldout_seeds")
    params = dict(held["params"])
    epochs = summary["sweep"]["epochs"]
    if epochs != experiment_epochs:
        return dict(adopt=False, params=params,
                    reason=f"kept: the sweep ran {epochs} effective epochs, the experiment runs {experiment_epochs}")
    if default_heldout is None:
        return dict(adopt=False, params=params, reason="kept: the default was not run on the held-out seeds at "
                                                        "this budget, so nothing says the candidate is better")
    seeds = sorted(held["test_accuracy"])
    if sorted(default_heldout) != seeds:
        raise ValueError(f"the default's held-out seeds {sorted(default_heldout)} are not the sweep's {seeds}")
    default = seed_summary([default_heldout[s] for s in seeds])
    better_worst = held["worst"] > default["worst"]
    mean_holds = held["mean"] >= default["mean"] - held["se"]
    adopt = bool(better_worst and mean_holds)
    return dict(adopt=adopt, params=params,
                reason=(f"{'adopted' if adopt else 'kept'}: worst held-out seed {held['worst']:.4f} vs the default's "
                        f"{default['worst']:.4f}, mean {held['mean']:.4f} +- {held['se']:.4f} vs {default['mean']:.4f}"))
