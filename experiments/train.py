r"""The default experiment: train a network with one of control_opt's optimizers.

    python -m experiments.train                                 # Entropy-SGD on MNIST-1D
    python -m experiments.train --optimizer=sgd --epochs=150 --workdir=runs/sgd
    python -m experiments.train --optimizer=entropy_sgd --lr_schedule=2:0.1

`main()` only parses flags; the work is done by `train_and_evaluate(config,
workdir)`, which notebooks and tests call directly with a `TrainConfig` or a dict
of overrides of `default_config()`.

Counting. One Keras training step is one minibatch gradient evaluation for every
optimizer (Entropy-SGD's inner Langevin steps are successive Keras steps; DESIGN.md
section 1), so an *effective epoch* is one pass over the training set,
`steps_per_epoch = n_train // batch_size` gradient evaluations, whatever
`langevin_steps` is. `--epochs` and the epochs of `--lr_schedule` count effective
epochs, as the papers do.

Anchor and probe. With Entropy-SGD/Entropy-Adam the model's variables hold the
probe w' during an epoch and the optimizer holds the anchor w, the weights to
report. `control_opt.AnchorSwap` comes first in the callback list, so
validation (the test set), the per-epoch metrics and the checkpoint all see the
anchor, and after `fit` the model holds the anchor. The *train* loss/accuracy are
Keras's running averages over the epoch's minibatches, i.e. measured at the probe
for those optimizers (at the current weights for SGD/Adam).

The workdir (default `runs/<optimizer>_<dataset>`) receives, every file written
atomically (temporary file in the same directory, then `os.replace`):

    config.json       the resolved config (every field concrete)
    metrics.csv       one row per effective epoch (see METRICS_COLUMNS)
    tensorboard/      train/ and validation/ scalars per effective epoch
    checkpoint.keras  model + optimizer state after the latest epoch (`model.save`)
    checkpoint.json   {"epoch", "gradient_evaluations", "wall_time_s"} of that checkpoint
    summary.json      final test/train metrics at the anchor, cost, timing
    curves.png        loss and accuracy against effective epoch, train and test

Resuming. Running the same command with the same workdir continues from
`checkpoint.keras` (`keras.models.load_model`; the optimizer state, including the
position in the inner loop, is in it). The data order is a function of (seed,
epoch) only, so a run interrupted and resumed equals the same run done straight.
A workdir holding a run with a different config is refused, naming the keys that
differ; only `RESUMABLE_CHANGES` may differ: `epochs` may be *increased* to extend
a finished run (nothing else depends on the total number of epochs, so the
extended run equals a straight run of the new length), and `verbose`,
`steps_per_execution`, `jit_compile` only change how the same computation is
executed. A finished run just reports its summary.

Reproducibility. `keras.utils.set_random_seed(seed)` and TensorFlow's op
determinism (switched on for the run only) make a fixed seed reproduce a run bit
for bit on the same machine and build, whatever `steps_per_execution` is (it is
rounded down to a divisor of the steps per epoch so that executions never
straddle epochs). Keras turns XLA off under op determinism, so `--jit_compile`
runs go without it: faster steps, no bit-for-bit guarantee.

Exit status of `python -m experiments.train`: 0 on success, 1 if the loss became
NaN/inf (the last good checkpoint is kept), 2 for a bad configuration (unknown
name, bad value, config mismatch with the workdir).
"""

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
import typing
from typing import Any, Callable, Mapping

from absl import app, flags
import keras
import numpy as np
import tensorflow as tf

from control_opt import datasets, models
from control_opt._internal.atomic import atomic_path, atomic_write
from control_opt.optimizers.callbacks import AnchorSwap
from control_opt.optimizers import EntropyAdam, EntropySGD, HopfLaxSGD

