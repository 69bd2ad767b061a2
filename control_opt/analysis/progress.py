"""Progress lines with the time left, for the long steps of the analysis (absl logging).

`Progress(total, what, verbose)` counts steps of a loop whose length is known
(or bounded); `step(detail)` logs `what: i / total, elapsed, about T left`
with `T = elapsed / i * (total - i)` (the mean time per step so far times the
steps left; an upper bound when the loop may stop early), at most once every
`interval` seconds and always at the last step. Quiet unless `verbose`.
"""

from __future__ import annotations

import time

from absl import logging

__all__ = ["Progress"]


def _duration(seconds):
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Logs `what: i / total` with the elapsed time and the estimated time left.

    Args:
      total: the number of steps (or their upper bound).
      what: what is being counted, e.g. "per-example gradients".
      verbose: log (absl `logging.info`); otherwise silent.
      interval: least seconds between two lines (the last step is always logged).
    """

    def __init__(self, total, what, verbose=False, interval=10.0):
        self.total = max(1, int(total))
        self.what = what
        self.verbose = bool(verbose)
        self.interval = float(interval)
        self.count = 0
        self.start = time.perf_counter()
        self._last = -float("inf")

    def time_left(self):
        """Estimated seconds left: the mean time per step so far times the steps left."""
        if self.count == 0:
            return float("nan")
        elapsed = time.perf_counter() - self.start
        return elapsed / self.count * max(0, self.total - self.count)

    def step(self, detail="", count=1):
        """Counts `count` steps; logs a line if verbose and due."""
        self.count += count
        if not self.verbose:
            return
        now = time.perf_counter()
        if now - self._last < self.interval and self.count < self.total:
            return
        self._last = now
        suffix = f"; {detail}" if detail else ""
        logging.info("%s: %d / %d, %s elapsed, about %s left%s", self.what, self.count, self.total,
                     _duration(now - self.start), _duration(self.time_left()), suffix)
