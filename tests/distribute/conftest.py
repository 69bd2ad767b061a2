"""The 2- and 4-replica checks, run once per test session (`replica_checks.py`).

Under pytest-xdist each worker has its own session: the first worker that
asks runs the script, under a file lock in the run's shared temporary folder;
the others wait for the lock and read its files.
"""

import fcntl
import json
import os
import sys

import pytest

from tests.support import processes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = ("replicas2", "replicas4", "options")


@pytest.fixture(scope="session")
def replica_checks(tmp_path_factory):
    """`{name: the JSON of that run}` for the runs of replica_checks.py (`RESULTS`)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # shared by the run's workers
    out = root / "replica_checks"
    with open(root / "replica_checks.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (out / "done").exists():
                out.mkdir(exist_ok=True)
                # Bounded by progress, not wall time (tests/support/processes.py): a busy machine only slows it.
                proc = processes.run(
                    [sys.executable, os.path.join(HERE, "replica_checks.py"), str(out)], cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
                assert "REPLICA_CHECKS_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
                (out / "done").write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    files = {"options": out / "options" / "options.json"}
    return {name: json.loads(files.get(name, out / f"{name}.json").read_text()) for name in RESULTS}
