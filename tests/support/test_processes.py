"""The progress-bounded process helper: a silent idle child stalls, a silent busy one does not,
and every process group is killed on every exit path."""

import os
import sys
import time

import pytest

from tests.support import processes
from tests.support.processes import ProcessGroup, Stalled

PY = sys.executable


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper counts as gone
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_run_is_subprocess_run():
    result = processes.run([PY, "-c", "import sys; print(input()); print('err', file=sys.stderr); sys.exit(3)"],
                           input="hello\n")
    assert (result.returncode, result.stdout, result.stderr) == (3, "hello\n", "err\n")


def test_a_silent_idle_child_stalls_and_is_killed():
    start = time.monotonic()
    with ProcessGroup(quiet_s=1.0) as group:
        child = group.start([PY, "-c", "import time; print('started', flush=True); time.sleep(600)"])
        with pytest.raises(Stalled, match=r"(?s)no output.*for 1 s.*started"):
            group.wait()
    assert child.poll() is not None and time.monotonic() - start < 300


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="CPU time is read from /proc")
def test_a_silent_busy_child_is_progress(monkeypatch):
    # Silent for several times quiet_s, but computing: not a stall (a small CPU step, so that
    # the child's share of a busy machine is still progress within quiet_s).
    monkeypatch.setattr(processes, "CPU_STEP_S", 0.02)
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 2.0: pass\nprint('done')"
    with ProcessGroup(quiet_s=0.5) as group:
        assert group.wait([group.start([PY, "-c", code])]) == ["done\n"]


def test_output_is_progress():
    code = "import time\nfor i in range(6):\n    print(i, flush=True); time.sleep(0.5)"
    with ProcessGroup(quiet_s=1.5) as group:
        assert group.wait([group.start([PY, "-c", code])])[0].split() == list("012345")


def test_the_whole_group_is_killed_on_an_exception(tmp_path):
    # The child starts a grandchild and exits; the grandchild must not survive the `with` block.
    pid_file = tmp_path / "grandchild"
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))\nprint('ready', flush=True)\n"
            "import time; time.sleep(600)")
    with pytest.raises(RuntimeError, match="the test failed"):
        with ProcessGroup() as group:
            child = group.start([PY, "-c", code])
            group.wait(until=pid_file.exists)
            while not pid_file.read_text():
                time.sleep(0.05)
            grandchild = int(pid_file.read_text())
            assert _alive(grandchild)
            raise RuntimeError("the test failed")
    assert child.poll() is not None
    deadline = time.monotonic() + 60
    while _alive(grandchild) and time.monotonic() < deadline:  # killed; reaped by init
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_waiting_for_a_condition_fails_when_all_exit_first():
    with ProcessGroup() as group:
        with pytest.raises(Stalled, match="exited before"):
            group.wait([group.start([PY, "-c", "print('bye')"])], until=lambda: False)
