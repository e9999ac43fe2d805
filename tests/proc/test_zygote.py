"""The zygote with real processes: clean children, deadlines, tree kills, and its own death."""

from __future__ import annotations

import _thread
import atexit
import contextlib
import fcntl
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cto_harness.proc import SpawnError, Zygote, ZygoteLost, _zygote, process_alive_with_tag

REPO = Path(__file__).resolve().parents[2]
TARGET = "tests.proc.zygote_target:main"
WARM = "tests.proc.zygote_target:warm"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _wait_for(path: Path, timeout_s: float = 30.0) -> str:
    """An explicit readiness signal: the file appears (written atomically by the child)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.02)
    return path.read_text()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def tag() -> Iterator[str]:
    """A unique run tag; after the test, no process carrying it may be alive."""
    value = f"test-zygote-{uuid.uuid4().hex}"
    yield value
    survivors = process_alive_with_tag(value)
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"processes tagged {value} survived the test"


@pytest.fixture(params=["fresh", "forked"])
def zygote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Zygote]:
    """Each test runs with a zygote that is a fresh interpreter and with one forked from this process."""
    fork = request.param == "forked"
    with Zygote.start(TARGET, warm=WARM, env=_env(), cwd=REPO, log_path=tmp_path / "zygote.log", fork=fork) as z:
        assert z.forked is fork, "this test process is not single-threaded: it cannot fork a zygote"
        assert psutil.Process(z.pid).name() == _zygote.ZYGOTE_NAME
        yield z
    assert _gone(z.pid)


def _run(zygote: Zygote, tmp_path: Path, *args: str, tag: str | None = None, timeout_s: float = 60,
         env: dict[str, str] | None = None, name: str = "child") -> tuple[int | None, dict[str, object] | None, str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    result = zygote.run(list(args), cwd=work, env=env or {"ONLY": "this"}, timeout_s=timeout_s,
                        stdout_path=out, stderr_path=err, tag=tag)
    text = out.read_text()
    return result.exit_code, (json.loads(text) if text.startswith("{") else None), err.read_text()


def test_each_request_runs_in_a_fresh_clean_child_of_one_warm_zygote(zygote: Zygote, tmp_path: Path,
                                                                      tag: str) -> None:
    code, first, err = _run(zygote, tmp_path, "state", "7", tag=tag, name="one")
    assert code == 7 and err == "to stderr\n"
    assert first is not None
    assert first["warmed_by"] == zygote.pid, "the child was not forked from the warmed zygote"
    assert first["ppid"] == zygote.pid
    assert first["sid"] == first["pid"] == first["pgid"], "the child must lead its own session"
    assert first["cwd"] == str(tmp_path / "work")
    assert first["env"] == {"ONLY": "this", "CTO_HARNESS_RUN_TAG": tag}
    assert first["fds"] == [0, 1, 2, 3] or first["fds"] == [0, 1, 2], first["fds"]  # 3: listdir's own fd
    assert first["held_fd_open"] is False, "an fd of the zygote leaked into the child"
    assert first["handlers"] == {"SIGTERM": "SIG_DFL", "SIGINT": "default_int_handler",
                                 "SIGPIPE": "SIG_IGN"}
    assert first["blocked"] == [], "the zygote's signal mask leaked into the child"
    assert first["threads"] == 1
    code, second, _ = _run(zygote, tmp_path, "state", "0", name="two")
    assert code == 0 and second is not None
    assert second["pid"] != first["pid"] and second["warmed_by"] == zygote.pid
    assert _gone(int(str(first["pid"]))) and _gone(int(str(second["pid"])))


def test_exit_statuses_are_reported_as_run_bounded_reports_them(zygote: Zygote, tmp_path: Path) -> None:
    assert _run(zygote, tmp_path, "exit", "3")[0] == 3
    code, _, err = _run(zygote, tmp_path, "raise")
    assert code == 1 and "RuntimeError: boom in the child" in err
    assert _run(zygote, tmp_path, "kill-self")[0] == -signal.SIGKILL
    assert _run(zygote, tmp_path, "state", "0")[0] == 0, "the zygote must survive its children's deaths"


def test_a_timeout_kills_the_whole_tree_including_a_grandchild_that_left_the_group(
        zygote: Zygote, tmp_path: Path, tag: str) -> None:
    ready = tmp_path / "ready"
    work = tmp_path / "work"
    work.mkdir()
    result = zygote.run(["hang-tree", str(ready)], cwd=work, env=_env(), timeout_s=3.0,
                        stdout_path=tmp_path / "o", stderr_path=tmp_path / "e", tag=tag)
    assert result.timed_out and result.exit_code in (-signal.SIGKILL, -signal.SIGTERM)
    grandchild = int(_wait_for(Path(f"{ready}.grandchild")))
    assert grandchild in result.killed_pids
    assert _gone(grandchild) and _gone(int(ready.read_text()))


def test_what_a_child_leaves_behind_is_killed_and_listed(zygote: Zygote, tmp_path: Path, tag: str) -> None:
    pid_file = tmp_path / "left"
    work = tmp_path / "work"
    work.mkdir()
    result = zygote.run(["leave-behind", str(pid_file)], cwd=work, env=_env(), timeout_s=60,
                        stdout_path=tmp_path / "o", stderr_path=tmp_path / "e", tag=tag)
    left = int(pid_file.read_text())
    assert result.exit_code == 0 and not result.timed_out
    assert left in result.leftover_pids
    assert _gone(left)


def _run_in_thread(zygote: Zygote, tmp_path: Path, tag: str, ready: Path, marks: Path) -> tuple[threading.Thread,
                                                                                                   dict[str, object]]:
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = zygote.run(["term-report", str(ready), str(marks)], cwd=tmp_path, env=_env(),
                                           timeout_s=120, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e",
                                           tag=tag, on_start=lambda pid: outcome.setdefault("pid", pid))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_terminate_sends_sigterm_to_the_running_child_only(zygote: Zygote, tmp_path: Path, tag: str) -> None:
    ready, marks = tmp_path / "ready", tmp_path / "marks"
    marks.mkdir()
    assert not zygote.terminate(), "nothing runs yet"
    thread, outcome = _run_in_thread(zygote, tmp_path, tag, ready, marks)
    child = int(_wait_for(ready))
    assert zygote.terminate()
    thread.join(60)
    assert not thread.is_alive()
    result = outcome["result"]
    assert getattr(result, "exit_code", None) == 4 and getattr(result, "interrupted", None) == "SIGTERM"
    assert (marks / f"interrupted-{child}").read_text() == "SIGTERM"
    assert _run(zygote, tmp_path, "state", "0")[0] == 0


def test_a_killed_zygote_fails_the_request_and_its_child_gets_sigterm(zygote: Zygote, tmp_path: Path, tag: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_zygote, "LOST_CHILD_WAIT_S", 600.0)  # only PR_SET_PDEATHSIG can end the child in time
    ready, marks = tmp_path / "ready", tmp_path / "marks"
    marks.mkdir()
    thread, outcome = _run_in_thread(zygote, tmp_path, tag, ready, marks)
    child = int(_wait_for(ready))
    os.kill(zygote.pid, signal.SIGKILL)
    thread.join(90)
    assert not thread.is_alive(), "a dead zygote must never hang its caller"
    error = outcome.get("error")
    assert isinstance(error, ZygoteLost), outcome
    assert error.child_pid == child and "died" in str(error)
    assert (marks / f"interrupted-{child}").read_text() == "SIGTERM", "the child did not get its SIGTERM"
    assert _gone(child)
    assert not zygote.alive()
    with pytest.raises(ZygoteLost):
        _run(zygote, tmp_path, "state", "0")


def test_a_zygote_whose_caller_goes_away_exits_and_its_child_gets_sigterm(
        zygote: Zygote, tmp_path: Path, tag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_zygote, "LOST_CHILD_WAIT_S", 600.0)
    ready, marks = tmp_path / "ready", tmp_path / "marks"
    marks.mkdir()
    thread, outcome = _run_in_thread(zygote, tmp_path, tag, ready, marks)
    child = int(_wait_for(ready))
    zygote._requests.close()  # what the coordinator's death does to the request pipe
    thread.join(90)
    assert isinstance(outcome.get("error"), ZygoteLost), outcome
    assert (marks / f"interrupted-{child}").read_text() == "SIGTERM"
    assert _gone(child) and _gone(zygote.pid)


def test_a_forked_zygote_keeps_none_of_the_callers_files_handlers_or_exit_functions(
        tmp_path: Path, tag: str) -> None:
    """What a coordinator holds when it forks its zygotes: the job lock, a SIGTERM handler that
    only sets a flag, exit functions. The zygote and its children must have none of them."""
    lock = open(tmp_path / "job.lock", "wb")  # noqa: SIM115
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    marker = tmp_path / "atexit-ran"
    stopped: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))

    def exit_function() -> None:
        marker.write_text(str(os.getpid()))

    atexit.register(exit_function)
    try:
        zygote = Zygote.start(TARGET, env=_env(), cwd=REPO,  # no warm: it would ignore SIGTERM
                              log_path=tmp_path / "zygote.log", fork=True)
    finally:
        atexit.unregister(exit_function)
        signal.signal(signal.SIGTERM, previous)
    try:
        assert zygote.forked
        held = {os.readlink(f"/proc/{zygote.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{zygote.pid}/fd")}
        assert str(tmp_path / "job.lock") not in held, "the caller's job lock leaked into the zygote"
        code, state, _ = _run(zygote, tmp_path, "state", "0", tag=tag)
        assert code == 0 and state is not None and state["fds"] in ([0, 1, 2], [0, 1, 2, 3])
        assert not marker.exists(), "the caller's atexit function ran in the zygote's child"
        os.kill(zygote.pid, signal.SIGTERM)
        psutil.Process(zygote.pid).wait(30)  # a zygote that kept the caller's handler ignores it
        assert not zygote.alive() and stopped == []
    finally:
        zygote.close(kill=True)
        lock.close()


def test_a_caller_with_other_threads_gets_a_fresh_interpreter_not_a_fork(tmp_path: Path) -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        with Zygote.start(TARGET, warm=WARM, env=_env(), cwd=REPO, log_path=tmp_path / "zygote.log",
                          fork=True) as zygote:
            assert not zygote.forked, "forking a multi-threaded process copies locks other threads hold"
            code, state, _ = _run(zygote, tmp_path, "state", "0")
            assert code == 0 and state is not None and state["warmed_by"] == zygote.pid
    finally:
        release.set()
        other.join()


def test_a_zygote_that_is_not_single_threaded_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="threads after import; refusing to fork"):
        Zygote.start(TARGET, warm="tests.proc.zygote_target:warm_with_thread", env=_env(), cwd=REPO,
                     log_path=tmp_path / "zygote.log")


def test_a_zygote_whose_target_does_not_import_fails_to_start(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="ModuleNotFoundError"):
        Zygote.start("tests.proc.no_such_module:main", env=_env(), cwd=REPO, log_path=tmp_path / "zygote.log")


@pytest.mark.parametrize("how", ["signal", "pending-exception"])
def test_an_interrupted_caller_lets_the_child_write_its_report_then_reraises(zygote: Zygote, tmp_path: Path,
                                                                             tag: str, how: str) -> None:
    """KeyboardInterrupt in the main thread waiting in ``run``: from a real SIGINT, or only a pending
    exception with no signal to wake a blocking wait (what ``ray.cancel`` does to a worker)."""
    ready, marks = tmp_path / "ready", tmp_path / "marks"
    marks.mkdir()

    def interrupt_when_ready() -> None:
        _wait_for(ready)
        if how == "signal":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            _thread.interrupt_main()

    helper = threading.Thread(target=interrupt_when_ready)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        zygote.run(["term-report", str(ready), str(marks)], cwd=tmp_path, env=_env(), timeout_s=120,
                   stdout_path=tmp_path / "o", stderr_path=tmp_path / "e", tag=tag)
    helper.join(30)
    child = int(ready.read_text())
    assert (marks / f"interrupted-{child}").read_text() == "SIGTERM"
    assert _gone(child)
    assert zygote.alive() and _run(zygote, tmp_path, "state", "0")[0] == 0, "the zygote stays usable"
