"""A fork server for the tests' Python child processes: TensorFlow is imported once, not per child.

Starting a fresh interpreter that imports TensorFlow, Keras and this library costs about 9 s
of CPU on a 2-core machine, and the suite starts several dozen such children (command-line
runs, workers of a multi-worker run, the processes that set up logical devices). A zygote
imports them once per test process and forks a child for each request; the child then runs
`python -c CODE`, `python -m MODULE` or `python SCRIPT` in-process, as the interpreter would:
its own session (so its process group can be killed), its own working directory, environment,
`sys.argv`, `sys.path` and standard streams, the module run as `__main__` (removed from
`sys.modules` first, as a fresh interpreter would not have it), exit status from `SystemExit`.

Forking after `import tensorflow` is safe only while TensorFlow's runtime is not started (no
device listed, no operation run): the zygote checks that after its imports and refuses to
serve otherwise. What a child cannot get from a fork is reading an environment variable at
import time with a new value: `TF_CPP_MIN_LOG_LEVEL` and the like keep the zygote's values
(the tests set them alike). `CONTROL_OPT_TEST_FRESH=1` turns the zygote off (every child a
fresh interpreter), e.g. to rule it out when a test behaves oddly.

Server: `zygote.serve(SOCKET)` in a fresh interpreter; it prints `ZYGOTE_READY`, serves until its
standard input closes (its parent, the test process, exited), then kills every child's
process group. Client: `spawn(args, cwd, env, ...)`, for `args` that `eligible` accepts, returns a
`Forked`: what the tests use of a `subprocess.Popen`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

__all__ = ["Forked", "eligible", "spawn"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRELOAD = ("numpy", "absl.app", "absl.flags", "tensorflow", "keras", "tensorflow_probability", "control_opt",
           "experiments.train", "experiments.analyze", "experiments.hj_smoothing", "experiments.sde_landscape",
           "experiments.sweep", "experiments.training.run", "experiments.training.distributed_loop")
_HEADER = 8  # bytes of the request's length


# ------------------------------------------------------------------ server


def _preload():
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional part (e.g. the sweep's engine): the child imports it if it needs it
            pass
    from tensorflow.python.eager import context

    if context.context()._initialized:  # pylint: disable=protected-access
        raise RuntimeError("TensorFlow's runtime started during the zygote's imports: forking is unsafe")


def _exit_code(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _run_child(request, fds, base_path):
    """In the forked child: becomes `python ARGS` and exits; never returns."""
    code = 1
    try:
        os.setsid()
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in set(fds):
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        pythonpath = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        argv = request["argv"][1:]
        import runpy

        if argv[0] == "-c":
            import builtins
            import types

            sys.argv = ["-c", *argv[2:]]
            sys.path[:] = [""] + pythonpath + base_path
            main = types.ModuleType("__main__")
            main.__builtins__ = builtins
            sys.modules["__main__"] = main
            exec(compile(argv[1], "<string>", "exec"), main.__dict__)  # pylint: disable=exec-used
        elif argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[:] = [os.getcwd()] + pythonpath + base_path
            sys.modules.pop(argv[1], None)
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[:] = [os.path.dirname(os.path.abspath(argv[0]))] + pythonpath + base_path
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as error:
        code = _exit_code(error.code)
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 - reported as the interpreter would, exit status 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            threading._shutdown()  # pylint: disable=protected-access
            atexit._run_exitfuncs()  # pylint: disable=protected-access
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            if code == -signal.SIGINT:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
            os._exit(code & 0xFF)  # pylint: disable=protected-access


def _receive(conn):
    message, fds, _, _ = socket.recv_fds(conn, _HEADER, 3)
    while len(message) < _HEADER:
        message += conn.recv(_HEADER - len(message))
    size, body = int.from_bytes(message, "big"), b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("request cut short")
        body += chunk
    return json.loads(body), fds


def serve(path):
    _preload()
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    base_path = [p for p in sys.path[1:] if p not in own]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print("ZYGOTE_READY", flush=True)
    children = {}  # pid -> the connection that asked for it
    try:
        while True:
            readable, _, _ = select.select([server, 0], [], [], 0.05)
            if 0 in readable and not os.read(0, 1024):
                return  # the test process is gone
            if server in readable:
                conn, _ = server.accept()
                try:
                    request, fds = _receive(conn)
                except (OSError, ValueError) as error:
                    print(f"zygote: bad request: {error}", file=sys.stderr, flush=True)
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    server.close()
                    conn.close()
                    for other in children.values():
                        other.close()
                    _run_child(request, fds, base_path)
                for fd in fds:
                    os.close(fd)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                children[pid] = conn
            while children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is not None:
                    try:
                        conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                    except OSError:
                        pass
                    conn.close()
    finally:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        server.close()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)  # the socket and the log, when the client is gone


# ------------------------------------------------------------------ client


class Forked:
    """A child forked by the zygote, as much of `subprocess.Popen` as the tests use: `pid`, `returncode`,
    `poll()`, `wait()`, `send_signal()`, and the parent's ends of its pipes `stdin`, `stdout`, `stderr`
    (binary; None where not piped)."""

    def __init__(self, conn, replies, pid, streams):
        self.pid, self.returncode = pid, None
        self.stdin, self.stdout, self.stderr = streams
        self._conn, self._replies, self._done = conn, replies, threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        try:
            data = self._replies.readline()
        except OSError:
            data = b""
        self._replies.close()
        self._conn.close()
        try:
            self.returncode = json.loads(data)["exit"]
        except (ValueError, KeyError):
            self.returncode = -signal.SIGKILL  # the zygote went away with it
        self._done.set()

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired([str(self.pid)], timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


class _Zygote:
    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="zygote-")
        self.path = os.path.join(self.folder, "socket")
        self.log = open(os.path.join(self.folder, "log"), "w+b")  # pylint: disable=consider-using-with
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-c", "import sys; from tests.support import zygote; zygote.serve(sys.argv[1])",
             self.path], cwd=ROOT, env=env, start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.ready = self.process.stdout.readline().strip() == b"ZYGOTE_READY"  # the imports: seconds
        atexit.register(self.close)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()  # the zygote kills its children's groups and exits
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stdout.close()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def failure(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


_zygote = None
_lock = threading.Lock()


def eligible(args):
    """Whether `args` is `[sys.executable, "-c" CODE | "-m" MODULE | SCRIPT, ...]` (and the zygote is on)."""
    if os.environ.get("CONTROL_OPT_TEST_FRESH") == "1" or len(args) < 2 or args[0] != sys.executable:
        return False
    if args[1] in ("-c", "-m"):
        return len(args) >= 3
    return not args[1].startswith("-") and args[1].endswith(".py")


def spawn(args, cwd, env, *, merge_stderr=True, stdin=False):
    """Forks `args` (`eligible`) in the zygote, its output piped (stderr into stdout with `merge_stderr`),
    its input piped with `stdin`, else /dev/null; a `Forked`. Starts this process's zygote on first use."""
    global _zygote  # pylint: disable=global-statement
    with _lock:
        if _zygote is None:
            _zygote = _Zygote()
        zygote = _zygote
    if not zygote.ready:
        raise RuntimeError(f"the test zygote did not start:\n{zygote.failure()}")
    child_in, parent_in = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), None)
    parent_out, child_out = os.pipe()
    parent_err, child_err = (None, child_out) if merge_stderr else os.pipe()
    body = json.dumps(dict(argv=list(args), cwd=os.path.abspath(cwd or os.getcwd()),
                           env=dict(os.environ if env is None else env))).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(zygote.path)
        socket.send_fds(conn, [len(body).to_bytes(_HEADER, "big")], [child_in, child_out, child_err])
        conn.sendall(body)
        replies = conn.makefile("rb")
        reply = replies.readline()
    except BaseException:
        conn.close()
        for fd in (parent_in, parent_out, parent_err):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in {child_in, child_out, child_err}:
            os.close(fd)  # the child has its own copies
    if not reply.endswith(b"\n"):
        replies.close()
        conn.close()
        raise RuntimeError(f"the test zygote closed the connection:\n{zygote.failure()}")
    streams = (None if parent_in is None else os.fdopen(parent_in, "wb"), os.fdopen(parent_out, "rb"),
               None if parent_err is None else os.fdopen(parent_err, "rb"))
    return Forked(conn, replies, json.loads(reply)["pid"], streams)
