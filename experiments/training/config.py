"""The runner's configuration: `TrainConfig`, its defaults and its validation.

A `TrainConfig` is everything that defines a run (the workdir is not part of
it). Optimizer hyper-parameters left as None take the experiment's default for
the chosen optimizer (`registry.OPTIMIZERS[name].defaults`); setting one the
optimizer does not take is an error. `resolve_config` validates and fills them
in, so config.json always holds concrete values. Each field's help (its entry
under Attributes) is also its command-line flag's help
(`experiments.config_flags`).
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
from experiments.training import registry
from experiments.training.options import canonical_options
from experiments.training.schedules import format_lr_schedule, parse_lr_schedule

__all__ = ["TrainConfig", "HYPERPARAMETERS", "RESUMABLE_CHANGES", "default_config", "config_from_dict",
           "as_config", "resolve_config", "default_workdir"]

HYPERPARAMETERS = registry.HYPERPARAMETERS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (the workdir is not part of it).

    Attributes:
      optimizer: Registered optimizer (experiments.training.registry).
      model: Registered model (control_opt.models).
      dataset: Registered data set (control_opt.datasets).
      strategy: Registered tf.distribute strategy the model and optimizer are made under.
      replicas: Replicas of the strategy (with --strategy=mirrored): the first N GPUs, or N logical
        CPU devices without GPUs; with --strategy=multi_worker, the cluster's (TF_CONFIG) replicas. elastic_sgd / parle give each replica its own weights; sgd and the
        others are data parallel. The global batch is batch_size, split over the replicas.
      epochs: Effective epochs (passes over the data = gradient evaluations / steps per epoch);
        150 x 40 steps = 6000 gradient evaluations on MNIST-1D.
      batch_size: Minibatch size.
      seed: Seeds the initialization, the data order and the optimizer's noise.
      learning_rate: Outer learning rate eta.
      lr_schedule: Drops in the papers' form "EPOCH:VALUE,...": from effective epoch EPOCH on,
        the outer learning rate is VALUE; "" for a constant rate.
      momentum: Outer momentum m (SGD / Entropy-SGD / HopfLaxSGD).
      nesterov: Nesterov outer momentum.
      beta_1: Adam beta_1 (Adam / Entropy-Adam outer step).
      beta_2: Adam beta_2.
      epsilon: Adam epsilon.
      langevin_steps: Inner Langevin steps L per outer step (Entropy-SGD / Entropy-Adam, docs/math.md section 3).
      langevin_learning_rate: Inner learning rate eta'.
      langevin_momentum: Inner momentum m'.
      langevin_nesterov: Nesterov inner momentum.
      gamma: Initial scope gamma0.
      scoping: gamma1 in gamma_k = gamma0 (1 + gamma1)^k.
      noise: Thermal noise eps of the Langevin steps.
      mean_decay: beta1, weight of the old running mean.
      l2: Coupled L2 weight decay wd.
      rho: Coupling of each replica to the center (Elastic-SGD / Parle, docs/distributed.md).
      communication_period: Steps between two all-reduces of the parameters (Elastic-SGD).
      inner_steps: HopfLaxSGD fixed-point steps L per outer step (docs/math.md section 4).
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
        epochs, under a second. The papers' rows, whose epochs are long, use 1; the multi-worker loop
        checkpoints every epoch.
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
    """

    optimizer: str = "entropy_sgd"
    model: str = "mnist1d_cnn"
    dataset: str = "mnist1d"
    strategy: str = "default"
    replicas: int = 1
    epochs: int = 150
    batch_size: int = 100
    seed: int = 0
    learning_rate: float | None = None
    lr_schedule: str | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None
    langevin_steps: int | None = None
    langevin_learning_rate: float | None = None
    langevin_momentum: float | None = None
    langevin_nesterov: bool | None = None
    gamma: float | None = None
    scoping: float | None = None
    noise: float | None = None
    mean_decay: float | None = None
    l2: float | None = None
    rho: float | None = None
    communication_period: int | None = None
    inner_steps: int | None = None
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


