"""Where a run's time goes: `PhaseTimer`, exclusive wall time per named phase.

The runner times each part of an effective epoch with one `PhaseTimer`
(`run.py` and the `Recorder`): the training steps, the test evaluation, the
anchor swaps, metrics.csv, TensorBoard, the checkpoint, and what is left of
Keras' `fit` loop around them (`fit_loop`: callback dispatch, per-epoch metric
reads, the data iterator). The totals go to summary.json as `time_breakdown`
(`PhaseTimer.breakdown`), which `bench/bench_default_run.py` tabulates.

Phases nest and the accounting is exclusive: while an inner phase runs, the
phase around it is not charged, so the phases add up to the wall time of the
outermost one (nothing counted twice, nothing lost). A phase may begin in one
callback and end in another (`start` / `stop`); `phase(name)` is the block
form. The cost is two `time.perf_counter` calls and a few dict operations per
phase, about a microsecond: the runner always times itself.
"""

from __future__ import annotations

import contextlib
import time

__all__ = ["PhaseTimer", "PHASES"]

# The runner's phases, in the order a breakdown lists them.
PHASES = ("startup", "train_steps", "evaluation", "anchor_swap", "metrics_csv", "tensorboard", "checkpoint",
          "fit_loop", "finish")


class PhaseTimer:
    """Exclusive wall time and number of entries per named phase.

    Args:
      clock: seconds as a float (tests pass a fake one).
    """

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[str] = []
        self._since = 0.0

    def _charge_top(self, now):
        if self._stack:
            top = self._stack[-1]
            self.seconds[top] = self.seconds.get(top, 0.0) + (now - self._since)
        self._since = now

    def start(self, name: str) -> None:
        """Enters phase `name`; the phase running until now is paused until `name` stops."""
        self._charge_top(self._clock())
        self._stack.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.seconds.setdefault(name, 0.0)

    def stop(self, name: str) -> bool:
        """Leaves phase `name` (and any phase still open inside it); False if it was not running."""
        if name not in self._stack:
            return False
        self._charge_top(self._clock())
        while self._stack.pop() != name:
            pass
        return True

    def running(self, name: str) -> bool:
        return name in self._stack

    @contextlib.contextmanager
    def phase(self, name: str):
        """`with timer.phase(name): ...` times the block as `name`."""
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def stop_all(self) -> None:
        """Closes every open phase (after an exception)."""
        if self._stack:
            self.stop(self._stack[0])

    def breakdown(self, epochs: int) -> dict:
        """{"epochs", "total_s", "phases": {name: {"s", "calls", "ms_per_epoch", "share"}}}, known
        phases in `PHASES` order, then any other; `ms_per_epoch` divides by `epochs` (the effective
        epochs this process ran), `share` by the sum of all phases."""
        total = sum(self.seconds.values())
        names = [n for n in PHASES if n in self.seconds] + [n for n in self.seconds if n not in PHASES]
        return dict(epochs=epochs, total_s=round(total, 6), phases={
            name: dict(s=round(self.seconds[name], 6), calls=self.calls.get(name, 0),
                       ms_per_epoch=round(1000.0 * self.seconds[name] / epochs, 4) if epochs else None,
                       share=round(self.seconds[name] / total, 6) if total else None)
            for name in names})
