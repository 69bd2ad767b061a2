"""A name -> factory registry, the one behind `control_opt.models` and `control_opt.datasets`.

A factory registers under a name with a decorator; a look-up of an unknown name
lists the known ones; a call with a keyword the factory does not take names
both, and says what it takes.
"""

from __future__ import annotations

import inspect
from typing import Callable

__all__ = ["Registry"]


class Registry:
    """Factories by name; `kind` ("model", "dataset") names them in messages.

    `fixed` lists the keywords every factory takes and the registry passes
    itself (e.g. `seed`); they are not the factory's options.
    """

    def __init__(self, kind: str, fixed=()):
        self.kind = kind
        self.fixed = frozenset(fixed)
        self.entries: dict[str, Callable] = {}

    def register(self, name: str):
        """Decorator adding a factory under `name` (a second registration is an error)."""

        def decorator(factory):
            if name in self.entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self.entries[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self.entries)

    def get(self, name: str) -> Callable:
        """The factory registered as `name`; an unknown name lists the known ones."""
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return self.entries[name]

    def options(self, name: str) -> dict:
        """The factory's own keyword options (not the fixed ones), with their defaults."""
        parameters = inspect.signature(self.get(name)).parameters.values()
        return {p.name: p.default for p in parameters
                if p.name not in self.fixed and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def check_options(self, name: str, kwargs: dict) -> None:
        """Raise `ValueError` naming every keyword of `kwargs` the factory does not take."""
        factory = self.get(name)
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()):
            return
        accepted = self.options(name)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            listed = ", ".join(f"{k}={v!r}" if v is not inspect.Parameter.empty else k
                               for k, v in accepted.items()) or "none"
            raise ValueError(f"{self.kind} {name!r} got unknown keyword(s) {', '.join(map(repr, unknown))}; "
                             f"its options (with defaults) are: {listed}")