# Keys that may differ between a workdir's config.json and a resumed run: `epochs`
# may grow (nothing else depends on the total, so an extended run equals a straight
# run of the new length); the others only change how the same computation runs.
RESUMABLE_CHANGES = ("epochs", "jit_compile", "steps_per_execution", "verbose", "data_dir", "snapshot_every",
                     "checkpoint_every")

_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_TYPE_HINTS = typing.get_type_hints(TrainConfig)
assert set(HYPERPARAMETERS) <= set(_FIELDS), "every hyper-parameter must be a TrainConfig field"


def default_config() -> TrainConfig:
    """The default experiment: Entropy-SGD, MNIST-1D CNN, 150 effective epochs."""
    return TrainConfig()


def config_from_dict(overrides: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """`base` (default: `default_config()`, or the paper row `overrides["config"]` names) with the
    fields in `overrides` replaced.

    Raises:
      ValueError: a key is not a `TrainConfig` field (a misspelt override fails loudly).
    """
    if base is None and overrides.get("config"):
        from experiments.training import paper_runs  # pylint: disable=import-outside-toplevel
        base = paper_runs.base_config(overrides["config"])  # the paper row's values, then the overrides
    base = default_config() if base is None else base
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}; known keys: {', '.join(_FIELDS)}")
    return dataclasses.replace(base, **dict(overrides))


def as_config(config) -> TrainConfig:
    """A `TrainConfig` from itself or from a dict of overrides of the default."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config)
    raise TypeError(f"config must be a TrainConfig or a dict of overrides, got {type(config).__name__}")


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
    """Validates `config` and fills the optimizer's default hyper-parameters.

    Raises:
      ValueError: unknown optimizer/model/dataset/strategy (listing the choices),
        a value of the wrong type or range, a hyper-parameter the optimizer does
        not take, or a malformed `lr_schedule`.
    """
    config = as_config(config)
    _check_registered("optimizer", config.optimizer, list(registry.OPTIMIZERS))
    _check_registered("model", config.model, models.names())
    _check_registered("dataset", config.dataset, datasets.names())
    _check_registered("strategy", config.strategy, list(registry.STRATEGIES))
    spec = registry.OPTIMIZERS[config.optimizer]
    values = dataclasses.asdict(config)
    for name in HYPERPARAMETERS:
        if name in spec.defaults:
            if values[name] is None:
                values[name] = spec.defaults[name]
        elif values[name] is not None:
            raise ValueError(f"{name} does not apply to optimizer {config.optimizer!r}, which takes: "
                             f"{', '.join(spec.defaults)}")
    values = {name: _check_type(name, value) for name, value in values.items()}
    for name in ("epochs", "batch_size", "steps_per_execution", "replicas", "checkpoint_every"):
        if values[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {values[name]}")
    if values["replicas"] > 1 and values["strategy"] == "default":
        raise ValueError(f"replicas={values['replicas']} needs strategy='mirrored' (the default strategy has one "
                         "replica)")
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
    lr = values["learning_rate"]
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be a positive finite number, got {lr}")
    values["lr_schedule"] = format_lr_schedule(parse_lr_schedule(values["lr_schedule"]))
    if values["config"] is not None:
        paper_configs.resolve(values["config"])  # unknown name: ValueError listing the names
    values["model_kwargs"] = canonical_options(values["model_kwargs"])
    values["dataset_kwargs"] = canonical_options(values["dataset_kwargs"])
    return TrainConfig(**values)


def default_workdir(config) -> str:
    """`runs/<config>` for a paper config, else `runs/<optimizer>_<dataset>`."""
    config = as_config(config)
    if config.config:
        return os.path.join("runs", config.config)
    return os.path.join("runs", f"{config.optimizer}_{config.dataset}")
