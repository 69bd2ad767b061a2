"""The runner's configuration: `TrainConfig`, its defaults and its validation.

A `TrainConfig` is everything that defines a run (the workdir is not part of
it): the run's own settings (its fields) and the optimizer's hyper-parameters
(`hyperparameters`, a dict), which are declared nowhere here: they are the
chosen optimizer's constructor arguments (`hyperparameters.py`, `registry.py`).
`config.rho` reads the block (None: not set, the optimizer's default).
`resolve_config` validates and fills in every default, so config.json always
holds concrete values; `learning_rate`, `lr_schedule` and `strategy` left as
None take the optimizer's / the replicas' default. Each field's help (its entry
under Attributes) is also its command-line flag's help
(`experiments.config_flags`); a hyper-parameter's help is its docstring entry
in the optimizer class.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any, Mapping

import numpy as np

from control_opt import datasets, models
from experiments import paper_configs
from experiments.training import paper_runs, registry
from experiments.training.options import canonical_options
from experiments.training.schedules import format_lr_schedule, parse_lr_schedule

__all__ = ["TrainConfig", "RESUMABLE_CHANGES", "default_config", "config_from_dict", "config_from_json",
           "as_config", "resolve_config", "default_workdir", "flat_config"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (the workdir is not part of it).

    Attributes:
      optimizer: Registered optimizer (experiments.training.registry); its hyper-parameters are
        its constructor's arguments, each its own flag (--rho, --gamma_max, ...).
      model: Registered model (control_opt.models).
      dataset: Registered data set (control_opt.datasets).
      strategy: Registered tf.distribute strategy the model and optimizer are made under; None =
        "default" with one replica, "mirrored" with several.
      replicas: Replicas of the strategy: with mirrored, the first N GPUs, or N logical CPU devices
        without GPUs; with multi_worker, the cluster's (TF_CONFIG) replicas. elastic_sgd / parle give
        each replica its own weights; sgd and the others are data parallel. The global batch is
        batch_size, split over the replicas.
      epochs: Effective epochs (passes over the data = gradient evaluations / steps per epoch);
        150 x 40 steps = 6000 gradient evaluations on MNIST-1D.
      batch_size: Minibatch size (the global batch, split over the replicas).
      seed: Seeds the initialization, the data order and the optimizer's noise.
      learning_rate: Outer learning rate eta; None = the optimizer's default in this experiment.
      lr_schedule: Drops in the papers' form "EPOCH:VALUE,...": from effective epoch EPOCH on,
        the outer learning rate is VALUE; "" for a constant rate; None = the optimizer's default.
      hyperparameters: The optimizer's constructor arguments that differ from its defaults
        ({name: value}); resolved, every argument. One flag each.
      jit_compile: Compile the training step with XLA (no bit-for-bit guarantee: Keras turns
        op determinism's XLA off).
      steps_per_execution: Training steps per call into TensorFlow (amortizes per-step overhead);
        rounded down to a divisor of the steps per epoch.
      verbose: Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
      max_train_examples: Use only the first N training examples (tests, quick looks); None = all.
      max_test_examples: Use only the first N test examples; None = all.
      checkpoint_every: Write checkpoint.keras every this many effective epochs (and always after the last
        one). Resuming starts from the latest checkpoint, so at most checkpoint_every - 1 epochs are
        recomputed after an interruption (metrics.csv rows and TensorBoard points past it are dropped);
        the resumed run still equals a straight one bit for bit. Default 10: on the default experiment
        a checkpoint (~20 ms) costs a third of an epoch's training steps (~60 ms on 2 CPU cores), so one
        every epoch adds ~30% to the run, one every 10th ~3%, and an interruption loses at most 9
        epochs, under a second. The papers' rows, whose epochs are long, use 1.
      snapshot_every: Record the weights (the anchor for Entropy-SGD) every this many optimizer steps into
        snapshots.npz for experiments.analyze (experiments.training.snapshots; thinned to at most 1000
        evenly spaced snapshots); 0 = off. Best a multiple of steps_per_execution.
      config: A paper config (experiments/paper_configs.py; "list" prints them): its values are the
        base and flags given explicitly override them; recorded in config.json. None = the default
        experiment.
      data_dir: Folder holding the data set's files (mnist, cifar10, cifar100); None =
        $CONTROL_OPT_DATA_DIR. Not part of the run's identity (a moved folder still resumes).
      model_kwargs: The network's options as "KEY=VALUE,..." (e.g. "depth=16,width=4";
        control_opt.models.options lists them); "" = its defaults.
      dataset_kwargs: The loader's options as "KEY=VALUE,..." (e.g. "preprocess=zca"); "" = its defaults.
      augment: Random 32x32 crop of the 4-pixel reflect-padded image and horizontal flip, on the fly,
        a function of (seed, epoch, batch) so that a resumed run equals a straight one.
      startup_timeout_s: --strategy=multi_worker: seconds to wait for every worker of TF_CONFIG to
        join before giving up with an error (not part of the run's identity).
    """

    optimizer: str = "entropy_sgd"
    model: str = "mnist1d_cnn"
    dataset: str = "mnist1d"
    strategy: str | None = None
    replicas: int = 1
    epochs: int = 150
    batch_size: int = 100
    seed: int = 0
    learning_rate: float | None = None
    lr_schedule: str | None = None
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    jit_compile: bool = False
    steps_per_execution: int = 10
    checkpoint_every: int = 10
    verbose: int = dataclasses.field(default=1, metadata=dict(choices=(0, 1, 2)))
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    snapshot_every: int = 0
    config: str | None = None
    data_dir: str | None = None
    model_kwargs: str = ""
    dataset_kwargs: str = ""
    augment: bool = False
    startup_timeout_s: float = 300.0

    def __getattr__(self, name):
        # Only called for names that are not fields: a hyper-parameter reads the block (None: not set).
        if name.startswith("__") or name == "hyperparameters":
            raise AttributeError(name)
        block = self.__dict__.get("hyperparameters", {})
        if name in block:
            return block[name]
        if name in registry.hyperparameter_names():
            return None
        raise AttributeError(f"TrainConfig has no field or hyper-parameter {name!r}")


