"""`--strategy=multi_worker` from the command line: the same files and errors as `fit`, and a bounded,
interruptible startup.

Two workers on 127.0.0.1 (TF_CONFIG) run the runner's own loop, which drives the same callback
list as `fit`: with --snapshot_every=2 it writes metrics.csv, tensorboard/, snapshots.npz,
checkpoint.keras, summary.json and curves.png; a diverging run ends with fit's one-line error
(exit 1, no traceback). A worker whose peer never starts gives up after --startup_timeout_s with
an error naming the flag, and stops on SIGTERM while it waits. Each process runs in its own
process group, killed in a `finally`; waits are bounded by the processes' own progress (their
exit or a line they print), with a generous cap only against a hang.
"""

import json
import os
import signal
import subprocess
import sys

import keras

from tests.support.processes import free_ports

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CAP = 600  # seconds: only against a hang (the runs take seconds to a minute)
RUN = ["--optimizer=sgd", "--replicas=2", "--strategy=multi_worker", "--epochs=2", "--batch_size=50",
       "--max_train_examples=400", "--max_test_examples=200", "--verbose=0", "--checkpoint_every=1"]


def start(index, ports, *args):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                    "task": {"type": "worker", "index": index}})}
    return subprocess.Popen([sys.executable, "-m", "experiments.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, start_new_session=True)


def stop(processes):
    for p in processes:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()


def run_workers(*args):
    ports = free_ports(2)
    processes = [start(i, ports, *args) for i in range(2)]
    try:
        return [(p.returncode, *p.communicate(timeout=CAP)) for p in processes]
    finally:
        stop(processes)


def test_two_workers_write_the_same_files_as_fit(tmp_path):
    workdir = tmp_path / "wd"
    results = run_workers(*RUN, "--snapshot_every=2", f"--workdir={workdir}")
    for rc, out, err in results:
        assert "final test accuracy (anchor)" in out or rc is None, (out, err[-3000:])
    assert all(p_rc in (0, None) for p_rc, _, _ in results), results
    for name in ("config.json", "metrics.csv", "snapshots.npz", "checkpoint.keras", "checkpoint.json",
                 "summary.json", "curves.png"):
        assert (workdir / name).is_file(), name
    assert {"train", "validation"} <= set(os.listdir(workdir / "tensorboard"))
    summary = json.loads((workdir / "summary.json").read_text())
    assert (summary["epochs"], summary["workers"], summary["replicas"]) == (2, 2, 2)
    model = keras.models.load_model(workdir / "checkpoint.keras")  # what experiments.analyze reads
    assert model.count_params() > 0


def test_a_diverging_multi_worker_run_gives_fits_one_line_error(tmp_path):
    for rc, out, err in run_workers(*RUN, "--learning_rate=1e12", "--lr_schedule=",
                                    f"--workdir={tmp_path / 'wd'}"):
        assert "error: the loss became NaN or infinite during effective epoch 1" in err, err[-3000:]
        assert "Traceback" not in err


def test_a_peer_that_never_starts_ends_the_wait_with_an_error(tmp_path):
    workdir = tmp_path / "wd"
    process = start(0, free_ports(2), *RUN, "--startup_timeout_s=3", f"--workdir={workdir}")
    try:
        out, err = process.communicate(timeout=CAP)
    finally:
        stop([process])
    assert process.returncode != 0
    assert "did not complete within 3 s (--startup_timeout_s)" in err, err[-3000:]
    assert not workdir.exists()  # nothing written


def test_sigterm_stops_a_worker_waiting_for_its_peer(tmp_path):
    process = start(0, free_ports(2), *RUN, "--startup_timeout_s=300", f"--workdir={tmp_path / 'wd'}")
    try:
        line = process.stdout.readline()  # the wait has begun when it says so
        while line and "waiting up to" not in line:
            line = process.stdout.readline()
        assert "waiting up to" in line
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=CAP)
    finally:
        stop([process])
    # Killed by the signal's default action (a thread TensorFlow started before the wait does not block
    # it), or by the watchdog that saw it pending: either way it stops, and nothing was written.
    assert process.returncode == -signal.SIGTERM or "stopped by SIGTERM" in err, (process.returncode, err[-3000:])
    assert not (tmp_path / "wd").exists()
