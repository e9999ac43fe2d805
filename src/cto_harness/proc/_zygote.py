"""A long-lived worker that imports once and forks a fresh child per request.

``Zygote.start`` spawns ``python -c <serve> TARGET [WARM]`` in a new session (stdin and stdout
are its request pipe, stderr a log). The zygote imports ``TARGET`` (``module:function``), calls
``WARM`` (``module:function``, to import what the target will need), stays single-threaded,
and then serves one request at a time: it forks a child that runs ``function(args)`` and
exits with its return value. The child starts clean: its own session, SIGTERM when
the zygote dies (``PR_SET_PDEATHSIG``), every signal handler at its default and an empty
signal mask (as a fresh interpreter has them), stdin from /dev/null, stdout and stderr to the
request's files, no other file descriptor, the request's cwd and environment (plus
``CTO_HARNESS_RUN_TAG``). The zygote is the child's deadline keeper: on timeout it kills the
child's tree (TERM, ``TERM_GRACE_S``, KILL); after a normal exit it kills what the child left
behind, as ``run_bounded`` does, then reports the exit status.

``Zygote.start(..., fork=True)`` makes the zygote a fork of the calling process instead, when
that process is single-threaded (else it starts a fresh interpreter as above): nothing is
imported twice and there is no interpreter to start. The fork then puts itself in the state a
fresh ``python -c`` has (its own session, the pipes on 0 and 1 and the log on 2, no other file
descriptor, every signal handler at its default and an empty mask, the caller's ``atexit``
functions, hooks, tracer and live process roots forgotten, the given environment and cwd)
before it imports and serves exactly as above. Interpreter-wide settings the caller made
(warning filters, ``sys.path``, import hooks) carry over; the CLI's coordinator makes none.

Faults: when the coordinator goes away (EOF on the request pipe) the zygote exits and its
child gets SIGTERM, exactly as a child of ``run_bounded`` does through ``PR_SET_PDEATHSIG``.
When the zygote dies, ``Zygote.run`` waits (bounded) for the child to finish on its SIGTERM,
kills what is left and raises ``ZygoteLost``; it never hangs, and a zygote that stops
answering is killed at the request's deadline plus a margin.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import fcntl
import gc
import importlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import psutil

from cto_harness.core import CapturedStream, ProcessResult
from cto_harness.proc import _bounded
from cto_harness.proc._bounded import (
    _LIVE_ROOTS,
    _ROOTS_LOCK,
    _SCAN_EPSILON_S,
    KILL_WAIT_S,
    TAG_ENV,
    HarnessInterrupted,
    SpawnError,
    _children_files_work,
    _is_subreaper,
    _prctl,
    _Tree,
    enable_subreaper,
    kill_process_tree,
)
from cto_harness.proc._exit import exit_now

__all__ = ["LOST_CHILD_WAIT_S", "READY_TIMEOUT_S", "Zygote", "ZygoteLost"]

READY_TIMEOUT_S = 120.0
"""How long a new zygote may take to import its target before it counts as failed."""
LOST_CHILD_WAIT_S = 30.0
"""After the zygote died: how long its child may take to finish on its SIGTERM before a kill."""
ANSWER_MARGIN_S = 30.0
"""A zygote silent this long past a request's deadline (plus the kill grace) is killed."""
_PR_SET_PDEATHSIG = 1
ZYGOTE_NAME = "cto-zygote"
"""The zygote's process name (``/proc/<pid>/comm``; its children get their parent's name back)."""
_SERVE = "import sys; from cto_harness.proc._zygote import serve; sys.exit(serve(sys.argv[1:]))"


class ZygoteLost(RuntimeError):
    """The zygote died (or stopped answering) before it reported the child's exit."""

    def __init__(self, message: str, child_pid: int | None) -> None:
        super().__init__(message)
        self.child_pid = child_pid


