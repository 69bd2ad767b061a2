"""`--strategy=multi_worker` from the command line: the same files and errors as `fit`, and a bounded,
interruptible startup.

Two workers on 127.0.0.1 (TF_CONFIG) run the runner's own loop, which drives the same callback
list as `fit`: with --snapshot_every=2 it writes metrics.csv, tensorboard/, snapshots.npz,
checkpoint.keras, summary.json and curves.png; a diverging run ends with fit's one-line error
(exit 1, no traceback). A worker whose peer never starts gives up after --startup_timeout_s with
an error naming the flag, and stops on SIGTERM and on SIGINT while it waits, also once TensorFlow
has installed its own SIGTERM handler (exit status 137, the error naming the signal, no process
left). Each process runs in its own
process group, killed whatever happens; waits are bounded by the processes' own progress
(tests/support/processes.py).
"""

import json
import os
import signal
import sys

import pytest

from experiments import analysis_run
from experiments.training.snapshots import read_snapshots
from tests.experiments.support import run_test_loss
from tests.support import processes
from tests.support.processes import free_ports

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUN = ["--optimizer=sgd", "--replicas=2", "--strategy=multi_worker", "--epochs=2", "--batch_size=50",
       "--max_train_examples=400", "--max_test_examples=200", "--verbose=0", "--checkpoint_every=1"]


def worker_env(index, ports):
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
            "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                     "task": {"type": "worker", "index": index}})}


def run_workers(*args):
    """`[(exit status, stdout, stderr)]` of the 2 workers, once both have exited (bounded by progress)."""
    ports = free_ports(2)
    with processes.ProcessGroup() as group:
        workers = [group.start([sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
                               env=worker_env(i, ports), merge_stderr=False) for i in range(2)]
        group.wait(workers, until=lambda: all(w.poll() is not None for w in workers))
        return [(w.poll(), w.stdout, w.stderr) for w in workers]


def test_two_workers_write_the_same_files_as_fit(tmp_path):
    """Elastic-SGD (replica-local weights: reading them for a snapshot is a collective of both
    workers); experiments.analyze then reads the center, at the run's own final test loss."""
    workdir = tmp_path / "wd"
    results = run_workers(*RUN, "--optimizer=elastic_sgd", "--snapshot_every=2", f"--workdir={workdir}")
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert "final test accuracy (anchor)" in results[0][1], results[0]  # the chief reports
    for name in ("config.json", "metrics.csv", "snapshots.npz", "checkpoint.keras", "checkpoint.json",
                 "summary.json", "curves.png"):
        assert (workdir / name).is_file(), name
    assert {"train", "validation"} <= set(os.listdir(workdir / "tensorboard"))
    summary = json.loads((workdir / "summary.json").read_text())
    assert (summary["epochs"], summary["workers"], summary["replicas"]) == (2, 2, 2)
    assert len(read_snapshots(workdir / "snapshots.npz").steps) == 9  # steps 0, 2, ..., 16
    model, _, _, _, weights = analysis_run.load_run(str(workdir))  # what experiments.analyze reads
    assert weights == "center of 2 replicas"
    loss = run_test_loss(model, workdir)
    assert abs(loss - summary["final_test_loss"]) < 1e-5 * summary["final_test_loss"]


def test_a_diverging_multi_worker_run_gives_fits_one_line_error(tmp_path):
    for rc, out, err in run_workers(*RUN, "--learning_rate=1e12", "--lr_schedule=",
                                    f"--workdir={tmp_path / 'wd'}"):
        assert "error: the loss became NaN or infinite during effective epoch 1" in err, err[-3000:]
        assert "Traceback" not in err


def _signals(pid, field):
    """The set of signal numbers in /proc/PID/status's `field` (SigCgt: caught, SigBlk: blocked)."""
    with open(f"/proc/{pid}/status") as f:
        mask = int(next(line.split()[1] for line in f if line.startswith(field + ":")), 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


def _live_members(pgid):
    """Processes of process group `pgid` that are still running (not zombies)."""
    live = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            live.append(int(entry))
    return live


@pytest.fixture(scope="module")
def lone_workers(tmp_path_factory):
    """Three workers whose peer never starts, side by side: one with --startup_timeout_s=3, and two
    sent SIGTERM / SIGINT once TensorFlow has installed its own SIGTERM handler (in the strategy's
    constructor, the hard case: that handler only notes the signal). Started with SIGINT at its
    default action (a shell's background job would inherit it ignored), so Python's handler is in."""
    tmp = tmp_path_factory.mktemp("lone")
    default_int = ["-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                         "os.execv(sys.executable, sys.argv[1:])", sys.executable]
    with processes.ProcessGroup() as group:
        workers = {}
        for name, timeout in (("timeout", 3), ("SIGTERM", 300), ("SIGINT", 300)):
            env = worker_env(0, free_ports(2))
            workers[name] = group.start([sys.executable, *default_int, "-m", "experiments.train", *RUN,
                                         f"--startup_timeout_s={timeout}", f"--workdir={tmp / name}"],
                                        cwd=ROOT, env=env, merge_stderr=False)
        signalled = [workers["SIGTERM"], workers["SIGINT"]]

        def waiting_under_tensorflows_handler():
            return all(w.poll() is None and "waiting up to" in w.stdout
                       and {signal.SIGTERM, signal.SIGINT} <= _signals(w.pid, "SigCgt") for w in signalled)

        group.wait(signalled, until=waiting_under_tensorflows_handler)
        for name in ("SIGTERM", "SIGINT"):
            workers[name].send_signal(getattr(signal, name))
        for w in workers.values():  # each exits and leaves no process of its group (its watchdog) behind
            group.wait([w], until=lambda w=w: w.poll() is not None and not _live_members(w.pid))
        return {name: dict(code=w.poll(), stderr=w.stderr, wrote=(tmp / name).exists())
                for name, w in workers.items()}


def test_a_peer_that_never_starts_ends_the_wait_with_an_error(lone_workers):
    result = lone_workers["timeout"]
    assert result["code"] == -signal.SIGKILL, result
    assert "error: the 2 workers of TF_CONFIG to join (this is worker 0) did not complete within 3 s " \
           "(--startup_timeout_s)" in result["stderr"], result["stderr"][-3000:]
    assert not result["wrote"]  # nothing written (and no process left: the fixture waits for that)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_stop_a_worker_waiting_for_its_peer(lone_workers, name):
    """Stopped by the signal, not by the 300 s timeout: the one-line error names the signal."""
    result = lone_workers[name]
    assert f"error: stopped by {name} while waiting for the 2 workers of TF_CONFIG" in result["stderr"], \
        result["stderr"][-3000:]
    assert "did not complete within" not in result["stderr"] and "Traceback" not in result["stderr"]
    assert result["code"] == -signal.SIGKILL, result  # exit status 137 from a shell
    assert not result["wrote"]
