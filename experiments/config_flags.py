"""absl flags derived from a config dataclass: one flag per field, with its help.

Every entry point under experiments/ describes what a run depends on as a frozen
dataclass; this module turns its fields into flags so that the dataclass is the
single place where a setting, its type, its default and its help text live.

    @dataclasses.dataclass(frozen=True)
    class Config:
        \"\"\"...

        Attributes:
          num_paths: SDE paths per control.      <- the flag's help
        \"\"\"
        num_paths: int = 1000
        dims: tuple[int, ...] = dataclasses.field(default=(1, 2), metadata=dict(choices=(1, 2)))

    def main(argv): config = config_from_flags(Config, FLAGS)
    if __name__ == "__main__":
        define_config_flags(Config)                 # flags only on the __main__ path
        app.run(main)

Field type -> flag: `int` DEFINE_integer, `float` DEFINE_float, `bool` DEFINE_bool,
`str` DEFINE_string (DEFINE_enum when `choices` is given), `tuple[T, ...]`
DEFINE_list (converted to T when read), and `T | None` the same flag with
default None ("not given": e.g. "the optimizer's default").

Help text: `metadata["help"]` if the field has one, else the field's entry in the
class docstring's "Attributes:" section; a field with neither is an error (a
flag without help is a flag nobody can use). `extra_help` appends text computed
at definition time (e.g. per-optimizer defaults from a registry).

Other metadata: `choices` (a tuple, or a zero-argument callable returning one,
evaluated when the flags are defined), `lower_bound` / `upper_bound` (ints and
floats), `check=(predicate, message)` (a validator on the converted value; the
message names the flag). Bad values fail when the command line is parsed, with
an error naming the flag.

Nothing here defines flags at import time: importing a runner or a library
module under experiments/ never touches `absl.flags.FLAGS`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from typing import Any, Callable, Mapping

from absl import flags

# The flags defined here belong to the entry point that calls `define_config_flags`
# (absl lists a module's own flags under its name, and in --helpshort).
flags.disclaim_key_flags()

__all__ = ["define_config_flags", "config_from_flags", "overrides_from_flags", "field_help", "field_kind",
           "define_value_flags", "values_from_flags"]


@dataclasses.dataclass(frozen=True)
class FieldKind:
    """What a dataclass field's annotation means for its flag.

    Attributes:
      base: int, float, bool or str: the type of the value (of each element for lists).
      optional: the annotation admits None.
      is_list: a `tuple[T, ...]` field (a comma-separated list flag).
    """

    base: type
    optional: bool
    is_list: bool


_BASES = (bool, int, float, str)


def field_kind(cls, name: str) -> FieldKind:
    """Reads the annotation of field `name` of dataclass `cls`.

    Raises:
      TypeError: an annotation this module has no flag for (names the field).
    """
    hint = typing.get_type_hints(cls)[name]
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}.{name}: a union other than `T | None` has no flag: {hint}")
        hint = args[0]
    is_list = typing.get_origin(hint) is tuple
    if is_list:
        args = typing.get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{cls.__name__}.{name}: only `tuple[T, ...]` has a list flag, got {hint}")
        hint = args[0]
    if hint not in _BASES:
        raise TypeError(f"{cls.__name__}.{name}: no flag for type {hint!r}; use one of "
                        f"{', '.join(t.__name__ for t in _BASES)}, a tuple[T, ...] of one, or T | None")
    return FieldKind(base=hint, optional=optional, is_list=is_list)


def _docstring_attributes(cls) -> dict[str, str]:
    """{field: text} from the "Attributes:" section of `cls`'s docstring (Google style)."""
    doc = inspect.getdoc(cls) or ""
    found, current, in_section, indent = {}, None, False, None
    for line in doc.splitlines():
        if not in_section:
            in_section = line.strip() == "Attributes:"
            continue
        if not line.strip():
            current = None
            continue
        width = len(line) - len(line.lstrip())
        if width == 0:
            break  # the next section
        match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?:\s*(.*)$", line)
        if match and (indent is None or width == indent):
            indent = width
            current = match.group(1)
            found[current] = match.group(3).strip()
        elif current is not None:
            found[current] = (found[current] + " " + line.strip()).strip()
    return found


def field_help(cls, name: str) -> str:
    """The help text of field `name`: metadata["help"], else its docstring entry.

    Raises:
      ValueError: the field has neither.
    """
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    text = field.metadata.get("help") or _docstring_attributes(cls).get(name)
    if not text:
        raise ValueError(f"{cls.__name__}.{name} has no help text: give it metadata['help'] or an entry "
                         f"in the class docstring's Attributes section")
    return text


def _choices(field):
    choices = field.metadata.get("choices")
    return tuple(choices()) if callable(choices) else (tuple(choices) if choices is not None else None)


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise ValueError(f"field {field.name} has no default; every config field needs one to become a flag")


def _convert_list(kind: FieldKind, values):
    """A list flag's strings as a tuple of `kind.base`; raises ValueError on a bad element."""
    if values is None:
        return None
    if kind.base is bool:
        table = {"true": True, "1": True, "false": False, "0": False}
        try:
            return tuple(table[str(v).strip().lower()] for v in values)
        except KeyError as error:
            raise ValueError(f"not a bool: {error.args[0]!r}") from None
    return tuple(kind.base(str(v).strip()) for v in values)


