"""One bounded child process: new session, capped output, deadline, and a tree kill.

``run_bounded`` is the only place the harness starts a provider (or a grading command).
It fails closed: whatever the child started is found (process group, session,
descendants, the ``CTO_HARNESS_RUN_TAG`` environment tag) and killed, on timeout, on
interrupt, and after a normal exit. See ``docs/process-control.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import psutil

from cto_harness.core import CapturedStream, ProcessResult

__all__ = [
    "CHUNK_BYTES",
    "CREATE_TIME_TOLERANCE_S",
    "DRAIN_TIMEOUT_S",
    "KILL_WAIT_S",
    "POLL_S",
    "RESCAN_S",
    "TAG_ENV",
    "TERM_GRACE_S",
    "CapturedStream",
    "HarnessInterrupted",
    "Held",
    "ProcessResult",
    "SpawnError",
    "enable_subreaper",
    "hold_bounded",
    "install_signal_handlers",
    "kill_process_tree",
    "process_alive_with_tag",
    "run_bounded",
]

TERM_GRACE_S = 2.0
"""Seconds between SIGTERM and SIGKILL, measured against one monotonic deadline."""
KILL_WAIT_S = 2.0
"""Bounded wait for SIGKILLed processes to disappear (and for the child to be reaped)."""
DRAIN_TIMEOUT_S = 5.0
"""After the child is gone, how long the readers may take to reach EOF before we give up."""
POLL_S = 0.02
"""Step of every wait loop; a signal handler's exception lands within one step."""
RESCAN_S = 0.25
"""While a pipe is still held open after the child is gone, rescan the tree this often."""
SETTLE_S = 0.5
"""After a clean exit, how long an already-dying descendant (a sandbox's pid 1) may take to go."""
CHUNK_BYTES = 64 * 1024
TAG_ENV = "CTO_HARNESS_RUN_TAG"
CREATE_TIME_TOLERANCE_S = 1.0
"""Slack when matching a create_time recorded by another process (boot-time rounding)."""
_SCAN_EPSILON_S = 0.05
_KILL_ROUNDS = 3
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_LIVE_ROOTS: set[int] = set()
"""Children spawned by ``run_bounded`` not yet waited for; every other child of ours is adopted."""
_ROOTS_LOCK = threading.Lock()


class SpawnError(OSError):
    """The child could not be started: missing, not executable, bad format, bad cwd."""