# Keys that may differ between a workdir's config.json and a resumed run: `epochs`
# may grow (nothing else depends on the total, so an extended run equals a straight
# run of the new length); the others only change how the same computation runs.
RESUMABLE_CHANGES = ("epochs", "jit_compile", "steps_per_execution", "verbose", "data_dir", "snapshot_every",
                     "checkpoint_every", "startup_timeout_s")

FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_TYPE_HINTS = typing.get_type_hints(TrainConfig)


def default_config() -> TrainConfig:
    """The default experiment: Entropy-SGD, MNIST-1D CNN, 150 effective epochs."""
    return TrainConfig()


def _split(overrides: Mapping[str, Any]) -> tuple[dict, dict]:
    """(run fields, hyper-parameters) of flat `overrides` (a nested `hyperparameters` dict merges in).

    Raises:
      ValueError: a key that is neither a field nor a registered optimizer's argument.
    """
    fields, block = {}, {}
    known = registry.hyperparameter_names()
    unknown = []
    for key, value in overrides.items():
        if key == "hyperparameters":
            block.update(value or {})
        elif key in FIELDS:
            fields[key] = value
        elif key in known:
            block[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}; known keys: {', '.join(FIELDS)} "
                         f"and the optimizers' arguments: {', '.join(known)}")
    return fields, block


def config_from_dict(overrides: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """`base` (default: `default_config()`, or the paper row `overrides["config"]` names) with the
    keys of `overrides` replaced: fields, and hyper-parameters by their names (flat; None removes one:
    the optimizer's default).

    With a paper row, a replica-local row's batch is per replica (`paper_runs.row_overrides`): the
    global batch is that times the replicas, also when `replicas` is overridden.

    Raises:
      ValueError: a key is neither a field nor an optimizer argument (a misspelt override fails loudly).
    """
    fields, block = _split(overrides)
    if base is None and fields.get("config"):
        row, per_replica_batch = paper_runs.row_overrides(fields["config"])
        row_fields, row_block = _split(row)
        fields = {**row_fields, **fields}
        block = {**row_block, **block}
        if per_replica_batch is not None and "batch_size" not in overrides:
            fields["batch_size"] = per_replica_batch * int(fields.get("replicas", 1))
        base = default_config()
    base = default_config() if base is None else base
    merged = {**base.hyperparameters, **block}
    merged = {k: v for k, v in merged.items() if v is not None}
    return dataclasses.replace(base, **fields, hyperparameters=merged)


def as_config(config) -> TrainConfig:
    """A `TrainConfig` from itself or from a dict of overrides of the default."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config)
    raise TypeError(f"config must be a TrainConfig or a dict of overrides, got {type(config).__name__}")


def config_from_json(stored: Mapping[str, Any]) -> TrainConfig:
    """The config a workdir's config.json holds. Before the `hyperparameters` block (flat files), the
    optimizer's arguments were top-level keys and those it did not take were null: they move into
    the block, the nulls are dropped."""
    stored = dict(stored)
    if "hyperparameters" not in stored:
        block = {k: stored.pop(k) for k in list(stored) if k not in FIELDS}
        stored["hyperparameters"] = {k: v for k, v in block.items() if v is not None}
    unknown = sorted(set(stored) - set(FIELDS))
    if unknown:
        raise ValueError(f"config.json has unknown key(s) {', '.join(unknown)}")
    return TrainConfig(**stored)


def flat_config(config: TrainConfig) -> dict[str, Any]:
    """The fields and the hyper-parameters in one flat dict (what resume compares key by key)."""
    values = {f: getattr(config, f) for f in FIELDS if f != "hyperparameters"}
    return {**values, **config.hyperparameters}


def _check_type(name, value):
    """Returns `value` as the field's type (int -> float where a float is due)."""
    if value is None:
        if type(None) in typing.get_args(_TYPE_HINTS[name]):
            return None
        raise ValueError(f"{name} must not be None")
    allowed = [t for t in (typing.get_args(_TYPE_HINTS[name]) or (_TYPE_HINTS[name],)) if t is not type(None)]
    kind = allowed[0]
    is_bool = isinstance(value, (bool, np.bool_))
    if kind is bool:
        ok = is_bool
    elif kind is int:
        ok = isinstance(value, (int, np.integer)) and not is_bool
    elif kind is float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not is_bool
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"{name} must be of type {kind.__name__}, got {value!r}")
    return kind(value)


