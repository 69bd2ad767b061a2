"""The private TensorFlow modules the library uses, imported in one place behind a guard.

TensorFlow's public API has no replacement for a few things the library needs:

* `distribute_lib._get_default_strategy()`: TensorFlow's default (no-op)
  strategy, to tell "no strategy" from a real one (`distribute.replicas`);
* `distribute_lib.get_update_replica_id()`: the device index inside
  `extended.update` (`distribute.replicas.replica_id`);
* `ds_values.PerReplica`, `DistributedValues`, `DistributedVariable`: to build
  and read per-replica values (`distribute.reduction`, `distribute.replicas`);
* `cross_device_ops.ReductionToOneDevice`: the base of `CountingReduction`;
* `xla.dynamic_slice`, `xla.dynamic_update_slice`: in-place row updates in the
  compiled lower envelope (`pde._envelope_kernel`).

These are *required*: they are imported when this module is, and if one has
moved the import fails with `TensorFlowInternalsChanged`, which names the
installed TensorFlow and Keras versions, the versions the library is tested
with, and what is missing, instead of an `ImportError` deep inside
`import control_opt`.

Two more are *optional*, each with a fallback that is correct everywhere (only
slower): `framework_ops` and `control_flow_util`, which tell whether a graph
is being traced for XLA (`graph_modes.tracing_for_xla`). They are imported on
first use; if one has moved, `from ... import` raises an `ImportError` with
the same message and the caller falls back.

tests/test_private_names.py checks every name here, with the signatures the
library calls, and the private Keras methods the optimizers override or call.
"""

from __future__ import annotations

import importlib

import tensorflow as tf

__all__ = ["TESTED_KERAS", "TESTED_TENSORFLOW", "TensorFlowInternalsChanged", "changed_message", "cross_device_ops",
           "distribute_lib", "ds_values", "installed_versions", "xla"]

# The versions the whole suite passes with (requirements.txt pins them).
TESTED_TENSORFLOW = "2.21"
TESTED_KERAS = "3.15"


class TensorFlowInternalsChanged(ImportError):
    """A private TensorFlow or Keras name the library relies on is missing or changed."""


def installed_versions():
    """`"TensorFlow X, Keras Y"` as installed (Keras read without importing it if absent)."""
    try:
        import keras  # pylint: disable=import-outside-toplevel
        keras_version = keras.__version__
    except ImportError:  # pragma: no cover - Keras ships with TensorFlow
        keras_version = "not installed"
    return f"TensorFlow {tf.__version__}, Keras {keras_version}"


def changed_message(what):
    """The message of every failed check: what changed, the installed and the tested versions."""
    return (f"{what}. control_opt relies on this private TensorFlow/Keras name; installed: "
            f"{installed_versions()}; tested with TensorFlow {TESTED_TENSORFLOW}.x, Keras "
            f"{TESTED_KERAS}.x (requirements.txt). Install the tested versions, or update "
            f"control_opt/_internal/tf_internals.py and tests/test_private_names.py.")


def _module(path, names):
    """Module `path`, checked to define every one of `names`."""
    try:
        module = importlib.import_module(path)
    except ImportError as error:
        raise TensorFlowInternalsChanged(changed_message(f"module {path} cannot be imported ({error})")) from error
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        raise TensorFlowInternalsChanged(changed_message(f"{path} has no {', '.join(missing)}"))
    return module


distribute_lib = _module("tensorflow.python.distribute.distribute_lib",
                         ["_get_default_strategy", "get_update_replica_id"])
ds_values = _module("tensorflow.python.distribute.values",
                    ["PerReplica", "DistributedValues", "DistributedVariable"])
cross_device_ops = _module("tensorflow.python.distribute.cross_device_ops", ["ReductionToOneDevice"])
xla = _module("tensorflow.compiler.tf2xla.python.xla", ["dynamic_slice", "dynamic_update_slice"])

# name -> (module path, attributes the caller uses); imported on first use (PEP 562).
_OPTIONAL = {
    "framework_ops": ("tensorflow.python.framework.ops", ["get_default_graph"]),
    "control_flow_util": ("tensorflow.python.ops.control_flow_util", ["GraphOrParentsInXlaContext"]),
}


def __getattr__(name):
    if name not in _OPTIONAL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _module(*_OPTIONAL[name])  # TensorFlowInternalsChanged (an ImportError) if it moved
    globals()[name] = module
    return module