def _resolve(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    func: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return func


def _send(fd: int, message: Mapping[str, object]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


class _Lines:
    """JSON messages, one per line, read from a raw fd with an optional deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def ready(self) -> bool:
        return b"\n" in self.buffer

    def fill(self) -> None:
        """One read (call when the fd is readable)."""
        chunk = os.read(self.fd, 65536)
        if chunk:
            self.buffer += chunk
        else:
            self.eof = True

    def pop(self) -> dict[str, Any] | None:
        if b"\n" not in self.buffer:
            return None
        line, _, self.buffer = self.buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def next(self, deadline: float | None) -> dict[str, Any] | None:
        """The next message; None at EOF. Raises TimeoutError at ``deadline``.

        In the main thread the wait is cut into ``POLL_S`` slices, so an interrupt that is
        only a pending Python exception (``ray.cancel``, ``PyErr_SetInterrupt``) lands too.
        """
        slice_s = _bounded.POLL_S if threading.current_thread() is threading.main_thread() else math.inf
        while not self.ready() and not self.eof:
            wait = math.inf if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            step = min(wait, slice_s)
            poller = select.poll()
            poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            if poller.poll(None if math.isinf(step) else math.ceil(step * 1000)):
                self.fill()
        return self.pop()


# ---------------------------------------------------------------- the zygote process


def serve(argv: list[str]) -> int:
    """The zygote's main loop (``argv``: TARGET [WARM])."""
    requests, answers = os.dup(0), os.dup(1)  # non-inheritable copies; 0 and 1 become harmless
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal Ctrl-C is the coordinator's to handle
    name = _set_name(ZYGOTE_NAME)
    target = _resolve(argv[0])
    if len(argv) > 1 and argv[1]:
        _resolve(argv[1])()
    enable_subreaper()
    gc.collect()
    gc.freeze()  # what the imports made stays shared with every child (no copy-on-write by the collector)
    if threading.active_count() != 1:
        print(f"zygote: {threading.active_count()} threads after import; refusing to fork", file=sys.stderr)
        return 3
    _send(answers, {"event": "ready", "pid": os.getpid()})
    lines = _Lines(requests)
    while True:
        message = lines.next(None)
        if message is None:
            return 0
        if message.get("op") == "run":
            _serve_one(target, argv[0], message, lines, answers, name)


def _set_name(name: str) -> str | None:
    """Set this process's name (comm); the previous one, or None where it cannot be read."""
    try:
        with open("/proc/self/comm", "r+") as comm:
            previous = comm.read().strip()
            comm.seek(0)
            comm.write(name)
        return previous
    except OSError:
        return None


def _serve_one(target: Callable[..., Any], spec: str, request: dict[str, Any], lines: _Lines,
               answers: int, name: str | None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if threading.active_count() != 1:
        _send(answers, {"event": "error", "message": "the zygote is no longer single-threaded"})
        return
    started = time.monotonic()
    spawned_wall = time.time()
    zygote_pid = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        _send(answers, {"event": "error", "message": f"fork failed: {exc}"})
        return
    if pid == 0:
        _child(target, spec, request, zygote_pid, name)
    try:
        root: psutil.Process | None = psutil.Process(pid)
        create_time = root.create_time() if root is not None else spawned_wall
    except psutil.Error:
        root, create_time = None, spawned_wall
    _send(answers, {"event": "started", "pid": pid, "create_time": create_time})
    timed_out, interrupted = _watch(pid, started + float(request["timeout_s"]), lines)
    tree = _Tree(pid, root=root, tag=request.get("tag"), floor=create_time - _SCAN_EPSILON_S, group_ok=True)
    leftovers: list[int] = []
    if timed_out:
        tree.terminate(_bounded.TERM_GRACE_S)
    else:
        found = tree.survivors(subtree=_is_subreaper() and _children_files_work())
        leftovers = [p for p in found if p != pid]
        if found:
            tree.terminate(_bounded.TERM_GRACE_S)
    ended = time.monotonic()
    exit_code = _reap(pid, time.monotonic() + KILL_WAIT_S)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:  # orphans of the child reparented to us
            pass
    _send(answers, {"event": "exited", "pid": pid, "exit_code": exit_code, "timed_out": timed_out,
                    "interrupted": interrupted, "duration_s": ended - started,
                    "killed_pids": tree.signalled, "leftover_pids": leftovers})


def _watch(pid: int, deadline: float, lines: _Lines) -> tuple[bool, str | None]:
    """Wait for the child to exit (it stays a zombie); handle ``term``; (timed_out, interrupted)."""
    pidfd = os.pidfd_open(pid)
    interrupted: str | None = None
    try:
        while True:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return False, interrupted
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True, interrupted
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(lines.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            for fd, _ in poller.poll(math.ceil(remaining * 1000)):
                if fd != lines.fd:
                    continue
                lines.fill()
                if lines.eof:
                    os._exit(0)  # the coordinator is gone: our child gets SIGTERM (PDEATHSIG)
                while (message := lines.pop()) is not None:
                    if message.get("op") == "term":
                        os.kill(pid, signal.SIGTERM)  # unreaped, so the pid is still ours
                        interrupted = interrupted or "SIGTERM"
    finally:
        os.close(pidfd)


def _reap(pid: int, deadline: float) -> int | None:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(_bounded.POLL_S)


def _reset_signals() -> None:
    """Every handler and the mask as a fresh interpreter has them."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
    # As a fresh interpreter starts: Ctrl-C raises KeyboardInterrupt, SIGPIPE/SIGXFSZ ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _child(target: Callable[..., Any], spec: str, request: dict[str, Any], zygote_pid: int,
           name: str | None) -> NoReturn:
    """The forked child: clean state, then ``target(args)``; never returns."""
    code: int = 1
    try:
        os.setsid()
        prctl = _prctl()
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != zygote_pid:
            os._exit(4)
        if name is not None:
            _set_name(name)
        _reset_signals()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fds = (os.open(os.devnull, os.O_RDONLY), os.open(request["stdout"], flags, 0o644),
               os.open(request["stderr"], flags, 0o644))
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None
        sys.argv = [spec, *request["args"]]
        result = target(list(request["args"]))
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        exit_now(code)


# ---------------------------------------------------------------- a zygote forked from the caller


class _Forked:
    """The caller's handle on a zygote it forked: the part of ``subprocess.Popen`` the handle uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost (as Popen reports it)
                done, status = self.pid, 0
            if done == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(f"zygote {self.pid}", timeout or 0.0)
            try:
                pidfd = os.pidfd_open(self.pid)
            except OSError:
                continue  # exited and reaped meanwhile: poll() says so
            try:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(None if remaining is None else math.ceil(remaining * 1000))
            finally:
                os.close(pidfd)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _fork_zygote(target: str, warm: str | None, env: Mapping[str, str], cwd: Path,
                 log_path: Path) -> tuple[_Forked, IO[bytes], IO[bytes]]:
    """Fork this (single-threaded) process into a zygote; (handle, request pipe, answer pipe)."""
    request_r, request_w = os.pipe()
    answer_r, answer_w = os.pipe()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    for stream in (sys.stdout, sys.stderr):  # what they hold must not be written twice
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        pid = os.fork()
    except OSError:
        for fd in (request_r, request_w, answer_r, answer_w, log):
            os.close(fd)
        raise
    if pid == 0:
        _forked_zygote(target, warm, env, cwd, (request_r, answer_w, log))
    for fd in (request_r, answer_w, log):
        os.close(fd)
    with _ROOTS_LOCK:
        _LIVE_ROOTS.add(pid)
    return _Forked(pid), os.fdopen(request_w, "wb", buffering=0), os.fdopen(answer_r, "rb", buffering=0)


def _forked_zygote(target: str, warm: str | None, env: Mapping[str, str], cwd: Path,
                   stdio: tuple[int, int, int]) -> NoReturn:
    """The forked zygote: the state of a fresh ``python -c``, then ``serve``; never returns."""
    code = 3
    try:
        os.setsid()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]  # none of them on 0-2 now
        for number, fd in enumerate(high):
            os.dup2(fd, number)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the caller's files (its job lock, its pipes)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _reset_signals()
        atexit._clear()  # the caller's, which a child would run at its exit
        _LIVE_ROOTS.clear()  # the caller's children are not ours
        sys.settrace(None)
        sys.setprofile(None)
        if faulthandler.is_enabled():
            faulthandler.disable()
        faulthandler.cancel_dump_traceback_later()
        sys.excepthook, sys.unraisablehook = sys.__excepthook__, sys.__unraisablehook__
        threading.excepthook = threading.__excepthook__
        encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
        # The caller's streams may be captures writing to fds closed above: new ones on 0-2.
        sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding=encoding, errors="backslashreplace",  # noqa: SIM115
                          closefd=False)
        code = serve([target, warm or ""])
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


# ---------------------------------------------------------------- the coordinator's handle


class Zygote:
    """The coordinator's handle on one zygote (``start``, then ``run`` one request at a time)."""

    def __init__(self, proc: subprocess.Popen[bytes] | _Forked, log_path: Path, requests: IO[bytes],
                 answers: IO[bytes]) -> None:
        self.proc = proc
        self.log_path = log_path
        self.forked = isinstance(proc, _Forked)
        """True: a fork of the caller; False: a fresh interpreter."""
        self._requests = requests
        self._answer_file = answers
        self._answers = _Lines(answers.fileno())
        self._write = threading.Lock()
        self._child: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, target: str, *, env: Mapping[str, str], cwd: Path, log_path: Path,
              warm: str | None = None, ready_timeout_s: float = READY_TIMEOUT_S, fork: bool = False) -> Zygote:
        """Start a zygote for ``target`` (``module:function``) and wait until it is ready.

        With ``fork`` and this process single-threaded, the zygote is a fork of this process
        (what this process imported is not imported again); otherwise a fresh interpreter.

        Raises:
            SpawnError: It could not be started or did not become ready.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        zygote: Zygote
        if fork and threading.active_count() == 1:
            try:
                forked, requests, answers = _fork_zygote(target, warm, env, cwd, log_path)
            except OSError as exc:
                raise SpawnError(exc.errno, f"cannot fork a zygote: {exc.strerror or exc}") from exc
            zygote = cls(forked, log_path, requests, answers)
        else:
            with open(log_path, "ab") as log, _ROOTS_LOCK:
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-c", _SERVE, target, warm or ""],
                        cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                        bufsize=0, close_fds=True, start_new_session=True,
                    )
                except OSError as exc:
                    raise SpawnError(exc.errno, f"cannot start a zygote: {exc.strerror or exc}") from exc
                _LIVE_ROOTS.add(proc.pid)
            assert proc.stdin is not None and proc.stdout is not None
            zygote = cls(proc, log_path, proc.stdin, proc.stdout)
        try:
            ready = zygote._answers.next(time.monotonic() + ready_timeout_s)
        except TimeoutError:
            ready = None
        if ready is None or ready.get("event") != "ready":
            zygote.close(kill=True)
            raise SpawnError(0, f"the zygote for {target} did not start: {zygote.log_tail()}")
        return zygote

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace").strip() or "(no output)"
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc.poll() is None and not self._answers.eof

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout_s: float,
        stdout_path: Path,
        stderr_path: Path,
        tag: str | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> ProcessResult:
        """Run ``target(args)`` in a fresh child of the zygote and wait for it.

        Returns:
            As ``run_bounded``: ``interrupted`` is set when ``terminate`` was called meanwhile.

        Raises:
            ZygoteLost: The zygote died or stopped answering (the child is gone when this raises).
            SpawnError: The zygote could not fork.
        """
        env_t = dict(env)
        if tag is not None:
            env_t[TAG_ENV] = tag
        for path in (stdout_path, stderr_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        request = {"op": "run", "args": list(args), "cwd": str(cwd), "env": env_t, "timeout_s": timeout_s,
                   "stdout": str(stdout_path), "stderr": str(stderr_path), "tag": tag}
        deadline = time.monotonic() + timeout_s + _bounded.TERM_GRACE_S + KILL_WAIT_S + ANSWER_MARGIN_S
        started: dict[str, Any] | None = None
        if self._requests.closed:
            raise ZygoteLost(f"the zygote (pid {self.pid}) was closed", None)
        try:
            with self._write:
                _send(self._requests.fileno(), request)
            started = self._answers.next(deadline)
            if started is not None and started.get("event") == "error":
                raise SpawnError(0, f"the zygote could not start the child: {started.get('message')}")
            if started is None or started.get("event") != "started":
                raise ZygoteLost(self._lost_reason(), None)
            self._child = int(started["pid"])
            if on_start is not None:
                on_start(self._child)
            exited = self._answers.next(deadline)
            if exited is None or exited.get("event") != "exited":
                raise ZygoteLost(self._lost_reason(), self._child)
        except (KeyboardInterrupt, HarnessInterrupted):
            self._interrupted(started, tag)
            raise
        except (OSError, TimeoutError, ZygoteLost) as exc:
            stuck = isinstance(exc, TimeoutError)
            message = str(exc) if isinstance(exc, ZygoteLost) else self._lost_reason(stuck=stuck)
            self.close(kill=True)
            if started is not None and started.get("event") == "started":
                _finish_orphan(int(started["pid"]), float(started["create_time"]), tag)
            raise ZygoteLost(message, self._child) from None
        finally:
            with self._write:
                self._child = None
        none = CapturedStream(path=stdout_path, bytes_total=0, bytes_kept=0, truncated=False)
        return ProcessResult(
            argv=tuple(args),
            pid=int(exited["pid"]),
            exit_code=exited["exit_code"],
            timed_out=bool(exited["timed_out"]),
            interrupted=exited["interrupted"],
            duration_s=float(exited["duration_s"]),
            stdout=_captured(stdout_path, none),
            stderr=_captured(stderr_path, none),
            killed_pids=tuple(exited["killed_pids"]),
            leftover_pids=tuple(exited["leftover_pids"]),
        )

    def _interrupted(self, started: dict[str, Any] | None, tag: str | None) -> None:
        """The caller was interrupted: SIGTERM the child and let it finish (bounded), else kill it.

        The ``term`` goes down the same pipe after the request, so it reaches the child even
        when the zygote has not forked it yet.
        """
        with self._write, contextlib.suppress(OSError, ValueError):
            _send(self._requests.fileno(), {"op": "term"})
        limit = time.monotonic() + LOST_CHILD_WAIT_S
        with contextlib.suppress(TimeoutError, OSError, ValueError):
            while (message := self._answers.next(limit)) is not None:
                if message.get("event") == "started":
                    started = message
                elif message.get("event") in ("exited", "error"):
                    return
        self.close(kill=True)
        if started is not None and started.get("event") == "started":
            _finish_orphan(int(started["pid"]), float(started["create_time"]), tag)

    def _lost_reason(self, *, stuck: bool = False) -> str:
        if stuck:
            return f"the zygote (pid {self.pid}) stopped answering; killed"
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(KILL_WAIT_S)
        return f"the zygote (pid {self.pid}) died (exit status {self.proc.returncode}): {self.log_tail(500)}"

    def terminate(self) -> bool:
        """Ask the zygote to SIGTERM the running child (from any thread); False if none runs."""
        with self._write:
            if self._child is None:
                return False
            with contextlib.suppress(OSError, ValueError):
                _send(self._requests.fileno(), {"op": "term"})
        return True

    def close(self, *, kill: bool = False) -> None:
        """End the zygote (EOF on its pipe; SIGKILL with ``kill`` or when it lingers) and reap it."""
        with contextlib.suppress(OSError):
            self._requests.close()
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
        try:
            self.proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_WAIT_S)
        if self.proc.returncode is not None:
            with _ROOTS_LOCK:
                _LIVE_ROOTS.discard(self.proc.pid)
        with contextlib.suppress(OSError):
            self._answer_file.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _captured(path: Path, none: CapturedStream) -> CapturedStream:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return CapturedStream(path=path, bytes_total=0, bytes_kept=0, truncated=False, error=str(exc))
    return CapturedStream(path=path, bytes_total=size, bytes_kept=size, truncated=False)


def _finish_orphan(pid: int, create_time: float, tag: str | None) -> None:
    """The zygote died under its child: let the child finish on its SIGTERM, then kill what is left."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    if pidfd is not None:
        try:
            if psutil.Process(pid).create_time() - create_time <= _bounded.CREATE_TIME_TOLERANCE_S:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(math.ceil(LOST_CHILD_WAIT_S * 1000))
        except psutil.Error:
            pass
        finally:
            os.close(pidfd)
    kill_process_tree(pid, tag=tag, create_time=create_time)