class HarnessInterrupted(BaseException):
    """Raised in the main thread by the handlers of ``install_signal_handlers``."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


class _InterruptState:
    """Main-thread-only state: while ``depth > 0`` a signal is recorded, not raised."""

    depth = 0
    pending: str | None = None


_STATE = _InterruptState()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _STATE.depth > 0:
        if _STATE.pending is None:
            _STATE.pending = name
        return
    raise HarnessInterrupted(name)


class _Shield:
    """Defer HarnessInterrupted in the main thread (so a kill is never cut short)."""

    def __init__(self) -> None:
        self.signame: str | None = None
        self._active = False

    def __enter__(self) -> _Shield:
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            _STATE.depth += 1
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._active:
            _STATE.depth -= 1
            if _STATE.depth == 0 and _STATE.pending is not None:
                self.signame, _STATE.pending = _STATE.pending, None
                if exc is not None and not isinstance(exc, HarnessInterrupted):
                    raise HarnessInterrupted(self.signame) from exc


class _Interruptible:
    """Inside a shield, let HarnessInterrupted through again (raising any deferred one)."""

    def __init__(self) -> None:
        self._saved: int | None = None

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._saved, _STATE.depth = _STATE.depth, 0
        if _STATE.pending is not None:
            name, _STATE.pending = _STATE.pending, None
            raise HarnessInterrupted(name)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._saved is not None:
            _STATE.depth = self._saved


def install_signal_handlers() -> Callable[[], None]:
    """Make SIGTERM/SIGINT raise ``HarnessInterrupted`` in the main thread.

    Returns:
        A function that restores the previous handlers.
    """
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, _on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore


@functools.cache
def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def enable_subreaper() -> bool:
    """Make this process the child subreaper (Linux), so orphaned descendants reparent to us.

    Returns:
        True if the kernel accepted it, False where unavailable.
    """
    prctl = _prctl()
    return prctl is not None and int(prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def _is_subreaper() -> bool:
    """Whether orphans of our descendants reparent to us (asked of the kernel, not cached)."""
    prctl = _prctl()
    if prctl is None:
        return False
    flag = ctypes.c_int(0)
    if int(prctl(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), 0, 0, 0)) != 0:
        return False
    return flag.value != 0


@functools.cache
def _children_files_work() -> bool:
    """``/proc/<pid>/task/<tid>/children`` exists (CONFIG_PROC_CHILDREN)."""
    return os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from every thread's ``children`` file."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _descendants_of_self(skip: Collection[int] = ()) -> list[int]:
    """Every process below this one, walked through ``children`` files (no process-table scan).

    While we are the child subreaper, this is every process a child of ours left behind:
    an orphan reparents to us (or to a live subreaper below us, itself a descendant).
    The subtrees of the pids in ``skip`` (other live runs' roots) are not entered.
    """
    queue = _children(os.getpid())
    seen: set[int] = set()
    while queue:
        pid = queue.pop()
        if pid in seen or pid in skip:
            continue
        seen.add(pid)
        queue.extend(_children(pid))
    return sorted(seen)


def _has_tag(proc: psutil.Process, tag: str) -> bool:
    try:
        return proc.environ().get(TAG_ENV) == tag
    except (psutil.Error, OSError):
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_alive_with_tag(tag: str) -> list[int]:
    """Pids of live (non-zombie) processes whose environment has ``CTO_HARNESS_RUN_TAG=tag``."""
    me = os.getpid()
    return sorted(
        proc.pid
        for proc in psutil.process_iter()
        if proc.pid != me and _alive(proc) and _has_tag(proc, tag)
    )


def _create_time(proc: psutil.Process | None) -> float | None:
    if proc is None:
        return None
    try:
        return proc.create_time()
    except psutil.Error:
        return None


def _wait_for_an_exit(pids: Sequence[int], timeout_s: float) -> None:
    """Sleep up to ``timeout_s``, waking as soon as one of ``pids`` exits (pidfds, Linux >= 5.3).

    A signalled process usually dies within a millisecond (a sandbox's pid 1 that outlived
    its bwrap is killed after every sandboxed run): a fixed sleep would cost a whole slice.
    """
    fds = [fd for fd in map(_pidfd, pids) if fd is not None]
    try:
        if not fds:
            time.sleep(timeout_s)
            return
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(math.ceil(timeout_s * 1000))
    finally:
        for fd in fds:
            os.close(fd)


def _settle(procs: Mapping[int, psutil.Process], timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for every process of ``procs`` to exit (no signal sent)."""
    deadline = time.monotonic() + timeout_s
    while alive := [proc.pid for proc in procs.values() if _alive(proc)]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        _wait_for_an_exit(alive, remaining)


def _parent_pid(pid: int) -> int | None:
    """``pid``'s parent from ``/proc/<pid>/stat`` (the field after the parenthesised name)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _protected_pids() -> set[int]:
    """Our pid and our ancestors' (read from /proc: this runs for every bounded child)."""
    found = {0, 1, os.getpid()}
    pid = _parent_pid(os.getpid())
    while pid is not None and pid not in found:
        found.add(pid)
        pid = _parent_pid(pid)
    return found


_INFO_ATTRS = ("ppid", "status", "create_time")


def _all_infos() -> Iterator[tuple[psutil.Process, dict[str, Any]]]:
    for proc in psutil.process_iter(list(_INFO_ATTRS)):
        yield proc, proc.info


def _subtree_infos(skip: Collection[int] = ()) -> Iterator[tuple[psutil.Process, dict[str, Any]]]:
    for pid in _descendants_of_self(skip):
        try:
            proc = psutil.Process(pid)
            yield proc, proc.as_dict(list(_INFO_ATTRS))
        except psutil.Error:
            continue


class _Tree:
    """The processes of one run, found by every route we have, and how to kill them."""

    def __init__(
        self,
        root_pid: int,
        *,
        root: psutil.Process | None,
        tag: str | None,
        floor: float | None,
        group_ok: bool,
    ) -> None:
        self.root_pid = root_pid
        self.root = root
        self.tag = tag
        self.floor = floor
        self.group_ok = group_ok and root_pid not in (os.getpgrp(), os.getsid(0))
        self._protected: set[int] | None = None
        self.root_ctime = _create_time(root)
        self.known: dict[int, tuple[psutil.Process, float]] = {}
        """Every member ever found, with its create_time (it may have left the tree since)."""
        self.signalled: list[int] = []
        self._reaped: set[int] = set()

    @property
    def protected(self) -> set[int]:
        """Our own pid and our ancestors: never signalled (computed on first use)."""
        if self._protected is None:
            self._protected = _protected_pids()
        return self._protected

    def _matches(self, proc: psutil.Process) -> bool:
        pid = proc.pid
        try:
            if self.group_ok and self.root_pid in (os.getpgid(pid), os.getsid(pid)):
                return True
        except OSError:
            return False
        return self.tag is not None and _has_tag(proc, self.tag)

    def snapshot(self, *, subtree: bool = False) -> dict[int, psutil.Process]:
        """Every live member of the tree right now (the root included while it is alive).

        With ``subtree`` only our own descendants are considered (cheap, no scan of the
        process table): complete while we are the child subreaper, except for a tagged
        process started on the tree's behalf by something outside it.
        """
        candidates: dict[int, tuple[psutil.Process, float, int]] = {}
        with _ROOTS_LOCK:
            # Another live run's subtree (a held grader, a concurrent child) is not ours to
            # inspect: our leftovers reparent to us, never below another run's root.
            others = _LIVE_ROOTS - {self.root_pid}
        for proc, info in _subtree_infos(others) if subtree else _all_infos():
            ctime, ppid = info["create_time"], info["ppid"]
            if info["status"] == psutil.STATUS_ZOMBIE or proc.pid in self.protected:
                continue
            if ctime is None or ppid is None or (self.floor is not None and ctime < self.floor):
                continue
            candidates[proc.pid] = (proc, ctime, ppid)
        found: dict[int, psutil.Process] = {}
        me = os.getpid()
        with _ROOTS_LOCK:
            roots = set(_LIVE_ROOTS)
        for pid, (proc, ctime, ppid) in candidates.items():
            known = pid in self.known and self.known[pid][1] == ctime
            is_root = self.root is not None and pid == self.root_pid and self.root_ctime == ctime
            # An orphan we adopted as subreaper since the run started (a setsid + env -i
            # daemon has neither our session nor our tag, but it cannot leave our subtree).
            adopted = ppid == me and pid not in roots and self.floor is not None
            if known or is_root or adopted or self._matches(proc):
                found[pid] = proc
        children: dict[int, list[int]] = {}
        for pid, (_, _, ppid) in candidates.items():
            children.setdefault(ppid, []).append(pid)
        queue = [*found, *([self.root_pid] if self.root is not None else [])]
        while queue:
            for child in children.get(queue.pop(), ()):
                if child not in found:
                    found[child] = candidates[child][0]
                    queue.append(child)
        self.known.update((pid, (proc, candidates[pid][1])) for pid, proc in found.items())
        return found

    def _signal(
        self, sig: signal.Signals, procs: Mapping[int, psutil.Process], *, record: bool = True
    ) -> None:
        if self.group_ok:
            with contextlib.suppress(OSError):
                os.killpg(self.root_pid, sig)
        for pid, proc in procs.items():
            try:
                proc.send_signal(sig)
            except psutil.Error:
                continue
            if record and pid not in self.signalled:
                self.signalled.append(pid)

    def _reap(self) -> None:
        """Reap the zombies that are ours (adopted as subreaper), never the root."""
        me = os.getpid()
        for pid, (proc, _) in self.known.items():
            if pid == self.root_pid or pid in self._reaped:
                continue
            try:
                if not proc.is_running() or proc.ppid() != me:
                    continue
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self._reaped.add(pid)
            except (psutil.Error, ChildProcessError):
                continue

    def _wait_dead(self, procs: Mapping[int, psutil.Process], deadline: float) -> None:
        while True:
            self._reap()
            alive = [proc for proc in procs.values() if _alive(proc)]
            if not alive:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            _wait_for_an_exit([proc.pid for proc in alive], min(POLL_S, remaining))

    def survivors(self, *, subtree: bool = False) -> dict[int, psutil.Process]:
        """What of the tree is still alive after its root exited cleanly: the leftovers.

        A sandbox's pid 1 outlives its bwrap by a moment (--die-with-parent is killing it):
        among our own descendants, what is already dying gets ``SETTLE_S`` to go (woken by
        its pidfd; only a real leftover pays it) before the full scans of ``terminate``.
        Only what is still alive, or new, is a leftover.
        """
        found = self.snapshot(subtree=subtree)
        if found and subtree:
            _settle(found, SETTLE_S)
            found = self.snapshot(subtree=True)
        return found

    def terminate(self, grace_s: float) -> None:
        """SIGTERM everything, wait ``grace_s``, then SIGKILL whatever is (newly) alive."""
        procs = self.snapshot()
        if not procs:
            return
        self._signal(signal.SIGTERM, procs)
        self._signal(signal.SIGCONT, procs, record=False)
        self._wait_dead(procs, time.monotonic() + grace_s)
        kill_deadline = time.monotonic() + KILL_WAIT_S
        for _ in range(_KILL_ROUNDS):
            procs = self.snapshot()
            if not procs:
                break
            self._signal(signal.SIGKILL, procs)
            self._wait_dead(procs, kill_deadline)
        self._reap()


def kill_process_tree(
    root_pid: int,
    *,
    tag: str | None = None,
    grace_s: float | None = None,
    create_time: float | None = None,
) -> tuple[int, ...]:
    """Kill a process, its group, its session, its descendants and every process tagged ``tag``.

    Reusable by recovery code for an orphaned provider. A reused pid is left alone: with
    ``create_time`` the root (and its group and session) is trusted only if its
    create_time matches; without it but with ``tag``, only if its environment carries the
    tag. Otherwise only the tagged processes are killed. With neither, the pid is trusted.

    Args:
        root_pid: The provider's pid (also its process-group and session id).
        tag: The run's ``CTO_HARNESS_RUN_TAG`` value, if it had one.
        grace_s: Seconds between SIGTERM and SIGKILL (default ``TERM_GRACE_S``).
        create_time: The root's psutil create_time as recorded when it started.

    Returns:
        Every pid that was signalled.
    """
    root: psutil.Process | None
    try:
        root = psutil.Process(root_pid)
        actual: float | None = root.create_time()
    except psutil.Error:
        root, actual = None, None
    floor: float | None = None
    if create_time is not None:
        identical = actual is not None and abs(actual - create_time) <= CREATE_TIME_TOLERANCE_S
        group_ok = actual is None or identical
        floor = create_time - CREATE_TIME_TOLERANCE_S
    elif tag is not None:
        identical = root is not None and _has_tag(root, tag)
        group_ok = identical
        if identical and actual is not None:
            floor = actual - _SCAN_EPSILON_S
    else:
        identical = group_ok = True
        if actual is not None:
            floor = actual - _SCAN_EPSILON_S
    if not identical:
        root = None
    tree = _Tree(root_pid, root=root, tag=tag, floor=floor, group_ok=group_ok)
    tree.terminate(TERM_GRACE_S if grace_s is None else grace_s)
    return tuple(tree.signalled)


class _Stream:
    """One pipe copied to a file in chunks, keeping at most ``cap`` bytes, draining the rest."""

    def __init__(self, pipe: IO[bytes], sink: IO[bytes], cap: int) -> None:
        self.pipe, self.sink, self.cap = pipe, sink, cap
        self.fd = pipe.fileno()
        self.total = 0
        self.kept = 0
        self.eof = False
        self.closed = False
        self.error: str | None = None

    def read_chunk(self) -> None:
        """Read once (the pipe is readable: this does not block); EOF or an error closes the sink."""
        try:
            chunk = os.read(self.fd, CHUNK_BYTES)
        except OSError as exc:
            self.error = f"reading pipe: {exc}"
            self.close()
            return
        if not chunk:
            self.eof = True
            self.close()
            return
        self.total += len(chunk)
        room = self.cap - self.kept
        if room > 0 and self.error is None:
            part = chunk if len(chunk) <= room else chunk[:room]
            try:
                self.sink.write(part)
                self.sink.flush()
            except OSError as exc:
                self.error = f"writing {getattr(self.sink, 'name', '?')}: {exc}"
            else:
                self.kept += len(part)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sink.close()
        except OSError as exc:
            self.error = self.error or f"closing output file: {exc}"

    def captured(self, path: Path, *, stuck: bool) -> CapturedStream:
        return CapturedStream(
            path=path,
            bytes_total=self.total,
            bytes_kept=self.kept,
            truncated=self.total > self.kept,
            eof=self.eof,
            error=self.error or ("reader thread did not stop" if stuck else None),
        )


class _Pump:
    """Copies the child's stdout and stderr (``_Stream``) while the harness waits.

    On the normal path the waiting thread itself reads (no thread to start per process).
    Before anything that may block for long (terminating a tree, with its grace period)
    the reading moves to a background thread, so a child that writes while it shuts down
    never stalls on a full pipe.
    """

    def __init__(self, streams: tuple[_Stream, _Stream]) -> None:
        self.streams = streams
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()

    @property
    def done(self) -> bool:
        return all(stream.closed for stream in self.streams)

    def pump(self, timeout_s: float, wake_fd: int | None = None, *, interruptible: bool = False) -> None:
        """Read what is ready, waiting up to ``timeout_s`` for output, EOF or ``wake_fd``.

        With ``interruptible`` only the wait itself lets ``HarnessInterrupted`` through,
        never a read half copied.
        """
        poller = select.poll()
        open_streams = {stream.fd: stream for stream in self.streams if not stream.closed}
        for fd in open_streams:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        if wake_fd is not None:
            poller.register(wake_fd, select.POLLIN)
        timeout_ms = None if math.isinf(timeout_s) else math.ceil(timeout_s * 1000)
        if interruptible:
            with _Interruptible():
                ready = poller.poll(timeout_ms)
        else:
            ready = poller.poll(timeout_ms)
        for fd, _ in ready:
            stream = open_streams.get(fd)
            if stream is not None:
                stream.read_chunk()

    def background(self) -> None:
        """Hand the reading to a thread (idempotent); the caller no longer calls ``pump``."""
        if self.thread is None and not self.done:
            self.thread = threading.Thread(target=self._run, name="cto-harness-output-reader", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        # SIGTERM/SIGINT go to the main thread, whose wait they must interrupt at once.
        with contextlib.suppress(ValueError, OSError):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        while not self.stop.is_set() and not self.done:
            self.pump(POLL_S)

    def wait(self, timeout_s: float) -> None:
        """Let the output flow for up to ``timeout_s`` (returns early once both pipes reached EOF)."""
        if self.thread is not None:
            self.thread.join(timeout_s)
        else:
            self.pump(timeout_s)

    def finish(self) -> bool:
        """Stop reading and close what is still open; True when the reader thread is stuck."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(1.0)
            if self.thread.is_alive():
                return True
        for stream in self.streams:
            stream.close()
        return False


def _reap_adopted() -> None:
    """Reap zombies we adopted as subreaper that no ``run_bounded`` waits for.

    bubblewrap's outer process exits without waiting for its pid-1 process, which then
    reparents to us: without this every sandboxed run (and the probe) left a zombie.
    """
    with _ROOTS_LOCK:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in _LIVE_ROOTS:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, os.WNOHANG)


def _spawn(argv: Sequence[str], cwd: Path, env: dict[str, str], *, stdin: int = subprocess.DEVNULL
           ) -> subprocess.Popen[bytes]:
    with _ROOTS_LOCK:
        proc = _popen(argv, cwd, env, stdin=stdin)
        _LIVE_ROOTS.add(proc.pid)
    return proc


def _popen(argv: Sequence[str], cwd: Path, env: dict[str, str], *, stdin: int = subprocess.DEVNULL
           ) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename not in (None, argv[0]) else ""
        reason = exc.strerror or str(exc)
        raise SpawnError(exc.errno, f"cannot start {argv[0]!r}: {reason}{where}") from exc
    except ValueError as exc:
        raise SpawnError(errno.EINVAL, f"cannot start {argv[0]!r}: {exc}") from exc


def _exited(pid: int) -> bool:
    """True once the child has exited; it stays a zombie (WNOWAIT) so its pid is not reused."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux >= 5.3), or None where unavailable."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


class _Run:
    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        pump: _Pump,
        tag: str | None,
        started: float,
        spawned_wall: float,
    ) -> None:
        self.proc = proc
        self.pump = pump
        self.stuck = False
        self.started = started
        root: psutil.Process | None
        try:
            root = psutil.Process(proc.pid)
            floor = root.create_time() - _SCAN_EPSILON_S
        except psutil.Error:
            root, floor = None, spawned_wall - CREATE_TIME_TOLERANCE_S
        self.tree = _Tree(proc.pid, root=root, tag=tag, floor=floor, group_ok=True)
        self.leftovers: list[int] = []
        self.ended: float | None = None

    def wait(self, deadline: float) -> tuple[bool, str | None]:
        """Wait for exit or deadline; returns (timed_out, interrupted signal name).

        Blocks on a pidfd (readable once the child exits) and the output pipes, copying
        output as it comes, so an exit is seen at once. In the main thread the wait is cut
        into ``POLL_S`` slices: a signal delivered to another thread only lands here at
        the next slice.
        """
        pidfd = _pidfd(self.proc.pid)
        slice_s = POLL_S if threading.current_thread() is threading.main_thread() else math.inf
        try:
            with _Interruptible():
                while not _exited(self.proc.pid):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return True, None
                    step = min(slice_s, remaining)
                    if pidfd is None:
                        step = min(POLL_S, step)
                    self.pump.pump(step, pidfd, interruptible=True)
        except HarnessInterrupted as exc:
            return False, exc.signame
        finally:
            if pidfd is not None:
                os.close(pidfd)
        self.ended = time.monotonic()
        return False, None

    def _kill_leftovers(self, *, subtree: bool = False) -> None:
        found = self.tree.survivors(subtree=subtree)
        if found:
            self.leftovers.extend(pid for pid in found if pid not in self.leftovers)
            self._terminate()

    def _terminate(self) -> None:
        self.pump.background()
        self.tree.terminate(TERM_GRACE_S)

    def _drain(self, *, rescan: bool) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        next_scan = time.monotonic() + RESCAN_S
        while not self.pump.done:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_scan:
                if rescan:
                    self._kill_leftovers()
                else:
                    self._terminate()
                next_scan = time.monotonic() + RESCAN_S
            self.pump.wait(POLL_S)
        self.stuck = self.pump.finish()
        if not self.stuck:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def _reap_root(self) -> int | None:
        try:
            code = self.proc.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            return None
        with _ROOTS_LOCK:
            _LIVE_ROOTS.discard(self.proc.pid)
        _reap_adopted()
        return code

    def abort(self) -> None:
        """Kill everything and release the pipes (used when something raised)."""
        self._terminate()
        self._drain(rescan=False)
        self._reap_root()

    def finish(
        self,
        argv: tuple[str, ...],
        paths: tuple[Path, Path],
        timed_out: bool,
        interrupted: str | None,
    ) -> ProcessResult:
        if timed_out or interrupted is not None:
            self._terminate()
            self.ended = time.monotonic()
            self._drain(rescan=False)
        else:
            # As the subreaper we find what the child left behind among our own descendants
            # (no scan of the process table); a pipe still held open rescans everything.
            self._kill_leftovers(subtree=_is_subreaper() and _children_files_work())
            self._drain(rescan=True)
        exit_code = self._reap_root()
        ended = self.ended if self.ended is not None else time.monotonic()
        return ProcessResult(
            argv=argv,
            pid=self.proc.pid,
            exit_code=exit_code,
            timed_out=timed_out,
            interrupted=interrupted,
            duration_s=ended - self.started,
            stdout=self.pump.streams[0].captured(paths[0], stuck=self.stuck),
            stderr=self.pump.streams[1].captured(paths[1], stuck=self.stuck),
            killed_pids=tuple(self.tree.signalled),
            leftover_pids=tuple(self.leftovers),
        )


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdout_path: Path,
    stderr_path: Path,
    max_output_bytes: int = 10 * 1024 * 1024,
    tag: str | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ProcessResult:
    """Run ``argv`` in a new session with a deadline and capped output; leave nothing behind.

    The child gets ``env`` exactly (plus ``CTO_HARNESS_RUN_TAG=tag`` if given) and
    stdin from /dev/null. On timeout or ``HarnessInterrupted`` the whole tree is killed
    (TERM, ``TERM_GRACE_S``, KILL); after a normal exit, processes the child left
    behind are killed too and listed in ``leftover_pids``.

    Args:
        argv: Program and arguments; never run through a shell.
        cwd: Working directory of the child.
        env: The child's complete environment.
        timeout_s: Wall-clock limit, measured on the monotonic clock.
        stdout_path: File receiving stdout (truncated to ``max_output_bytes``).
        stderr_path: File receiving stderr (truncated to ``max_output_bytes``).
        max_output_bytes: Bytes kept per stream; the rest is read and discarded.
        tag: Run tag that lets us find descendants that left the session.
        on_start: Called with the child's pid right after it was spawned.

    Returns:
        The result; ``interrupted`` is set (not raised) when the harness was signalled.

    Raises:
        SpawnError: The child could not be started.
        ValueError: Invalid arguments.
    """
    argv_t = _checked_argv(argv)
    paths = _checked_outputs(timeout_s, max_output_bytes, stdout_path, stderr_path)
    with _Shield() as shield:
        with _opened(paths) as sinks:
            spawned_wall = time.time()
            started = time.monotonic()
            proc = _spawn(argv_t, cwd, _tagged(env, tag))
        result = _supervise(proc, sinks, argv_t, paths, max_output_bytes=max_output_bytes, tag=tag,
                            started=started, spawned_wall=spawned_wall, timeout_s=timeout_s, on_start=on_start)
    if shield.signame is not None and result.interrupted is None:
        result = replace(result, interrupted=shield.signame)
    return result


class Held:
    """A bounded child started ahead of need, waiting for one line on its stdin.

    What the child does before that line (start an interpreter, import its libraries)
    overlaps the harness's own work; its deadline and ``duration_s`` count from
    ``release``. Unreleased, ``discard`` kills its whole tree (closing stdin first, so a
    child that waits for the line ends by itself). See ``hold_bounded``.
    """

    def __init__(self, proc: subprocess.Popen[bytes], argv: tuple[str, ...], tag: str | None,
                 spawned_wall: float) -> None:
        self._proc = proc
        self.argv = argv
        self._tag = tag
        self._spawned_wall = spawned_wall
        self._done = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        """Still waiting (not exited, not released, not discarded)."""
        return not self._done and not _exited(self._proc.pid)

    def release(self, line: bytes, *, timeout_s: float, stdout_path: Path, stderr_path: Path,
                max_output_bytes: int = 10 * 1024 * 1024) -> ProcessResult:
        """Send ``line`` (then EOF) and supervise the child as ``run_bounded`` does.

        Raises:
            ValueError: invalid arguments, or the child was already released or discarded.
        """
        if self._done:
            raise ValueError("this held process was already released or discarded")
        paths = _checked_outputs(timeout_s, max_output_bytes, stdout_path, stderr_path)
        with _Shield() as shield:
            self._done = True
            with _opened(paths) as sinks:
                started = time.monotonic()
                self._send(line)
            result = _supervise(self._proc, sinks, self.argv, paths, max_output_bytes=max_output_bytes,
                                tag=self._tag, started=started, spawned_wall=self._spawned_wall,
                                timeout_s=timeout_s, on_start=None)
        if shield.signame is not None and result.interrupted is None:
            result = replace(result, interrupted=shield.signame)
        return result

    def discard(self) -> None:
        """Kill the child and everything it started; idempotent.

        Unreleased, it has only prepared: no grace period. As the child subreaper, the
        tree is found among our own descendants and SIGKILLed at once (a few ms, this runs
        on a run's critical path); else, or if anything is still alive, the full
        ``terminate`` with its process-table scans.
        """
        if self._done:
            return
        self._done = True
        with _Shield():
            self._send(b"")
            root = _process(self._proc.pid)
            floor = _create_time(root)
            tree = _Tree(self._proc.pid, root=root, tag=self._tag,
                         floor=None if floor is None else floor - _SCAN_EPSILON_S, group_ok=True)
            if _is_subreaper() and _children_files_work():
                found = tree.snapshot(subtree=True)
                tree._signal(signal.SIGKILL, found)
                tree._wait_dead(found, time.monotonic() + KILL_WAIT_S)
            if tree.snapshot(subtree=_is_subreaper() and _children_files_work()):
                tree.terminate(TERM_GRACE_S)
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=KILL_WAIT_S)
                with _ROOTS_LOCK:
                    _LIVE_ROOTS.discard(self._proc.pid)
            _reap_adopted()

    def _send(self, line: bytes) -> None:
        stdin = self._proc.stdin
        if stdin is None:
            return
        with contextlib.suppress(OSError):  # a child that died already: the wait sees its exit
            if line:
                stdin.write(line)
        with contextlib.suppress(OSError):
            stdin.close()


