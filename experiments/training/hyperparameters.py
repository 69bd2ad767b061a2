"""An optimizer's hyper-parameters, read from its constructor: the one place they are declared.

The runner never lists hyper-parameters. For a Keras optimizer class, its
hyper-parameters are the keyword parameters of its constructor, less

* those of `keras.optimizers.Optimizer` itself (`learning_rate`, `weight_decay`,
  `clipnorm`, `use_ema`, ..., `name`): the Keras options every optimizer shares.
  `learning_rate` is the runner's `learning_rate` and `lr_schedule` (a float or
  a Keras schedule); the others are not runner settings;
* `seed`: the run's `--seed` seeds the optimizer's noise.

Each one's type is its annotation when it has one, else its default's type
(bool, int, float, str); a parameter whose default is None and that has no
annotation takes a Python literal (`literal_value`: "0.1" -> 0.1, "true" ->
True, "None" -> None, other text a string). Its help is its entry in the
"Args:" section of the class docstring (or of `__init__`'s).

So a constructor argument added to an optimizer (`Parle(..., gamma_max=1.0)`)
is a flag (`--gamma_max`), a key of config.json's `hyperparameters` block,
checked on resume and accepted in a paper row with no edit under experiments/.
The optimizer's constructor validates the values (named errors); the runner
checks only their types, and builds the optimizer before it writes anything.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from typing import Any

import keras

from experiments.training.options import literal_value

__all__ = ["Hyperparameter", "hyperparameters_of", "literal_value", "check_value", "RUNNER_SUPPLIED"]

# Constructor parameters the runner supplies itself (the run's seed; the learning rate from
# --learning_rate and --lr_schedule), besides the Keras base options.
RUNNER_SUPPLIED = ("seed",)
_KIND_NAMES = {bool: "bool", int: "int", float: "float", str: "str", None: "literal"}


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One constructor keyword argument of an optimizer.

    Attributes:
      name: the argument's name (the flag's, config.json's).
      kind: bool, int, float or str; None: a Python literal (default None, no annotation).
      default: the constructor's default.
      help: the argument's entry in the class docstring ("" when it has none).
    """

    name: str
    kind: type | None
    default: Any
    help: str

    @property
    def kind_name(self) -> str:
        return _KIND_NAMES[self.kind]


def _keras_base_parameters() -> frozenset[str]:
    """The named constructor parameters of `keras.optimizers.Optimizer` and its bases (the public class
    forwards `*args, **kwargs` to a backend base that names them)."""
    names = set()
    for base in keras.optimizers.Optimizer.__mro__:
        init = base.__dict__.get("__init__")
        if init is not None:
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return frozenset(names - {"self"})


def _docstring_args(*objects) -> dict[str, str]:
    """{name: text} from the "Args:" sections of the objects' docstrings; "a, b: text" gives both."""
    found = {}
    for obj in objects:
        doc = inspect.getdoc(obj) or ""
        current, in_section, indent = [], False, None
        for line in doc.splitlines():
            if not in_section:
                in_section = line.strip() == "Args:"
                indent = None
                continue
            if not line.strip():
                continue
            width = len(line) - len(line.lstrip())
            if width == 0:
                in_section, current = False, []
                continue
            match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*(\([^)]*\))?:\s*(.*)$",
                             line)
            if match and (indent is None or width == indent):
                indent = width
                current = [n.strip() for n in match.group(1).split(",")]
                for name in current:
                    found.setdefault(name, match.group(3).strip())
            else:
                for name in current:
                    found[name] = (found[name] + " " + line.strip()).strip()
    return found


def _kind(cls, parameter: inspect.Parameter):
    try:
        hint = typing.get_type_hints(cls.__init__).get(parameter.name)
    except Exception:  # pylint: disable=broad-except  # unresolvable annotations: fall back to the default
        hint = None
    if hint is not None:
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else None
        if hint in (bool, int, float, str):
            return hint
    default = parameter.default
    if default is None:
        return None
    for kind in (bool, int, float, str):
        if type(default) is kind:  # pylint: disable=unidiomatic-typecheck  # bool is not an int here
            return kind
    raise TypeError(f"{cls.__name__}({parameter.name}={default!r}): the runner has no flag for a default of "
                    f"type {type(default).__name__}; give the argument a bool, int, float, str or None default")


@functools.cache
def hyperparameters_of(cls) -> dict[str, Hyperparameter]:
    """{name: Hyperparameter} of optimizer class `cls`, in constructor order (module docstring).

    Raises:
      TypeError: an argument without a default, or with a default of another type.
    """
    base = _keras_base_parameters()
    helps = _docstring_args(cls, cls.__init__)
    out = {}
    for parameter in inspect.signature(cls.__init__).parameters.values():
        if parameter.name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name in base or parameter.name in RUNNER_SUPPLIED:
            continue
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(f"{cls.__name__}.__init__ argument {parameter.name!r} has no default; the runner "
                            "needs one for every hyper-parameter")
        out[parameter.name] = Hyperparameter(parameter.name, _kind(cls, parameter), parameter.default,
                                             helps.get(parameter.name, ""))
    return out


def check_value(optimizer: str, hyperparameter: Hyperparameter, value):
    """`value` as the hyper-parameter's kind (an int where a float is due becomes a float).

    Raises:
      ValueError: naming the optimizer, the argument and the value.
    """
    kind = hyperparameter.kind
    if isinstance(value, str) and kind is not str:
        value = literal_value(value)  # from text (a paper row, an old config.json): its literal
    if kind is None:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    elif kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, kind):
        return value
    raise ValueError(f"{hyperparameter.name} of optimizer {optimizer!r} must be of type {hyperparameter.kind_name}, "
                     f"got {value!r}")
