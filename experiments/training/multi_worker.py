"""`--strategy=multi_worker`: the cluster of `TF_CONFIG`, joined with a bounded wait.

`multi_worker_strategy(replicas)` reads `TF_CONFIG` (one JSON per host: the
cluster's workers and this host's `task.index`), checks it and makes a
`tf.distribute.MultiWorkerMirroredStrategy`; `replicas` must equal the
cluster's replicas (one per worker on CPU).

Joining. The strategy's constructor waits for every worker of the cluster, for
ever if one never starts, and TensorFlow's coordination service takes over
SIGTERM meanwhile (a kill -TERM or Ctrl-C is ignored; only kill -9 stops it).
So the wait is bounded and interruptible: SIGTERM and SIGINT are blocked for
the constructor's duration (held pending; the threads TensorFlow starts inherit
that, and `python -m experiments.train` blocks them before NumPy and TensorFlow
start any thread: `experiments/stop_signals.py`) and a watchdog process
(`_WATCHDOG`) that sees them pending, or `timeout_s` seconds without the
cluster, prints a one-line error ("error: stopped by SIGTERM while waiting for
...", or "... did not complete within T s (--startup_timeout_s) ...") and ends
the runner with SIGKILL (exit status 137, -9 to Python's subprocess), before
anything is written. Once joined, the signals are unblocked and their default
actions restored (TensorFlow's handler would ignore them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import tensorflow as tf

from experiments import stop_signals

__all__ = ["multi_worker_strategy", "read_tf_config", "join_within", "DEFAULT_STARTUP_TIMEOUT_S"]

DEFAULT_STARTUP_TIMEOUT_S = 300.0


def read_tf_config(text: str | None = None) -> dict:
    """`TF_CONFIG` (default: the environment's) parsed and checked: a cluster with a `worker` list and
    this host's task (type `worker`, an index into that list).

    Raises:
      ValueError: missing or malformed, naming TF_CONFIG and what is wrong.
    """
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise ValueError("--strategy=multi_worker needs TF_CONFIG (the cluster and this worker's task), "
                         "see README 'Several devices and hosts'")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}): {text[:200]!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task', got {text[:200]!r}")
    workers = (config.get("cluster") or {}).get("worker") if isinstance(config.get("cluster"), dict) else None
    if not isinstance(workers, list) or not workers or not all(isinstance(w, str) for w in workers):
        raise ValueError(f"TF_CONFIG needs cluster.worker, a list of 'host:port' strings, got {text[:200]!r}")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") != "worker" or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(workers):
        raise ValueError(f"TF_CONFIG needs task {{'type': 'worker', 'index': I}} with 0 <= I < {len(workers)}, "
                         f"got {task!r}")
    return config


# The watchdog: a separate small process (the strategy's constructor holds the interpreter lock, so
# no thread of this process can run). It reads the runner's pending signals from /proc (Linux) and
# ends it with SIGKILL on SIGTERM / SIGINT or at the deadline, saying why; the runner closes its
# stdin once joined, which ends the watchdog.
_WATCHDOG = r"""
import os, select, signal, sys, time
pid, deadline, what = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), sys.argv[3]
stop = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))

def pending():
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        sys.exit(0)
    return int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)

while True:
    if select.select([sys.stdin], [], [], 0.2)[0]:
        sys.exit(0)  # joined (stdin closed)
    bits = pending() & stop
    if bits or time.monotonic() > deadline:
        name = ("SIGTERM" if bits & (1 << (signal.SIGTERM - 1)) else "SIGINT") if bits else None
        message = (f"stopped by {name} while waiting for {what}" if name else
                   f"{what} did not complete within {sys.argv[2]} s (--startup_timeout_s): check that every "
                   "worker of TF_CONFIG is started with the same cluster and can reach the others")
        print(f"error: {message}", file=sys.stderr, flush=True)
        os.kill(pid, signal.SIGKILL)
        sys.exit(0)
"""


def join_within(make, timeout_s: float, what: str):
    """`make()` with SIGTERM / SIGINT honoured and at most `timeout_s` seconds (module docstring)."""
    stop_signals.hold()  # held pending in this thread: the watchdog sees them
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), f"{timeout_s:g}", what],
                                stdin=subprocess.PIPE)
    print(f"waiting up to {timeout_s:g} s for {what}", flush=True)  # SIGTERM / SIGINT now end the wait
    try:
        return make()
    finally:
        watchdog.stdin.close()
        watchdog.wait()
        for signum in stop_signals.STOP_SIGNALS:  # TensorFlow's own handlers off: the defaults again
            signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)
        stop_signals.release()


def multi_worker_strategy(replicas=None, timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S):
    """`tf.distribute.MultiWorkerMirroredStrategy` of the cluster in `TF_CONFIG`, joined within `timeout_s`.

    Raises:
      ValueError: TF_CONFIG missing or malformed, or the cluster has another number of replicas
        than `replicas`.
    """
    config = read_tf_config()
    workers = len(config["cluster"]["worker"])
    strategy = join_within(tf.distribute.MultiWorkerMirroredStrategy, timeout_s,
                           f"the {workers} workers of TF_CONFIG to join (this is worker {config['task']['index']})")
    if strategy.num_replicas_in_sync != (replicas or 1):
        raise ValueError(f"replicas={replicas or 1}, but the cluster in TF_CONFIG has "
                         f"{strategy.num_replicas_in_sync} replicas; pass --replicas={strategy.num_replicas_in_sync}")
    return strategy
