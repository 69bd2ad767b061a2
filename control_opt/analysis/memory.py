"""The memory a computation may use, and the error raised when a route does not fit.

`available_memory()` is the kernel's estimate of the memory that can be
allocated without swapping (`MemAvailable` in /proc/meminfo; elsewhere the
free physical pages from `os.sysconf`). The analysis routes plan their
largest arrays against a budget, by default half of it (`default_budget`),
so that a route which cannot fit is never started: a process killed by the
kernel for memory leaves no error and no result.
"""

from __future__ import annotations

import os

__all__ = ["available_memory", "default_budget", "format_bytes", "resolve_budget"]


def available_memory():
    """Bytes the machine can allocate now (`MemAvailable`, else free pages), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_budget(fraction=0.5):
    """`fraction` of `available_memory()` (8 GiB when the machine does not say)."""
    available = available_memory()
    return int(fraction * available) if available else 8 * 2**30


def resolve_budget(max_memory):
    """`max_memory` in bytes (a positive number), or the default budget for None."""
    if max_memory is None:
        return default_budget()
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, float)) or not max_memory > 0:
        raise ValueError(f"`max_memory` must be a positive number of bytes or None, got {max_memory!r}.")
    return int(max_memory)


def format_bytes(size):
    """`1.5 GB`-style text for a byte count."""
    size = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.3g} {unit}"
        size /= 1000.0
    raise AssertionError("unreachable")
