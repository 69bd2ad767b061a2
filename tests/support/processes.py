"""Child processes for tests, bounded by progress rather than by a wall-clock deadline.

A test that starts processes must pass on a slow, busy machine and must never
leave a process behind. So a wait here fails only when the children stop
making progress: none of them has printed anything new, or used another
`CPU_STEP_S` seconds of CPU time, for `QUIET_S` seconds (generous: on a
2-core machine with load 10 a child still gets that much CPU many times over).
A deadlocked run (two workers waiting on each other) prints nothing and uses no
CPU, so it fails after `QUIET_S`; a slow one keeps going. `LIMIT_S`, far
beyond any run, only guarantees that no test waits forever.

Every child runs in its own process group (`start_new_session`), and
`ProcessGroup.__exit__` kills every group it started and reaps it, on every
exit path (success, failed assertion, stall, KeyboardInterrupt).

    with ProcessGroup() as group:
        workers = [group.start([sys.executable, SCRIPT, "worker", i], cwd=ROOT, env=ENV) for i in range(2)]
        logs = group.wait(workers)                      # their output, once all have exited

    result = run([sys.executable, "-m", "experiments.train", ...], cwd=ROOT, env=env)
    # like subprocess.run(capture_output=True, text=True), bounded by progress

Environment: `CONTROL_OPT_TEST_QUIET_S` and `CONTROL_OPT_TEST_LIMIT_S` override the two bounds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

from tests.support import zygote

__all__ = ["CPU_STEP_S", "LIMIT_S", "QUIET_S", "Child", "ProcessGroup", "Stalled", "run"]

QUIET_S = float(os.environ.get("CONTROL_OPT_TEST_QUIET_S", 180))
LIMIT_S = float(os.environ.get("CONTROL_OPT_TEST_LIMIT_S", 3600))
CPU_STEP_S = 0.5
_POLL_S = 0.1
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Stalled(AssertionError):
    """The children made no progress for `quiet_s` seconds (or ran past `limit_s`)."""


def _cpu_seconds(pid):
    """User + system CPU time of process `pid` (all its threads), or None where /proc is absent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


class Child:
    """One child process, its own process group; stdout (and stderr) read by threads as it comes."""

    def __init__(self, args, *, cwd=None, env=None, merge_stderr=True, input=None):
        self.args = list(map(str, args))
        if zygote.eligible(self.args):  # forked from the zygote: TensorFlow already imported
            self.popen = zygote.spawn(self.args, cwd, env, merge_stderr=merge_stderr, stdin=input is not None)
        else:
            self.popen = subprocess.Popen(
                self.args, cwd=cwd, env=env, start_new_session=True,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
        self._chunks = {"stdout": [], "stderr": []}
        self._lock = threading.Lock()
        self.last_progress = time.monotonic()
        self._cpu_mark = 0.0
        self._readers = [threading.Thread(target=self._read, args=(self.popen.stdout, "stdout"), daemon=True)]
        if not merge_stderr:
            self._readers.append(threading.Thread(target=self._read, args=(self.popen.stderr, "stderr"), daemon=True))
        for reader in self._readers:
            reader.start()
        if input is not None:
            threading.Thread(target=self._write, args=(input,), daemon=True).start()

    def _write(self, text):
        try:
            self.popen.stdin.write(text.encode())
            self.popen.stdin.close()
        except OSError:  # the child exited without reading it
            pass

    def _read(self, stream, name):
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            with self._lock:
                self._chunks[name].append(chunk)
                self.last_progress = time.monotonic()

    def _text(self, name):
        with self._lock:
            data = b"".join(self._chunks[name])
        return data.decode(errors="replace").replace("\r\n", "\n")

    @property
    def stdout(self):
        """Everything printed so far (with stderr, unless `merge_stderr=False`)."""
        return self._text("stdout")

    @property
    def stderr(self):
        return self._text("stderr")

    @property
    def pid(self):
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def send_signal(self, sig):
        """Sends `sig` to the child itself (not its group)."""
        self.popen.send_signal(sig)

    def check_progress(self):
        """Moves `last_progress` to now if the child used `CPU_STEP_S` more CPU time; its time."""
        cpu = _cpu_seconds(self.popen.pid)
        if cpu is not None and cpu >= self._cpu_mark + CPU_STEP_S:
            self._cpu_mark = cpu
            self.last_progress = time.monotonic()
        with self._lock:
            return self.last_progress

    def kill(self):
        """Kills the child's process group (it and anything it started), reaps it, drains its pipes."""
        try:  # also when the child itself has exited: what it started may still run
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.popen.stdout, self.popen.stderr, self.popen.stdin):
            if stream is not None:
                stream.close()

    def tail(self, n=4000):
        return f"$ {' '.join(self.args)}\n(exit {self.poll()})\n{self.stdout[-n:]}{self.stderr[-n:]}"


class ProcessGroup:
    """Children started through it are killed, with their process groups, when the `with` block exits."""

    def __init__(self, quiet_s=None, limit_s=None):
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.limit_s = LIMIT_S if limit_s is None else limit_s
        self.children = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(self.children)
        return False

    def start(self, args, **kwargs):
        """A `Child` (kwargs: cwd, env, merge_stderr, input)."""
        child = Child(args, **kwargs)
        self.children.append(child)
        return child

    @staticmethod
    def stop(children):
        for child in children:
            child.kill()

    def wait(self, children=None, until=None):
        """Waits while `children` (default: all started) progress, until all have exited (or one
        has failed: the others are killed) or, when given, until `until()` is true (then fails if
        they all exit first). Returns their output (`Child.stdout`), in order. Raises `Stalled`."""
        children = list(self.children if children is None else children)
        start = time.monotonic()
        while True:
            if until is not None and until():
                break
            codes = [child.poll() for child in children]
            if until is None and any(code not in (None, 0) for code in codes):
                break  # one failed: the others may wait on it forever (a collective); the caller reports
            if all(code is not None for code in codes):
                if until is not None:
                    raise Stalled("the processes exited before the awaited condition:\n"
                                  + "\n".join(child.tail() for child in children))
                break
            now = time.monotonic()
            newest = max(child.check_progress() for child in children)
            if now - newest > self.quiet_s or now - start > self.limit_s:
                what = (f"no output and under {CPU_STEP_S} s of CPU time for {self.quiet_s:.0f} s"
                        if now - newest > self.quiet_s else f"still running after {self.limit_s:.0f} s")
                raise Stalled(f"{what}:\n" + "\n".join(child.tail() for child in children))
            time.sleep(_POLL_S)
        if until is None:
            for child in children:
                child.kill()  # exited: drains the pipes; still running after a failure: killed
        return [child.stdout for child in children]


def run(args, *, cwd=None, env=None, input=None, quiet_s=None, limit_s=None):
    """`subprocess.run(args, capture_output=True, text=True)`, bounded by progress, the child's
    process group killed whatever happens. Returns a `subprocess.CompletedProcess`."""
    with ProcessGroup(quiet_s, limit_s) as group:
        child = group.start(args, cwd=cwd, env=env, merge_stderr=False, input=input)
        group.wait([child])
    return subprocess.CompletedProcess(child.args, child.poll(), child.stdout, child.stderr)


def free_ports(n):
    """`n` free TCP ports on the loopback (for the workers' TF_CONFIG)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