def _check_registered(kind, name, known):
    if name not in known:
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)}")


def resolve_config(config) -> TrainConfig:
    """Validates `config` and fills in every default (the optimizer's, the strategy).

    The values of the optimizer's arguments are checked for type here and for range by the
    optimizer's own constructor, which the runner calls before it writes anything.

    Raises:
      ValueError: unknown optimizer/model/dataset/strategy (listing the choices), a value of the
        wrong type or range, an argument the optimizer does not take, or a malformed `lr_schedule`.
    """
    config = as_config(config)
    _check_registered("optimizer", config.optimizer, list(registry.OPTIMIZERS))
    _check_registered("model", config.model, models.names())
    _check_registered("dataset", config.dataset, datasets.names())
    spec = registry.OPTIMIZERS[config.optimizer]
    values = {f: getattr(config, f) for f in FIELDS if f != "hyperparameters"}
    for name in registry.RUN_LEVEL:
        if values[name] is None:
            values[name] = spec.defaults[name]
    values = {name: _check_type(name, value) for name, value in values.items()}
    for name in ("epochs", "batch_size", "steps_per_execution", "replicas", "checkpoint_every"):
        if values[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {values[name]}")
    if values["strategy"] is None:  # several replicas on one host: the one strategy that places them
        values["strategy"] = "default" if values["replicas"] == 1 else "mirrored"
    _check_registered("strategy", values["strategy"], list(registry.STRATEGIES))
    if values["replicas"] > 1 and values["strategy"] == "default":
        raise ValueError(f"replicas={values['replicas']} with strategy='default', which has one replica: leave "
                         "--strategy out (several replicas select 'mirrored') or give --strategy=mirrored")
    if values["batch_size"] % values["replicas"]:
        raise ValueError(f"batch_size {values['batch_size']} must be a multiple of replicas={values['replicas']}")
    if values["snapshot_every"] < 0:
        raise ValueError(f"snapshot_every must be a non-negative integer, got {values['snapshot_every']}")
    for name in ("max_train_examples", "max_test_examples"):
        if values[name] is not None and values[name] < 1:
            raise ValueError(f"{name} must be a positive integer or None, got {values[name]}")
    if values["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer, got {values['seed']}")
    if values["verbose"] not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {values['verbose']}")
    if not (math.isfinite(values["startup_timeout_s"]) and values["startup_timeout_s"] > 0):
        raise ValueError(f"startup_timeout_s must be a positive number, got {values['startup_timeout_s']}")
    lr = values["learning_rate"]
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be a positive finite number, got {lr}")
    values["lr_schedule"] = format_lr_schedule(parse_lr_schedule(values["lr_schedule"]))
    if values["config"] is not None:
        paper_configs.resolve(values["config"])  # unknown name: ValueError listing the names
    values["model_kwargs"] = canonical_options(values["model_kwargs"])
    values["dataset_kwargs"] = canonical_options(values["dataset_kwargs"])
    values["hyperparameters"] = spec.resolved(config.optimizer, config.hyperparameters)
    return TrainConfig(**values)


def default_workdir(config) -> str:
    """`runs/<config>` for a paper config, else `runs/<optimizer>_<dataset>`."""
    config = as_config(config)
    if config.config:
        return os.path.join("runs", config.config)
    return os.path.join("runs", f"{config.optimizer}_{config.dataset}")
