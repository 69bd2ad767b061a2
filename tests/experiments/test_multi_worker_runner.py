"""`--strategy=multi_worker`: two worker processes on 127.0.0.1 (TF_CONFIG), the runner's own loop.

The 2-worker run must equal Keras `fit` with `--strategy=mirrored --replicas=2` (one process,
2 logical CPUs) on the same seed, up to float tolerance; a worker killed after the first
checkpoint and both restarted must finish the same run. Every process runs in its own process
group, killed whatever happens; waits are bounded by progress (tests/support/processes.py).
"""

import csv
import json
import os
import socket
import sys

import numpy as np
import pytest

from tests.support.processes import ProcessGroup

pytestmark = pytest.mark.slow  # multi-process end to end: CI runs it (pyproject.toml)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "multi_worker_runner_script.py")
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
ENV.pop("TF_CONFIG", None)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return ",".join(str(s.getsockname()[1]) for s in sockets)
    finally:
        for s in sockets:
            s.close()


def start(group, *args):
    return group.start([sys.executable, SCRIPT, *args], cwd=ROOT, env=ENV)


def finish(group, processes):
    logs = group.wait(processes)
    for log in logs:
        assert "RUNNER_OK" in log, log[-4000:]
    return logs


def metrics(workdir):
    with open(os.path.join(workdir, "metrics.csv"), newline="") as f:
        return [{k: float(v) for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]


def assert_same_run(a, b):
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert set(ra) == set(rb)
        np.testing.assert_allclose([ra[k] for k in sorted(ra)], [rb[k] for k in sorted(ra)], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi_worker_runner")
    ports = free_ports(2)
    with ProcessGroup() as group:
        finish(group, [start(group, "worker", i, ports, out / "workers") for i in range(2)]
               + [start(group, "fit", out / "fit")])
    return out


def test_two_workers_equal_fit_on_two_local_replicas(straight):
    workers, fit = metrics(straight / "workers"), metrics(straight / "fit")
    assert "train_loss_r1" in workers[0]
    assert_same_run(workers, fit)
    summary = json.loads((straight / "workers" / "summary.json").read_text())
    assert (summary["workers"], summary["replicas"]) == (2, 2)
    # Each worker keeps its own copies of the two latest epochs.
    assert sorted(os.listdir(straight / "workers" / "worker_checkpoints")) == [
        f"epoch-{e}.worker-{w}.npz" for e in (2, 3) for w in (0, 1)]


def test_a_killed_worker_restarted_finishes_the_same_run(straight, tmp_path):
    workdir = tmp_path / "fault"
    with ProcessGroup() as group:
        ports = free_ports(2)
        processes = [start(group, "worker", i, ports, workdir, 1) for i in range(2)]  # both stall after epoch 1
        checkpoints = [workdir / "worker_checkpoints" / f"epoch-1.worker-{w}.npz" for w in range(2)]
        group.wait(processes, until=lambda: all(c.exists() for c in checkpoints))
        assert all(p.poll() is None for p in processes), "a worker exited before its first checkpoint"
        group.stop(processes[1:])  # worker 1 dies after the first checkpoint...
        group.stop(processes[:1])  # ...and worker 0, now stuck in its next collective, is stopped too
        assert len(metrics(workdir)) == 1
        ports = free_ports(2)
        logs = finish(group, [start(group, "worker", i, ports, workdir) for i in range(2)])  # both restarted
    assert all("resuming" in log and "at effective epoch 1/3" in log for log in logs)
    assert_same_run(metrics(workdir), metrics(straight / "workers"))
