"""Finalising orphaned run dirs: a harness that was SIGKILLed still leaves a report.

A run dir with no ``report.json`` whose lock no live harness holds is an orphan. Its
provider processes (found by pid and run tag) are killed, a torn last event line is
moved aside, and a report with verdict ``error``, class ``harness-error``, reason
``interrupted`` is built from what is on disk.
"""

from __future__ import annotations

import time
from pathlib import Path

from cto_harness.evidence import (
    LOCK_NAME,
    BackendBlock,
    ChangesBlock,
    EventLog,
    FixtureRef,
    ProviderBlock,
    Walker,
    atomic_write_bytes,
    is_locked,
    read_events,
)
from cto_harness.proc import kill_process_tree
from cto_harness.runner._finalize import RunState, write_report

TORN_TAIL_FILE = "backend/events-torn-tail.bin"


STARTUP_GRACE_S = 60.0
"""A run dir without events.jsonl may be one a live harness is still creating (mkdir, then
lock): it counts as orphaned only after this long."""


def find_orphans(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return sorted(
        path
        for path in runs_dir.iterdir()
        if path.is_dir()
        and not path.is_symlink()
        and (path / LOCK_NAME).exists()
        and not (path / "report.json").exists()
        and ((path / "events.jsonl").exists() or time.time() - path.stat().st_mtime > STARTUP_GRACE_S)
        and not is_locked(path)
    )


def recover_runs(runs_dir: Path, *, home: Path | None = None) -> list[Path]:
    """Finalise every orphaned run dir under ``runs_dir``; return the ones finalised.

    ``home`` is the harness home holding the signing key (None: from the environment).
    """
    return [path for path in find_orphans(runs_dir) if recover_run(path, home=home)]


def recover_run(run_dir: Path, *, home: Path | None = None) -> bool:
    import fcntl

    lock = open(run_dir / LOCK_NAME, "rb")  # noqa: SIM115
    try:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if (run_dir / "report.json").exists():
            return False
        _finalise(run_dir, home)
        return True
    finally:
        lock.close()


def _finalise(run_dir: Path, home: Path | None) -> None:
    events_path = run_dir / "events.jsonl"
    if not events_path.exists():
        events_path.touch()
    chain = read_events(events_path)
    reasons = ["interrupted", "the harness stopped before writing a report (killed or lost power); "
               "finalised by `cto-harness runs recover` from what was on disk"]
    if chain.error:
        reasons.append(f"event log damaged: {chain.error}; events after it were moved aside")
    if chain.torn_tail or chain.error:
        _move_tail_aside(events_path, run_dir, chain.count)
        reasons.append("a torn last event line was moved to " + TORN_TAIL_FILE)

    started = next((e for e in chain.events if e.get("event") == "run_started"), None)
    data = started.get("data", {}) if started else {}
    state = RunState(
        run_id=run_dir.name,
        run_dir=run_dir,
        started_at=started["ts"] if started else _mtime_iso(run_dir),
        fixture=FixtureRef(id=str(data.get("fixture") or "unknown"), digest=None),
        provider=ProviderBlock(name=str(data.get("provider") or "unknown")),
        lane=str(data.get("lane") or "fake"),
        harness_home=home,
    )
    state.backend = _backend_from_events(chain.events, reasons)
    state.changes = _patch_on_disk(run_dir)
    state.verdict, state.failure_class = "error", "harness-error"
    state.reasons = reasons
    state.duration_s = 0.0
    events = EventLog(events_path)
    events.emit("run_recovered", reason="interrupted")
    write_report(state, events)
    events.close()


def _patch_on_disk(run_dir: Path) -> ChangesBlock:
    """The dead harness's ``patch.diff`` (written before its digest was recorded anywhere): signed as found."""
    found = next(Walker().walk(run_dir, only=frozenset({b"patch.diff"})), None)
    if found is None or found.sha256 is None:
        return ChangesBlock()
    return ChangesBlock(patch_sha256=found.sha256, patch_bytes=found.size or 0)


def _backend_from_events(events: list[dict[str, object]], reasons: list[str]) -> BackendBlock:
    started = next((e for e in events if str(e.get("event", "")).endswith("_process_started")), None)
    exited = any(e.get("event") == "provider_process_exited" for e in events)
    if started is None:
        return BackendBlock()
    data = started.get("data")
    pid = data.get("pid") if isinstance(data, dict) else None
    tag = data.get("tag") if isinstance(data, dict) else None
    create_time = data.get("create_time") if isinstance(data, dict) else None
    killed: list[int] = []
    if isinstance(pid, int) and not exited:
        killed = list(kill_process_tree(pid, tag=str(tag) if tag else None,
                                        create_time=create_time if isinstance(create_time, float) else None))
        if killed:
            reasons.append(f"killed provider processes left running by the dead harness: {killed}")
    return BackendBlock(process_started=True, pid=pid if isinstance(pid, int) else None, killed_pids=killed)


def _move_tail_aside(events_path: Path, run_dir: Path, good_lines: int) -> None:
    data = events_path.read_bytes()
    lines = data.split(b"\n")
    keep = b"".join(line + b"\n" for line in lines[:good_lines])
    atomic_write_bytes(run_dir / TORN_TAIL_FILE, data[len(keep):])
    atomic_write_bytes(events_path, keep)


def _mtime_iso(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))