__all__ = [
    "TrainConfig", "default_config", "config_from_dict", "resolve_config", "default_workdir",
    "train_and_evaluate", "parse_lr_schedule", "epoch_permutation", "register_optimizer",
    "learning_rate_at", "OPTIMIZERS", "OptimizerSpec", "HYPERPARAMETERS", "RESUMABLE_CHANGES",
    "ConfigMismatchError", "TrainingDiverged", "METRICS_COLUMNS",
]


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (the workdir is not part of it).

    Optimizer hyper-parameters left as None take the experiment's default for the
    chosen optimizer (`OPTIMIZERS[name].defaults`); setting one the optimizer does
    not take is an error. `resolve_config` fills them in.
    """

    optimizer: str = "entropy_sgd"
    model: str = "mnist1d_cnn"
    dataset: str = "mnist1d"
    epochs: int = 150  # effective epochs; 150 x 40 steps = 6000 gradient evaluations on MNIST-1D
    batch_size: int = 100
    seed: int = 0
    # The outer learning rate eta; `lr_schedule` "E:v,E:v" sets it to v from effective epoch E on.
    learning_rate: float | None = None
    lr_schedule: str | None = None
    # SGD / Entropy-SGD outer step.
    momentum: float | None = None
    nesterov: bool | None = None
    # Adam / Entropy-Adam outer step.
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None
    # Entropy-SGD / Entropy-Adam inner (Langevin) loop, DESIGN.md section 3.
    langevin_steps: int | None = None  # L
    langevin_learning_rate: float | None = None  # eta'
    langevin_momentum: float | None = None  # m'
    langevin_nesterov: bool | None = None
    gamma: float | None = None  # gamma0, the initial scope
    scoping: float | None = None  # gamma1 in gamma_k = gamma0 (1 + gamma1)^k
    noise: float | None = None  # eps, the thermal noise
    mean_decay: float | None = None  # beta1, the weight of the old running mean
    l2: float | None = None  # coupled weight decay wd
    # HopfLaxSGD inner (fixed-point) loop, DESIGN.md section 4; gamma, scoping, mean_decay shared.
    inner_steps: int | None = None  # L
    # Execution (may change when resuming: same computation).
    jit_compile: bool = False
    steps_per_execution: int = 10
    verbose: int = 1
    # Use only the first N examples (tests, quick looks); None = all.
    max_train_examples: int | None = None
    max_test_examples: int | None = None


HYPERPARAMETERS = (
    "learning_rate", "lr_schedule", "momentum", "nesterov", "beta_1", "beta_2", "epsilon",
    "inner_steps", "langevin_steps", "langevin_learning_rate", "langevin_momentum", "langevin_nesterov",
    "gamma", "scoping", "noise", "mean_decay", "l2",
)

# Keys that may differ between a workdir's config.json and a resumed run.
RESUMABLE_CHANGES = ("epochs", "jit_compile", "steps_per_execution", "verbose")

_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
_TYPE_HINTS = typing.get_type_hints(TrainConfig)


class ConfigMismatchError(ValueError):
    """The workdir holds a run whose config differs from the requested one."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def default_config() -> TrainConfig:
    """The default experiment: Entropy-SGD, MNIST-1D CNN, 150 effective epochs."""
    return TrainConfig()


def config_from_dict(overrides: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """`base` (default: `default_config()`) with the fields in `overrides` replaced.

    Raises:
      ValueError: a key is not a `TrainConfig` field (a misspelt override fails loudly).
    """
    base = default_config() if base is None else base
    unknown = sorted(set(overrides) - set(_FIELD_TYPES))
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}; "
                         f"known keys: {', '.join(_FIELD_TYPES)}")
    return dataclasses.replace(base, **dict(overrides))


def _as_config(config) -> TrainConfig:
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
    if kind is bool:
        ok = isinstance(value, (bool, np.bool_))
        value = bool(value) if ok else value
    elif kind is int:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        value = int(value) if ok else value
    elif kind is float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"{name} must be of type {kind.__name__}, got {value!r}")
    return value


def resolve_config(config) -> TrainConfig:
    """Validates `config` and fills the optimizer's default hyper-parameters.

    Raises:
      ValueError: unknown optimizer/model/dataset (listing the choices), a value of
        the wrong type or range, a hyper-parameter the optimizer does not take,
        or a malformed `lr_schedule`.
    """
    config = _as_config(config)
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; known optimizers: {', '.join(OPTIMIZERS)}")
    if config.model not in models.names():
        raise ValueError(f"unknown model {config.model!r}; known models: {', '.join(models.names())}")
    if config.dataset not in datasets.names():
        raise ValueError(f"unknown dataset {config.dataset!r}; known datasets: {', '.join(datasets.names())}")
    spec = OPTIMIZERS[config.optimizer]
    values = dataclasses.asdict(config)
    for name in HYPERPARAMETERS:
        if name in spec.defaults:
            if values[name] is None:
                values[name] = spec.defaults[name]
        elif values[name] is not None:
            raise ValueError(f"{name} does not apply to optimizer {config.optimizer!r}, which takes: "
                             f"{', '.join(spec.defaults)}")
    values = {name: _check_type(name, value) for name, value in values.items()}
    for name in ("epochs", "batch_size", "steps_per_execution"):
        if values[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {values[name]}")
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
    values["lr_schedule"] = _format_lr_schedule(parse_lr_schedule(values["lr_schedule"]))
    return TrainConfig(**values)


def default_workdir(config) -> str:
    """`runs/<optimizer>_<dataset>`."""
    config = _as_config(config)
    return os.path.join("runs", f"{config.optimizer}_{config.dataset}")


# --------------------------------------------------------------------------- #
# Learning-rate schedule: the papers' "epoch:value" drops
# --------------------------------------------------------------------------- #

_SCHEDULE_FORM = ('expected "EPOCH:VALUE,EPOCH:VALUE,...", e.g. "2:0.1,4:0.01": from effective epoch '
                  "EPOCH on, the outer learning rate is VALUE; epochs non-negative and increasing, values positive")


def parse_lr_schedule(text: str | None) -> list[tuple[float, float]]:
    """Parses "E1:v1,E2:v2" into [(E1, v1), (E2, v2)]; "" or None -> [].

    From effective epoch E_i on (E may be fractional), the outer learning rate is
    v_i; before E_1 it is `learning_rate`.

    Raises:
      ValueError: the string is not of that form; the message shows the form.
    """
    if text is None or not str(text).strip():
        return []
    pieces = []
    for piece in str(text).split(","):
        parts = piece.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            epoch, value = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"bad lr_schedule {text!r}: cannot read {piece.strip()!r}; {_SCHEDULE_FORM}") from None
        if not (math.isfinite(epoch) and epoch >= 0):
            raise ValueError(f"bad lr_schedule {text!r}: epoch {parts[0].strip()} is not >= 0; {_SCHEDULE_FORM}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"bad lr_schedule {text!r}: value {parts[1].strip()} is not > 0; {_SCHEDULE_FORM}")
        if pieces and epoch <= pieces[-1][0]:
            raise ValueError(f"bad lr_schedule {text!r}: epochs must increase; {_SCHEDULE_FORM}")
        pieces.append((epoch, value))
    return pieces


def _format_lr_schedule(pieces):
    def fmt(x):
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))

    return ",".join(f"{fmt(e)}:{fmt(v)}" for e, v in pieces)


