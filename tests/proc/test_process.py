"""run_bounded and the tree kill, with real processes: nothing the child starts survives."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cto_harness.proc import _bounded as _process
from cto_harness.proc._bounded import (
    SpawnError,
    kill_process_tree,
    process_alive_with_tag,
    run_bounded,
)

HERE = Path(__file__).parent
HELPER = HERE / "proc_helper.py"
DRIVER = HERE / "process_driver.py"
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def tag(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A unique run tag; after the test, no process carrying it may be alive."""
    monkeypatch.setattr(_process, "TERM_GRACE_S", 0.3)
    value = f"test-process-{uuid.uuid4().hex}"
    yield value
    survivors = process_alive_with_tag(value)
    for pid in survivors:
        _force_kill(pid)
    assert survivors == [], f"processes tagged {value} survived the test"


def _force_kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read_pids(path: Path, timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return [int(p) for p in path.read_text().split()]


def _wait_for_files(directory: Path, names: set[str], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not names <= {p.name for p in directory.iterdir()}:
        assert time.monotonic() < deadline, f"{sorted(names)} never all appeared in {directory}"
        time.sleep(0.01)


def _run(tmp_path: Path, *args: str, **kwargs: object) -> _process.ProcessResult:
    options: dict[str, object] = {
        "cwd": tmp_path,
        "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        "timeout_s": 20.0,
        "stdout_path": tmp_path / "out" / "stdout.txt",
        "stderr_path": tmp_path / "out" / "stderr.txt",
    }
    options.update(kwargs)
    return run_bounded([sys.executable, str(HELPER), *args], **options)  # type: ignore[arg-type]


def test_normal_exit_records_code_and_output(tmp_path: Path, tag: str) -> None:
    started: list[int] = []
    result = _run(tmp_path, "exit", "3", tag=tag, on_start=started.append)
    assert result.exit_code == 3
    assert not result.timed_out and result.interrupted is None
    assert started == [result.pid]
    assert result.stdout.path.read_bytes() == b"out\n"
    assert result.stderr.path.read_bytes() == b"err\n"
    assert (result.stdout.bytes_total, result.stdout.bytes_kept) == (4, 4)
    assert not result.stdout.truncated and result.stdout.eof
    assert result.killed_pids == () and result.leftover_pids == ()
    assert _dead(result.pid)


def test_non_utf8_bytes_survive_byte_exact(tmp_path: Path, tag: str) -> None:
    data = bytes(range(256)) * 4 + b"\xff\xfe\x80\xc3("
    result = _run(tmp_path, "bytes", data.hex(), tag=tag)
    assert result.exit_code == 0
    assert result.stdout.path.read_bytes() == data
    assert result.stderr.path.read_bytes() == data[::-1]


def test_output_over_the_cap_is_truncated_and_drained(tmp_path: Path, tag: str) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = _run(tmp_path, "flood", "200", tag=tag, max_output_bytes=MiB)
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert result.exit_code == 0 and not result.timed_out
    assert result.stdout.bytes_total == 200 * MiB
    assert result.stdout.bytes_kept == MiB and result.stdout.truncated
    assert result.stdout.path.read_bytes() == b"x" * MiB
    assert result.duration_s < 15
    assert rss_growth_mib < 64


def test_timeout_kills_a_child_that_ignores_sigterm(tmp_path: Path, tag: str) -> None:
    result = _run(tmp_path, "ignore-term", str(tmp_path / "ready"), tag=tag, timeout_s=2.0)
    assert (tmp_path / "ready").exists(), "the child never got to ignore SIGTERM"
    assert result.timed_out
    assert result.exit_code == -signal.SIGKILL
    assert result.pid in result.killed_pids
    assert result.leftover_pids == ()
    assert result.duration_s < 6


def test_an_exception_in_on_start_kills_the_child_and_propagates(tmp_path: Path, tag: str) -> None:
    spawned: list[int] = []

    def on_start(pid: int) -> None:
        spawned.append(pid)
        raise RuntimeError("event log is broken")

    with pytest.raises(RuntimeError, match="event log is broken"):
        _run(tmp_path, "ignore-term", tag=tag, on_start=on_start)
    assert len(spawned) == 1 and _dead(spawned[0])


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
def test_timeout_kills_setsid_grandchildren_ignoring_sigterm(
    tmp_path: Path, tag: str, tagged: bool
) -> None:
    pidfile = tmp_path / "kids.pids"
    result = _run(
        tmp_path, "setsid-kids", str(pidfile), "3", tag=tag if tagged else None, timeout_s=1.0
    )
    kids = _read_pids(pidfile)
    try:
        assert result.timed_out
        assert set(kids) <= set(result.killed_pids)
        assert [pid for pid in kids if not _dead(pid)] == []
    finally:
        for pid in kids:
            _force_kill(pid)


def test_daemon_left_after_a_normal_exit_is_found_and_killed(tmp_path: Path, tag: str) -> None:
    pidfile = tmp_path / "daemon.pid"
    t0 = time.monotonic()
    result = _run(tmp_path, "daemon", str(pidfile), tag=tag)
    elapsed = time.monotonic() - t0
    (daemon,) = _read_pids(pidfile)
    try:
        assert result.exit_code == 0 and not result.timed_out
        assert daemon in result.leftover_pids and daemon in result.killed_pids
        assert _dead(daemon)
        assert result.stdout.path.read_bytes() == b"parent done\n"
        assert result.stdout.eof and result.stderr.eof
        assert elapsed < 5
    finally:
        _force_kill(daemon)


def test_an_untraceable_pipe_holder_cannot_hang_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a tag or subreaper a double-forked daemon is invisible; the wait is still bounded."""
    monkeypatch.setattr(_process, "DRAIN_TIMEOUT_S", 1.0)
    pidfile = tmp_path / "daemon.pid"
    t0 = time.monotonic()
    result = _run(tmp_path, "daemon", str(pidfile))
    elapsed = time.monotonic() - t0
    (daemon,) = _read_pids(pidfile)
    try:
        assert result.exit_code == 0
        assert result.leftover_pids == ()
        assert not result.stdout.eof
        assert result.stdout.path.read_bytes() == b"parent done\n"
        assert elapsed < 5
    finally:
        _force_kill(daemon)


@pytest.mark.parametrize("case", ["missing", "not-executable", "exec-format", "missing-cwd"])
def test_spawn_failures_raise_spawn_error(tmp_path: Path, case: str) -> None:
    program = tmp_path / "program"
    cwd = tmp_path
    if case == "missing":
        program = tmp_path / "does-not-exist"
    elif case == "not-executable":
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o644)
    elif case == "exec-format":
        program.write_bytes(b"\x7fELF\x00garbage")
        program.chmod(0o755)
    else:
        program = Path(sys.executable)
        cwd = tmp_path / "no-such-dir"
    with pytest.raises(SpawnError) as caught:
        run_bounded(
            [str(program)],
            cwd=cwd,
            env={},
            timeout_s=5,
            stdout_path=tmp_path / "stdout.txt",
            stderr_path=tmp_path / "stderr.txt",
        )
    assert isinstance(caught.value, OSError)
    assert "\n" not in str(caught.value) and "cannot start" in str(caught.value)


def _drive(
    tmp_path: Path, tag: str, subreaper: bool, *helper: str, grace_s: float = 0.3, forbid_scan: bool = False,
    hold: bool = False,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), tag, str(tmp_path), "1" if subreaper else "0", *helper],
        env={**os.environ, "DRIVER_GRACE_S": str(grace_s), "DRIVER_FORBID_SCAN": "1" if forbid_scan else "0",
             "DRIVER_HOLD": "1" if hold else "0"},
        stdout=subprocess.PIPE,
        text=True,
    )


def _drive_to_end(tmp_path: Path, tag: str, subreaper: bool, *helper: str, forbid_scan: bool = False,
                  hold: bool = False) -> tuple[dict[str, Any], int]:
    """Run the driver to its end: its JSON result and its exit status."""
    driver = _drive(tmp_path, tag, subreaper, *helper, forbid_scan=forbid_scan, hold=hold)
    try:
        out, _ = driver.communicate(timeout=15)
    finally:
        driver.kill()
    return json.loads(out), driver.returncode


def test_harness_interrupt_kills_the_tree_and_is_reported(tmp_path: Path, tag: str) -> None:
    pidfile = tmp_path / "kids.pids"
    driver = _drive(tmp_path, tag, False, "setsid-kids", str(pidfile), "2")
    try:
        kids = _read_pids(pidfile)
        (child,) = _read_pids(tmp_path / "started")
        driver.send_signal(signal.SIGTERM)
        out, _ = driver.communicate(timeout=15)
    finally:
        driver.kill()
    result = json.loads(out)
    assert driver.returncode == 0
    assert result["interrupted"] == "SIGTERM" and not result["timed_out"]
    assert result["pid"] == child and child in result["killed_pids"]
    assert set(kids) <= set(result["killed_pids"])
    assert [pid for pid in [child, *kids] if not _dead(pid)] == []


def test_a_second_signal_does_not_cut_the_kill_short(tmp_path: Path, tag: str) -> None:
    pidfile = tmp_path / "kids.pids"
    marks = tmp_path / "marks"
    marks.mkdir()
    driver = _drive(tmp_path, tag, False, "setsid-kids", str(pidfile), "2", str(marks), grace_s=3.0)
    try:
        kids = _read_pids(pidfile)
        driver.send_signal(signal.SIGTERM)
        # The kids mark SIGTERM's arrival: the harness is now inside its TERM -> grace -> KILL.
        _wait_for_files(marks, {f"term-{pid}" for pid in kids})
        driver.send_signal(signal.SIGINT)
        out, _ = driver.communicate(timeout=15)
    finally:
        driver.kill()
    assert driver.returncode == 0
    result = json.loads(out)
    assert result["interrupted"] == "SIGTERM"
    assert set(kids) <= set(result["killed_pids"])
    assert [pid for pid in kids if not _dead(pid)] == []


def test_subreaper_adopts_and_reaps_the_daemon(tmp_path: Path, tag: str) -> None:
    pidfile = tmp_path / "daemon.pid"
    result, _ = _drive_to_end(tmp_path, tag, True, "daemon", str(pidfile))
    (daemon,) = _read_pids(pidfile)
    assert result["subreaper"] is True
    assert result["exit_code"] == 0 and result["interrupted"] is None
    assert daemon in result["leftover_pids"]
    assert result["zombies_left"] == []
    assert _dead(daemon)


def test_another_live_runs_tree_is_left_alone_and_unread(tmp_path: Path, tag: str) -> None:
    """A held grader lives beside every provider run: the leftover scan finds the run's own
    daemon without reading (or killing) the held tree (issue 13: ~5 ms per bounded child)."""
    pidfile = tmp_path / "daemon.pid"
    result, _ = _drive_to_end(tmp_path, tag, True, "daemon", str(pidfile), hold=True)
    (daemon,) = _read_pids(pidfile)
    assert daemon in result["leftover_pids"] and _dead(daemon)
    assert len(result["held_pids"]) == 2 and all(result["held_alive"]), result
    assert result["held_inspected"] == [], result
    assert [pid for pid in result["held_pids"] if not _dead(pid)] == []


def test_a_descendant_already_dying_at_exit_is_not_a_leftover(tmp_path: Path, tag: str) -> None:
    """A sandbox's pid 1 outlives its bwrap by a moment: not the provider's leftover, not killed."""
    pidfile = tmp_path / "child.pid"
    result, _ = _drive_to_end(tmp_path, tag, True, "dying-child", str(pidfile))
    (child,) = _read_pids(pidfile)
    assert result["subreaper"] is True and result["exit_code"] == 0
    assert result["leftover_pids"] == [] and child not in result["killed_pids"], result
    assert result["zombies_left"] == []
    assert _dead(child)


def test_a_clean_exit_under_the_subreaper_scans_no_process_table(tmp_path: Path, tag: str) -> None:
    """The normal path looks among our own descendants only (issue 12: ~9 ms per scan)."""
    result, returncode = _drive_to_end(tmp_path, tag, True, "exit", "0", forbid_scan=True)
    assert returncode == 0
    assert result["subreaper"] is True
    assert result["exit_code"] == 0 and result["leftover_pids"] == [] and result["zombies_left"] == []


def test_kill_process_tree_leaves_a_reused_pid_alone(tmp_path: Path, tag: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "ignore-term", str(tmp_path / "ready")],
        env={**os.environ, _process.TAG_ENV: tag},
        start_new_session=True,
    )
    try:
        assert _read_pids(tmp_path / "ready") == [proc.pid]
        created = psutil.Process(proc.pid).create_time()
        assert kill_process_tree(proc.pid, create_time=created + 3600, grace_s=0.1) == ()
        assert proc.poll() is None
        assert kill_process_tree(proc.pid, create_time=created, grace_s=0.1) == (proc.pid,)
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