def define_config_flags(cls, flag_values: flags.FlagValues = flags.FLAGS, *,
                        extra_help: Mapping[str, str] | None = None, skip=()) -> list[str]:
    """Defines one flag per field of dataclass `cls` on `flag_values`.

    Args:
      cls: a dataclass whose fields all have defaults and supported annotations.
      flag_values: where to define them (a test passes its own `FlagValues`).
      extra_help: text appended to the help of the named fields.
      skip: field names that get no flag.

    Returns:
      The names of the flags defined.
    """
    extra_help = dict(extra_help or {})
    names = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = field_kind(cls, field.name)
        default = _default(field)
        help_text = field_help(cls, field.name)
        choices = _choices(field)
        if choices is not None and not kind.is_list and kind.base is not str:
            help_text += f" One of: {', '.join(map(str, choices))}."
        if field.name in extra_help:
            help_text = f"{help_text.rstrip('.')}; {extra_help[field.name].rstrip('.')}."
        common = dict(flag_values=flag_values)
        name = field.name
        if kind.is_list:
            if choices is not None:
                help_text += f" Each one of: {', '.join(map(str, choices))}."
            listed = None if default is None else [str(v) for v in default]
            flags.DEFINE_list(name, listed, help_text, **common)
            _register_list_validator(name, kind, choices, flag_values)
        elif kind.base is str and choices is not None:
            flags.DEFINE_enum(name, default, list(choices), help_text, **common)
        elif kind.base is str:
            flags.DEFINE_string(name, default, help_text, **common)
        elif kind.base is bool:
            flags.DEFINE_bool(name, default, help_text, **common)
        else:
            define = flags.DEFINE_integer if kind.base is int else flags.DEFINE_float
            define(name, default, help_text, lower_bound=field.metadata.get("lower_bound"),
                   upper_bound=field.metadata.get("upper_bound"), **common)
            if choices is not None:
                flags.register_validator(name, lambda v, c=choices: v is None or v in c,
                                         message=f"--{name} must be one of: {', '.join(map(str, choices))}",
                                         flag_values=flag_values)
        check = field.metadata.get("check")
        if check is not None:
            predicate, message = check
            flags.register_validator(name, _checked(kind, predicate), message=message, flag_values=flag_values)
        names.append(name)
    return names


def _register_list_validator(name, kind, choices, flag_values):
    def valid(values):
        try:
            converted = _convert_list(kind, values)
        except ValueError:
            return False
        return converted is None or choices is None or all(v in choices for v in converted)

    what = f"{kind.base.__name__} values" + (f" from {', '.join(map(str, choices))}" if choices else "")
    flags.register_validator(name, valid, message=f"--{name} must be a comma list of {what}",
                             flag_values=flag_values)


def _checked(kind: FieldKind, predicate: Callable[[Any], bool]):
    """The validator for `check`: converts a list flag first; a conversion error is a failure."""

    def valid(value):
        try:
            value = _convert_list(kind, value) if kind.is_list else value
        except ValueError:
            return False
        return value is None and kind.optional or (value is not None and bool(predicate(value)))

    return valid


def overrides_from_flags(cls, flag_values: flags.FlagValues = flags.FLAGS, *, present_only: bool = False,
                         skip=()) -> dict[str, Any]:
    """{field: value} read from the flags defined by `define_config_flags(cls, ...)`.

    List flags come back as tuples of the field's element type. With
    `present_only`, only flags given on the command line (overrides of the
    dataclass defaults).
    """
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in skip or (present_only and not flag_values[field.name].present):
            continue
        kind = field_kind(cls, field.name)
        value = flag_values[field.name].value
        values[field.name] = _convert_list(kind, value) if kind.is_list else value
    return values


def config_from_flags(cls, flag_values: flags.FlagValues = flags.FLAGS, **kwargs):
    """`cls(**overrides_from_flags(cls, flag_values, **kwargs))`."""
    return cls(**overrides_from_flags(cls, flag_values, **kwargs))


# ------------------------------------------------------------------------------ flags of a callable's arguments


def define_value_flags(specs, flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """Defines one flag per `(name, kind, help)` of `specs`, default None ("not given").

    `kind` is bool, int, float or str, or None for a Python literal (a string flag read by
    `experiments.training.options.literal_value`: "0.1" -> 0.1, "None" -> None). The runner
    passes its optimizers' constructor arguments (`experiments.training.hyperparameters`).
    """
    names = []
    for name, kind, help_text in specs:
        if kind is bool:
            flags.DEFINE_bool(name, None, help_text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(name, None, help_text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(name, None, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, None, help_text, flag_values=flag_values)
        names.append(name)
    return names


def values_from_flags(specs, flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, Any]:
    """{name: value} of the flags of `define_value_flags(specs)` given on the command line."""
    from experiments.training.options import literal_value  # pylint: disable=import-outside-toplevel

    values = {}
    for name, kind, _ in specs:
        if flag_values[name].present:
            value = flag_values[name].value
            values[name] = literal_value(value) if kind is None and value is not None else value
    return values