def _first_step_of_epoch(epoch, steps_per_epoch):
    return int(math.ceil(epoch * steps_per_epoch - 1e-9))


def learning_rate_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The outer learning rate used by gradient evaluation `step` (0-based)."""
    lr = config.learning_rate
    for epoch, value in parse_lr_schedule(config.lr_schedule):
        if step >= _first_step_of_epoch(epoch, steps_per_epoch):
            lr = value
    return lr


def _learning_rate(config: TrainConfig, steps_per_epoch: int):
    """A float, or a PiecewiseConstantDecay over optimizer iterations (gradient evaluations).

    Keras evaluates the schedule at `iterations` = the 0-based index of the step
    being applied and uses values[i+1] when step > boundaries[i]; a drop at
    effective epoch E therefore has boundary first_step(E) - 1.
    """
    values, boundaries = [config.learning_rate], []
    for epoch, value in parse_lr_schedule(config.lr_schedule):
        first = _first_step_of_epoch(epoch, steps_per_epoch)
        if first <= 0:
            values[-1] = value  # in force from the first step
        elif boundaries and first - 1 <= boundaries[-1]:
            values[-1] = value  # two drops inside one step: the later one wins
        else:
            boundaries.append(first - 1)
            values.append(value)
    if not boundaries:
        return values[0]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# --------------------------------------------------------------------------- #
# Optimizers
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """How the runner makes an optimizer.

    Attributes:
      build: `(config, learning_rate) -> keras.optimizers.Optimizer`; learning_rate
        is a float or a Keras schedule over gradient evaluations.
      defaults: the hyper-parameters (TrainConfig fields) it takes, with this
        experiment's defaults.
    """

    build: Callable[[TrainConfig, Any], keras.optimizers.Optimizer]
    defaults: Mapping[str, Any]


OPTIMIZERS: dict[str, OptimizerSpec] = {}


def register_optimizer(name: str, *, defaults: Mapping[str, Any]):
    """Decorator registering `build(config, learning_rate)` under `--optimizer=name`.

    A later issue adds e.g. "hopf_lax" this way (adding any new hyper-parameter to
    `TrainConfig`, `HYPERPARAMETERS` and the flags).
    """
    unknown = set(defaults) - set(HYPERPARAMETERS)
    if unknown:
        raise ValueError(f"defaults for {name!r} name unknown hyper-parameters: {sorted(unknown)}")

    def decorator(build):
        OPTIMIZERS[name] = OptimizerSpec(build=build, defaults=dict(defaults))
        return build

    return decorator


# The authors' defaults for the inner loop (DESIGN.md section 3; authors' Lua code).
_LANGEVIN_DEFAULTS = dict(langevin_steps=20, langevin_learning_rate=0.1, langevin_momentum=0.9,
                          langevin_nesterov=True, gamma=1e-4, scoping=1e-3, noise=1e-4,
                          mean_decay=0.75, l2=0.0)


def _langevin_kwargs(config):
    return {name: getattr(config, name) for name in _LANGEVIN_DEFAULTS}


# Measured on MNIST-1D (CNN, batch 100, 150 effective epochs, seeds 0-2): 94.5-95.9% test
# accuracy; a constant 0.05 plateaus at 91-93% and a constant 0.1 oscillates.
@register_optimizer("sgd", defaults=dict(learning_rate=0.1, lr_schedule="75:0.01", momentum=0.9, nesterov=True))
def _build_sgd(config, learning_rate):
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.momentum, nesterov=config.nesterov)


# The MNIST-1D authors train with Adam at 1e-2.
@register_optimizer("adam", defaults=dict(learning_rate=1e-2, lr_schedule="", beta_1=0.9, beta_2=0.999, epsilon=1e-7))
def _build_adam(config, learning_rate):
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                                 epsilon=config.epsilon)


# The authors' inner loop, with a stronger scoping, L2 and an outer-lr drop chosen by
# measurement on MNIST-1D (CNN, batch 100, 6000 gradient evaluations; test accuracy
# at the anchor for seeds 0, 1, 2; `python -m experiments.train --seed=S ...`):
#   authors' gamma0=1e-4, gamma1=1e-3, l2=0, constant lr 1:   94.0, 92.7, -
#   gamma0=0.01, gamma1=0.01 (gamma_k 0.01 -> 0.2):            95.0, 93.1, 92.5
#   gamma0=0.01, gamma1=0.01, l2=5e-4:                         94.6, 79.8, 93.6
#     (seed 1 blew up at epoch 94 and had not recovered: a constant outer lr of 1
#     leaves the anchor following every excursion of the chain)
#   same, outer lr 1 then 0.1 from epoch 75 (the default):     94.3, 93.8, 94.8
#     (94.3, 94.5, 94.3 with the Box-Muller noise sampler of 2026-11-27; the rows
#     above were measured with the earlier ndtri sampler, another noise stream)
#   same, eta' = 0.05 instead of the lr drop:                  87.0, 91.6, 92.0
#   SGD, Nesterov 0.9, lr 0.1 dropped to 0.01 at 75:           94.8, 95.3, 94.6
# Also tried (seed 0): gamma0=0.03: 93.3; L=5: 92.0; eps=1e-3 with eta'=0.05: 91.2.
@register_optimizer("entropy_sgd",
                    defaults=dict(learning_rate=1.0, lr_schedule="75:0.1", momentum=0.0, nesterov=False,
                                  **{**_LANGEVIN_DEFAULTS, "gamma": 0.01, "scoping": 0.01, "l2": 5e-4}))
def _build_entropy_sgd(config, learning_rate):
    return EntropySGD(learning_rate=learning_rate, momentum=config.momentum, nesterov=config.nesterov,
                      seed=config.seed, **_langevin_kwargs(config))


# Outer Adam step size measured on MNIST-1D (seed 0, 6000 gradient evaluations, the
# authors' inner loop): 1e-3 (the class default): 78.4%; 0.01: 91.2%; 0.03: 94.4%;
# 0.1: 86.7%. Adam normalizes the control, and there are only 300 outer steps.
# (0.03 gives 93.8% with the Box-Muller noise sampler; the sweep used the earlier one.)
@register_optimizer("entropy_adam",
                    defaults=dict(learning_rate=0.03, lr_schedule="", beta_1=0.9, beta_2=0.999, epsilon=1e-7, **_LANGEVIN_DEFAULTS))
def _build_entropy_adam(config, learning_rate):
    return EntropyAdam(learning_rate=learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                       epsilon=config.epsilon, seed=config.seed, **_langevin_kwargs(config))


# Chosen by measurement on MNIST-1D (see HopfLaxSGD's docstring and BENCHMARKS.md).
@register_optimizer("hopf_lax",
                    defaults=dict(learning_rate=2.0, lr_schedule="", momentum=0.0, nesterov=False, inner_steps=10,
                                  gamma=1.0, scoping=1e-3, mean_decay=0.75, l2=0.0))
def _build_hopf_lax(config, learning_rate):
    return HopfLaxSGD(learning_rate=learning_rate, momentum=config.momentum, nesterov=config.nesterov,
                      inner_steps=config.inner_steps, gamma=config.gamma, scoping=config.scoping,
                      mean_decay=config.mean_decay, l2=config.l2)




# --------------------------------------------------------------------------- #
# Data order
# --------------------------------------------------------------------------- #


def _permutation(seed, epoch, n):
    # Stateless: a function of (seed, epoch) alone, in eager code and inside tf.data alike.
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which effective epoch `epoch` (0-based) visits the n examples.

    A function of (seed, epoch) only, so a resumed run sees the same data as a
    straight one.
    """
    return _permutation(seed, epoch, n).numpy()


