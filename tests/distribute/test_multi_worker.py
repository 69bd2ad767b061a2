"""ElasticSGD and Parle under MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1.

Keras' `fit` fails under that strategy (keras-team/keras#20585), so the
workers run a custom `strategy.run` loop (`multi_worker_script.py`); the same
loop under MirroredStrategy on 2 logical CPUs is the reference. Waits are bounded
by progress and every process group is killed on exit (tests/support/processes.py).
"""

import json
import os
import sys

import numpy as np
import pytest

from tests.support.processes import ProcessGroup, free_ports

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "multi_worker_script.py")
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi_worker")
    ports = ",".join(map(str, free_ports(2)))
    with ProcessGroup() as group:  # always cleaned up, whatever happens
        workers = [group.start([sys.executable, SCRIPT, "worker", i, ports, out / f"worker{i}.json"], cwd=ROOT, env=ENV)
                   for i in range(2)]
        reference = group.start([sys.executable, SCRIPT, "mirrored", out / "mirrored.json"], cwd=ROOT, env=ENV,
                                merge_stderr=False)
        *logs, _ = group.wait(workers + [reference])
    assert "MULTI_WORKER_OK" in reference.stdout, reference.stdout[-2000:] + reference.stderr[-4000:]
    for log in logs:
        assert "MULTI_WORKER_OK" in log, log[-4000:]
    load = lambda name: json.loads((out / name).read_text())  # noqa: E731
    return [load("worker0.json"), load("worker1.json")], load("mirrored.json")


@pytest.mark.parametrize("method", ["elastic", "parle"])
def test_two_workers_equal_two_local_replicas(runs, method):
    workers, mirrored = runs
    for r in ("0", "1"):
        for a, b in zip(workers[int(r)][method]["anchors"][r], mirrored[method]["anchors"][r]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Both workers hold the same center, each replica its own weights.
    for c0, c1 in zip(workers[0][method]["centers"], workers[1][method]["centers"]):
        np.testing.assert_array_equal(c0, c1)
    spread = max(np.abs(np.subtract(a, b)).max() for a, b in zip(workers[0][method]["anchors"]["0"],
                                                                 workers[1][method]["anchors"]["1"]))
    assert spread > 1e-3
    assert workers[0][method]["syncs"] == workers[1][method]["syncs"] == mirrored[method]["syncs"] > 0
