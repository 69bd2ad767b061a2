"""SIGTERM and SIGINT kept for the main thread: held before the libraries start their threads.

The kernel gives a signal sent to a process to any of its threads that does not
block it. NumPy (its BLAS pool) and TensorFlow start threads when imported,
before a run knows its strategy; a SIGTERM or Ctrl-C that lands on one of them
during `--strategy=multi_worker`'s wait for its peers is lost: TensorFlow's
coordination service installs a SIGTERM handler that only notes the signal, and
Python's SIGINT handler sets a flag that the main thread, inside the strategy's
constructor, never reads.

So `python -m experiments.train` calls `hold()` first, before those imports:
every thread started afterwards inherits the two signals blocked, and only the
main thread will ever unblock them (`release()`). While it waits for the
cluster the main thread keeps them blocked too, so a signal stays pending,
where `multi_worker.join_within`'s watchdog sees it and stops the run.
Standard library only: this must be importable before NumPy and TensorFlow.
"""

import signal

__all__ = ["STOP_SIGNALS", "hold", "release"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def hold() -> None:
    """Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts later)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release() -> None:
    """Unblocks them in the calling thread: one held meanwhile is delivered now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