def _train_batches(x, y, *, seed, batch_size, initial_epoch, epochs):
    """tf.data of (x, y) minibatches for epochs [initial_epoch, epochs).

    Every epoch is n // batch_size full batches of its own permutation (the
    remainder is dropped per epoch, so batches never straddle two epochs).
    """
    n = len(x)
    steps = n // batch_size
    x_all, y_all = tf.constant(x), tf.constant(y)

    def epoch_batches(epoch):
        order = _permutation(seed, epoch, n)[: steps * batch_size]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(order, (steps, batch_size)))

    batches = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_batches)
    batches = batches.map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)))
    batches = batches.apply(tf.data.experimental.assert_cardinality((epochs - initial_epoch) * steps))
    return batches.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- #
# Files (all written atomically)
# --------------------------------------------------------------------------- #

METRICS_COLUMNS = ("epoch", "gradient_evaluations", "wall_time_s", "learning_rate",
                   "train_loss", "train_accuracy", "test_loss", "test_accuracy")


def _write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _write_metrics(path, rows):
    def write(f):
        writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write)


def _read_metrics(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k in ("epoch", "gradient_evaluations") else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _save_model(path, model):
    """`model.save` to a temporary .keras file beside `path`, then rename."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def _plot_curves(path, rows, title):
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.plot(epochs, [r[f"train_{key}"] for r in rows], label="train (running mean)")
        ax.plot(epochs, [r[f"test_{key}"] for r in rows], label="test (anchor)")
        ax.set_xlabel("effective epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()), mode="wb")


# --------------------------------------------------------------------------- #
# The per-epoch recorder
# --------------------------------------------------------------------------- #


class _TensorBoardScalars:
    """Per-epoch scalars in TensorBoard's format, with no dependency on the tensorboard package.

    (keras.callbacks.TensorBoard needs `tensorboard` installed for tf.summary.scalar;
    tf.summary.write with the "scalars" plugin metadata is the same event on disk.)
    """

    def __init__(self, logdir):
        from tensorflow.core.framework import summary_pb2  # pylint: disable=import-outside-toplevel

        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        self._writers = {split: tf.summary.create_file_writer(os.path.join(logdir, split))
                         for split in ("train", "validation")}

    def write(self, split, step, scalars):
        with self._writers[split].as_default():
            for tag, value in scalars.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=self._metadata)
        self._writers[split].flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()


class _Recorder(keras.callbacks.Callback):
    """Stops on a NaN/inf loss and, after each good epoch, writes metrics, TensorBoard and checkpoint.

    Runs after AnchorSwap in the callback list, so at `on_epoch_end` the model
    holds the anchor. Order of writes: metrics.csv, tensorboard, checkpoint.keras,
    checkpoint.json; on resume, metric rows past the checkpoint are dropped.
    """

    def __init__(self, *, workdir, config, steps_per_epoch, rows, wall_time_before):
        super().__init__()
        self.workdir, self.config, self.steps_per_epoch = workdir, config, steps_per_epoch
        self.rows = rows
        self.wall_time_before = wall_time_before
        self.diverged_epoch = None  # 0-based Keras epoch in which the loss became non-finite
        self.epoch_timings = []  # (seconds spent in training steps, steps) per epoch of this process
        self._tensorboard = None

    def on_train_begin(self, logs=None):
        self._t_start = time.perf_counter()
        self._tensorboard = _TensorBoardScalars(os.path.join(self.workdir, "tensorboard"))

    def on_train_end(self, logs=None):
        self._tensorboard.close()

    def on_epoch_begin(self, epoch, logs=None):
        self._t_epoch, self._t_steps_done = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._t_steps_done is None:
            self._t_steps_done = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(np.asarray(loss)).all():
            self.diverged_epoch = self._epoch_in_progress()
            self.model.stop_training = True

    def _epoch_in_progress(self):
        return int(self.model.optimizer.iterations.numpy() - 1) // self.steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        if self.diverged_epoch is not None or not all(np.isfinite(float(logs.get(k, np.nan))) for k in keys):
            self.diverged_epoch = epoch if self.diverged_epoch is None else self.diverged_epoch
            self.model.stop_training = True
            return  # nothing of this epoch is written: the previous checkpoint stays
        self.epoch_timings.append(((self._t_steps_done or now) - self._t_epoch, self.steps_per_epoch))
        steps = (epoch + 1) * self.steps_per_epoch
        row = dict(epoch=epoch + 1, gradient_evaluations=steps,
                   wall_time_s=round(self.wall_time_before + now - self._t_start, 3),
                   learning_rate=learning_rate_at(self.config, steps - 1, self.steps_per_epoch),
                   train_loss=float(logs["loss"]), train_accuracy=float(logs["accuracy"]),
                   test_loss=float(logs["val_loss"]), test_accuracy=float(logs["val_accuracy"]))
        self.rows.append(row)
        _write_metrics(os.path.join(self.workdir, "metrics.csv"), self.rows)
        self._tensorboard.write("train", epoch + 1, {"epoch_loss": row["train_loss"],
                                                     "epoch_accuracy": row["train_accuracy"],
                                                     "epoch_learning_rate": row["learning_rate"]})
        self._tensorboard.write("validation", epoch + 1, {"epoch_loss": row["test_loss"],
                                                          "epoch_accuracy": row["test_accuracy"]})
        _save_model(os.path.join(self.workdir, "checkpoint.keras"), self.model)
        _write_json(os.path.join(self.workdir, "checkpoint.json"),
                    dict(epoch=epoch + 1, gradient_evaluations=steps, wall_time_s=row["wall_time_s"]))

    def ms_per_gradient_evaluation(self):
        """Time in training steps per gradient evaluation, this process; the first
        epoch (tracing, compilation) is left out when there are others."""
        timings = self.epoch_timings[1:] if len(self.epoch_timings) > 1 else self.epoch_timings
        if not timings:
            return None
        return 1000.0 * sum(t for t, _ in timings) / sum(s for _, s in timings)


# --------------------------------------------------------------------------- #
# The experiment
# --------------------------------------------------------------------------- #


def _config_differences(stored: Mapping[str, Any], config: TrainConfig):
    requested = dataclasses.asdict(config)
    keys = sorted((set(stored) | set(requested)) - set(RESUMABLE_CHANGES))
    return [f"{k}: workdir has {stored.get(k)!r}, requested {requested.get(k)!r}"
            for k in keys if stored.get(k) != requested.get(k)]


def _effective_steps_per_execution(requested, steps_per_epoch):
    """The largest divisor of steps_per_epoch not above `requested`.

    Keras runs `steps_per_execution` steps per call whatever the epoch boundary, so
    a value that does not divide the epoch would shift every later epoch's data.
    """
    return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def _compile(model, optimizer, config, steps_per_execution):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=config.jit_compile, steps_per_execution=steps_per_execution)


def _summary(config, rows, *, steps_per_epoch, steps_per_execution, jit_compile, ms_per_gradient_evaluation):
    last = rows[-1]
    return dict(
        optimizer=config.optimizer, model=config.model, dataset=config.dataset,
        epochs=last["epoch"], gradient_evaluations=last["gradient_evaluations"],
        steps_per_epoch=steps_per_epoch, batch_size=config.batch_size,
        final_test_accuracy=last["test_accuracy"], final_test_loss=last["test_loss"],
        final_train_accuracy=last["train_accuracy"], final_train_loss=last["train_loss"],
        best_test_accuracy=max(r["test_accuracy"] for r in rows),
        wall_time_s=last["wall_time_s"], ms_per_gradient_evaluation=ms_per_gradient_evaluation,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution,
    )


def _report(summary):
    ms = summary.get("ms_per_gradient_evaluation")
    ms_text = f", {ms:.2f} ms per gradient evaluation" if ms is not None else ""
    print(f"final test accuracy (anchor): {summary['final_test_accuracy']:.4f}  "
          f"(test loss {summary['final_test_loss']:.4f}, train accuracy {summary['final_train_accuracy']:.4f}; "
          f"{summary['gradient_evaluations']} gradient evaluations, {summary['wall_time_s']:.1f} s{ms_text})",
          flush=True)


def train_and_evaluate(config, workdir: str | None = None) -> dict:
    """Trains, evaluates at the anchor every effective epoch, and writes the workdir.

    Args:
      config: a `TrainConfig`, or a dict of overrides of `default_config()`.
      workdir: where files go (see the module docstring); None means
        `default_workdir(config)`. An existing run there is resumed.

    Returns:
      The summary dict also written to summary.json.

    Raises:
      ValueError: bad config (see `resolve_config`).
      ConfigMismatchError: the workdir holds a run with another config.
      TrainingDiverged: the loss became NaN/inf; the last good checkpoint is kept.
    """
    config = resolve_config(config)
    workdir = default_workdir(config) if workdir is None else workdir
    config_path = os.path.join(workdir, "config.json")

    # Refuse a foreign run before touching anything.
    if os.path.exists(config_path):
        stored = _read_json(config_path)
        differences = _config_differences(stored, config)
        if differences:
            raise ConfigMismatchError(
                f"workdir {workdir} holds a run with a different config; use another --workdir or the "
                f"same settings. Differences: " + "; ".join(differences))

    data = datasets.load(config.dataset, seed=None)
    n_train = len(data.x_train[:config.max_train_examples])
    steps_per_epoch = n_train // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n_train} training examples")
    steps_per_execution = _effective_steps_per_execution(config.steps_per_execution, steps_per_epoch)

    keras.utils.set_random_seed(config.seed)
    # Bit-for-bit reproducible runs. Keras refuses XLA under op determinism (not
    # every op has a deterministic XLA kernel), so jit_compile runs go without it.
    with _op_determinism(not config.jit_compile):
        return _train(config, workdir, data, steps_per_epoch, steps_per_execution)


@contextlib.contextmanager
def _op_determinism(enabled):
    """TF op determinism on for the run when `enabled`; the process's setting is restored after.

    Left on, it would silently turn XLA off for later jit_compile work in the same
    process (Keras checks it). TF has no public getter or switch-off, hence the
    private module, used only if present.
    """
    from tensorflow.python.framework import config as tf_config  # pylint: disable=import-outside-toplevel

    restore = (enabled and hasattr(tf_config, "is_op_determinism_enabled")
               and hasattr(tf_config, "disable_op_determinism") and not tf_config.is_op_determinism_enabled())
    if enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if restore:
            tf_config.disable_op_determinism()


def _train(config, workdir, data, steps_per_epoch, steps_per_execution):
    """train_and_evaluate after validation: resume or start, fit, write the summary."""
    config_path = os.path.join(workdir, "config.json")
    checkpoint_path = os.path.join(workdir, "checkpoint.keras")
    metrics_path = os.path.join(workdir, "metrics.csv")
    summary_path = os.path.join(workdir, "summary.json")
    x_train, y_train = data.x_train[:config.max_train_examples], data.y_train[:config.max_train_examples]
    x_test, y_test = data.x_test[:config.max_test_examples], data.y_test[:config.max_test_examples]

    # Resume from the checkpoint: its optimizer counts the gradient evaluations done.
    model, initial_epoch = None, 0
    if os.path.exists(checkpoint_path):
        model = keras.models.load_model(checkpoint_path)
        initial_epoch, partial = divmod(int(model.optimizer.iterations.numpy()), steps_per_epoch)
        if partial:
            raise RuntimeError(f"{checkpoint_path} is not at the end of an effective epoch of "
                               f"{steps_per_epoch} steps; the workdir is inconsistent")
        if initial_epoch > config.epochs:
            raise ConfigMismatchError(
                f"workdir {workdir} already holds {initial_epoch} effective epochs; epochs={config.epochs} "
                f"is smaller (epochs may only be increased to extend a run)")
    os.makedirs(workdir, exist_ok=True)
    _write_json(config_path, dataclasses.asdict(config))

    rows = [r for r in _read_metrics(metrics_path) if r["epoch"] <= initial_epoch]
    if initial_epoch and (not rows or rows[-1]["epoch"] != initial_epoch):
        raise RuntimeError(f"{metrics_path} lacks the row of effective epoch {initial_epoch}; "
                           "the workdir is inconsistent")
    if initial_epoch == config.epochs:
        summary = _read_json(summary_path) if os.path.exists(summary_path) else None
        if summary is None or summary.get("epochs") != initial_epoch:
            summary = _summary(config, rows, steps_per_epoch=steps_per_epoch,
                               steps_per_execution=steps_per_execution, jit_compile=config.jit_compile,
                               ms_per_gradient_evaluation=None)
            _write_json(summary_path, summary)
        print(f"run in {workdir} is complete ({initial_epoch} effective epochs); nothing to do.")
        _report(summary)
        return summary

    spec = OPTIMIZERS[config.optimizer]
    if model is not None:
        optimizer = model.optimizer
        print(f"resuming {workdir} at effective epoch {initial_epoch}/{config.epochs}", flush=True)
    else:
        model = models.build(config.model, input_shape=data.input_shape, num_classes=data.num_classes,
                             seed=config.seed)
        optimizer = spec.build(config, _learning_rate(config, steps_per_epoch))
    _compile(model, optimizer, config, steps_per_execution)

    print(f"training {config.model} on {config.dataset} ({len(x_train)} examples) with {config.optimizer}: "
          f"{config.epochs} effective epochs x {steps_per_epoch} steps of batch {config.batch_size} = "
          f"{config.epochs * steps_per_epoch} gradient evaluations; workdir {workdir}", flush=True)
    recorder = _Recorder(workdir=workdir, config=config, steps_per_epoch=steps_per_epoch, rows=rows,
                         wall_time_before=rows[-1]["wall_time_s"] if rows else 0.0)
    callbacks = [AnchorSwap(), recorder]  # AnchorSwap first: the recorder sees the anchor
    model.fit(
        _train_batches(x_train, y_train, seed=config.seed, batch_size=config.batch_size,
                       initial_epoch=initial_epoch, epochs=config.epochs),
        epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
        validation_data=(x_test, y_test), validation_batch_size=min(len(x_test), 1000),
        shuffle=False,  # the order is already (seed, epoch)-determined
        callbacks=callbacks, verbose=config.verbose)

    if recorder.diverged_epoch is not None:
        kept = (f"the checkpoint of effective epoch {recorder.rows[-1]['epoch']} in {workdir} is kept"
                if recorder.rows else f"no checkpoint was written in {workdir}")
        raise TrainingDiverged(
            f"the loss became NaN or infinite during effective epoch {recorder.diverged_epoch + 1} "
            f"(optimizer {config.optimizer}, outer learning rate "
            f"{learning_rate_at(config, recorder.diverged_epoch * steps_per_epoch, steps_per_epoch):g}); "
            f"training stopped and "
            f"{kept}. Try a smaller learning rate.")

    summary = _summary(config, recorder.rows, steps_per_epoch=steps_per_epoch,
                       steps_per_execution=steps_per_execution,
                       jit_compile=bool(model.jit_compile),  # Keras may have turned XLA off
                       ms_per_gradient_evaluation=recorder.ms_per_gradient_evaluation())
    _write_json(summary_path, summary)
    _plot_curves(os.path.join(workdir, "curves.png"), recorder.rows,
                 f"{config.optimizer} / {config.model} / {config.dataset}")
    _report(summary)
    return summary


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def _per_optimizer(name):
    found = [f"{opt}: {spec.defaults[name]!r}" for opt, spec in OPTIMIZERS.items() if name in spec.defaults]
    return "default per optimizer (" + ", ".join(found) + ")"


_D = TrainConfig()
flags.DEFINE_string("optimizer", _D.optimizer, f"One of: {', '.join(OPTIMIZERS)}.")
flags.DEFINE_string("model", _D.model, f"One of: {', '.join(models.names())}.")
flags.DEFINE_string("dataset", _D.dataset, f"One of: {', '.join(datasets.names())}.")
flags.DEFINE_string("workdir", None, "Output directory; default runs/<optimizer>_<dataset>. Resumes a run there.")
flags.DEFINE_integer("epochs", _D.epochs, "Effective epochs (passes over the data = gradient evaluations / steps per epoch).")
flags.DEFINE_integer("batch_size", _D.batch_size, "Minibatch size.")
flags.DEFINE_integer("seed", _D.seed, "Seeds the initialization, the data order and the optimizer's noise.")
flags.DEFINE_float("learning_rate", None, "Outer learning rate eta; " + _per_optimizer("learning_rate") + ".")
flags.DEFINE_string("lr_schedule", None,
                    'Drops in the papers\' form "EPOCH:VALUE,...": from effective epoch EPOCH on, the outer '
                    'learning rate is VALUE; "" for a constant rate; ' + _per_optimizer("lr_schedule") + ".")
flags.DEFINE_float("momentum", None, "Outer momentum m; " + _per_optimizer("momentum") + ".")
flags.DEFINE_bool("nesterov", None, "Nesterov outer momentum; " + _per_optimizer("nesterov") + ".")
flags.DEFINE_float("beta_1", None, "Adam beta_1; " + _per_optimizer("beta_1") + ".")
flags.DEFINE_float("beta_2", None, "Adam beta_2; " + _per_optimizer("beta_2") + ".")
flags.DEFINE_float("epsilon", None, "Adam epsilon; " + _per_optimizer("epsilon") + ".")
flags.DEFINE_integer("inner_steps", None, "HopfLaxSGD fixed-point steps L per outer step; " + _per_optimizer("inner_steps") + ".")
flags.DEFINE_integer("langevin_steps", None, "Inner Langevin steps L per outer step; " + _per_optimizer("langevin_steps") + ".")
flags.DEFINE_float("langevin_learning_rate", None, "Inner learning rate eta'; " + _per_optimizer("langevin_learning_rate") + ".")
flags.DEFINE_float("langevin_momentum", None, "Inner momentum m'; " + _per_optimizer("langevin_momentum") + ".")
flags.DEFINE_bool("langevin_nesterov", None, "Nesterov inner momentum; " + _per_optimizer("langevin_nesterov") + ".")
flags.DEFINE_float("gamma", None, "Initial scope gamma0; " + _per_optimizer("gamma") + ".")
flags.DEFINE_float("scoping", None, "gamma1 in gamma_k = gamma0 (1 + gamma1)^k; " + _per_optimizer("scoping") + ".")
flags.DEFINE_float("noise", None, "Thermal noise eps of the Langevin steps; " + _per_optimizer("noise") + ".")
flags.DEFINE_float("mean_decay", None, "beta1, weight of the old running mean; " + _per_optimizer("mean_decay") + ".")
flags.DEFINE_float("l2", None, "Coupled L2 weight decay wd; " + _per_optimizer("l2") + ".")
flags.DEFINE_bool("jit_compile", _D.jit_compile, "Compile the training step with XLA.")
flags.DEFINE_integer("steps_per_execution", _D.steps_per_execution,
                     "Training steps per call into TensorFlow (amortizes per-step overhead); "
                     "rounded down to a divisor of the steps per epoch.")
flags.DEFINE_integer("verbose", _D.verbose, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples.")
flags.DEFINE_integer("max_test_examples", None, "Use only the first N test examples.")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    overrides = {name: FLAGS[name].value for name in _FIELD_TYPES if FLAGS[name].present}
    try:
        config = config_from_dict(overrides)
        train_and_evaluate(config, FLAGS.workdir)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except ValueError as e:  # bad names or values, config mismatch: nothing was overwritten
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
