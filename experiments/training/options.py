"""Keyword options of a network or a loader as one flag value: "depth=16,width=4".

`TrainConfig.model_kwargs` and `dataset_kwargs` are strings so that they are
ordinary flags and compare as plain values in config.json; `parse_options`
turns one into a dict for `models.build` / `datasets.load`, and
`format_options` writes the canonical text (keys sorted, values as Python
literals) that `resolve_config` stores, so "width=4, depth=16" and
"depth=16,width=4" are the same run.

Values (`literal_value`): true/false (any case) -> bool, None (so written) ->
None, integers -> int, other finite numbers -> float, anything else -> str; so
"preprocess=none" passes the string "none", a loader's documented value.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

__all__ = ["parse_options", "format_options", "canonical_options", "literal_value"]

_FORM = 'expected "KEY=VALUE,KEY=VALUE,...", e.g. "depth=16,width=4"'
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def literal_value(text: str):
    """A Python literal from text: true/false (any case) -> bool, "None" -> None, integers -> int, other
    finite numbers -> float, anything else -> the text itself (so "none" stays the string "none")."""
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if text == "None":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def parse_options(text: str | None) -> dict[str, Any]:
    """"depth=16,width=4" -> {"depth": 16, "width": 4}; "" or None -> {}.

    Raises:
      ValueError: a piece is not KEY=VALUE, or a key appears twice.
    """
    if text is None or not str(text).strip():
        return {}
    options = {}
    for piece in str(text).split(","):
        key, sep, value = piece.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key) or not value:
            raise ValueError(f"bad options {text!r}: cannot read {piece.strip()!r}; {_FORM}")
        if key in options:
            raise ValueError(f"bad options {text!r}: {key} is given twice")
        options[key] = literal_value(value)
    return options


def _text(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if not isinstance(value, int) and ("," in text or "=" in text or literal_value(text) != text):
        raise ValueError(f"option value {value!r} cannot be written as KEY=VALUE text")
    return text


def format_options(options: Mapping[str, Any]) -> str:
    """The canonical text of `options`: keys sorted, "KEY=VALUE" joined by commas."""
    return ",".join(f"{key}={_text(options[key])}" for key in sorted(options))


def canonical_options(text: str | None) -> str:
    """`format_options(parse_options(text))`."""
    return format_options(parse_options(text))
