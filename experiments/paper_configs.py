"""The papers' reported runs: the named configs of `experiments/configs/`, collected.

Each named config is a module `experiments/configs/NAME.py` whose `get_config()`
returns its `PaperConfig` (the row type and its conventions:
`experiments/configs/base.py`). This module reads them all once: `CONFIGS`
(name -> row, in `configs.ORDER`), `names()`, `resolve(name)` and
`table(available)`, which renders them for `--config=list`. Nothing here parses
or imports the runner (`experiments.training.paper_runs` turns a row into the
runner's settings).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from experiments import configs
from experiments.configs.base import OPTIMIZERS, PaperConfig

__all__ = ["PaperConfig", "CONFIGS", "OPTIMIZERS", "names", "resolve", "table"]

def _read_configs() -> dict[str, PaperConfig]:
    """Every module of experiments/configs but `base`, by its name, in `configs.ORDER` then name order.

    Raises:
      ValueError: a module without `get_config()`, or whose config has another name (the file named).
    """
    found = sorted(m.name for m in pkgutil.iter_modules(configs.__path__) if m.name != "base")
    order = [n for n in configs.ORDER if n in found] + [n for n in found if n not in configs.ORDER]
    rows = {}
    for name in order:
        module = importlib.import_module(f"experiments.configs.{name}")
        get_config = getattr(module, "get_config", None)
        if not callable(get_config):
            raise ValueError(f"{module.__file__} defines no get_config(): a named config returns its "
                             "PaperConfig from it")
        row = get_config()
        if not isinstance(row, PaperConfig) or row.name != name:
            raise ValueError(f"{module.__file__}: get_config() must return the PaperConfig named {name!r} "
                             f"(the file's name), got {getattr(row, 'name', row)!r}")
        rows[name] = row
    return rows


CONFIGS: dict[str, PaperConfig] = _read_configs()


def names() -> list[str]:
    """The config names, in table order."""
    return list(CONFIGS)


def resolve(name: str) -> PaperConfig:
    """The config called `name`.

    Raises:
      ValueError: no such config; the message lists the names.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown paper config {name!r}; known configs: {', '.join(CONFIGS)} "
                         f"(each is a module experiments/configs/NAME.py with get_config())")
    return CONFIGS[name]


def table(available: Callable[[PaperConfig], str]) -> str:
    """A plain-text table of every config, for `--config=list`.

    Args:
      available: the last column's text for a row (the runner passes `paper_runs.runnable`,
        which asks its registry).
    """
    header = ("name", "optimizer", "model", "dataset", "batch", "epochs", "lr schedule", "paper error %",
              "available")
    rows = []
    for c in CONFIGS.values():
        model = c.model + ("(" + ",".join(f"{k}={v}" for k, v in c.model_kwargs.items()) + ")"
                           if c.model_kwargs else "")
        error = "?" if c.reported_error is None else f"{c.reported_error:g}"
        rows.append((c.name, c.optimizer, model, c.dataset + (" +aug" if c.augment else ""), str(c.batch_size),
                     str(c.epochs), c.lr_schedule, error, available(c)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
