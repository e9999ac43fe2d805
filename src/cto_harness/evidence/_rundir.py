"""Run directories: unique, created atomically, locked while a harness owns them."""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

LOCK_NAME = ".run.lock"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class RunDir:
    """An owned run directory; the flock on ``.run.lock`` says a live harness owns it."""

    path: Path
    run_id: str
    _lock: IO[bytes]

    def release(self) -> None:
        if not self._lock.closed:
            self._lock.close()


def safe_component(text: str) -> str:
    cleaned = _SAFE.sub("-", text).strip("-.")[:64]
    return cleaned or "fixture"


def create_run_dir(runs_dir: Path, fixture_id: str, *, now: datetime | None = None) -> RunDir:
    """Create ``<runs-dir>/<UTC stamp>-<fixture-id>-<pid>[-<n>]`` with mkdir (atomic, exclusive)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{safe_component(fixture_id)}-{os.getpid()}"
    for n in range(10_000):
        name = base if n == 0 else f"{base}-{n}"
        path = runs_dir / name
        try:
            path.mkdir()
        except FileExistsError:
            continue
        lock = open(path / LOCK_NAME, "wb")  # noqa: SIM115 - held for the run's lifetime
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return RunDir(path=path.resolve(), run_id=name, _lock=lock)
    raise FileExistsError(f"no free run directory name under {runs_dir} for {base}")


def claim_run_dir(path: Path, run_id: str) -> RunDir:
    """Create exactly ``path`` (exclusive mkdir; parents made) and lock it, for a caller-chosen layout.

    Raises:
        FileExistsError: ``path`` exists already (a run dir is never reused).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir()
    lock = open(path / LOCK_NAME, "wb")  # noqa: SIM115 - held for the run's lifetime
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return RunDir(path=path.resolve(), run_id=run_id, _lock=lock)


def is_locked(run_dir: Path) -> bool:
    """True when a live harness holds the run dir's lock."""
    lock_path = run_dir / LOCK_NAME
    if not lock_path.exists():
        return False
    with open(lock_path, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False