def hold_bounded(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], tag: str | None = None) -> Held:
    """Start ``argv`` now (new session, stdin a pipe) and supervise it later (``Held.release``).

    Raises:
        SpawnError: The child could not be started.
        ValueError: Invalid arguments.
    """
    argv_t = _checked_argv(argv)
    with _Shield():
        spawned_wall = time.time()
        proc = _spawn(argv_t, cwd, _tagged(env, tag), stdin=subprocess.PIPE)
    return Held(proc, argv_t, tag, spawned_wall)


def _checked_argv(argv: Sequence[str]) -> tuple[str, ...]:
    argv_t = tuple(argv)
    if not argv_t:
        raise ValueError("argv is empty")
    return argv_t


def _checked_outputs(timeout_s: float, max_output_bytes: int, stdout_path: Path, stderr_path: Path
                     ) -> tuple[Path, Path]:
    if timeout_s <= 0 or max_output_bytes < 0:
        raise ValueError("timeout_s must be > 0 and max_output_bytes >= 0")
    paths = (Path(stdout_path), Path(stderr_path))
    if paths[0].resolve() == paths[1].resolve():
        raise ValueError("stdout_path and stderr_path must differ")
    return paths


def _tagged(env: Mapping[str, str], tag: str | None) -> dict[str, str]:
    child_env = dict(env)
    if tag is not None:
        child_env[TAG_ENV] = tag
    return child_env


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


@contextlib.contextmanager
def _opened(paths: tuple[Path, Path]) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """The two output files, open; closed again only when the body raises (else the pump owns them)."""
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as opened:
        sinks = (opened.enter_context(open(paths[0], "wb")), opened.enter_context(open(paths[1], "wb")))
        yield sinks
        opened.pop_all()


def _supervise(proc: subprocess.Popen[bytes], sinks: tuple[IO[bytes], IO[bytes]], argv: tuple[str, ...],
               paths: tuple[Path, Path], *, max_output_bytes: int, tag: str | None, started: float,
               spawned_wall: float, timeout_s: float, on_start: Callable[[int], None] | None) -> ProcessResult:
    assert proc.stdout is not None and proc.stderr is not None
    pump = _Pump((_Stream(proc.stdout, sinks[0], max_output_bytes),
                  _Stream(proc.stderr, sinks[1], max_output_bytes)))
    run = _Run(proc, pump, tag, started, spawned_wall)
    try:
        if on_start is not None:
            on_start(proc.pid)
        timed_out, interrupted = run.wait(started + timeout_s)
    except BaseException:
        run.abort()
        raise
    return run.finish(argv, paths, timed_out, interrupted)
