"""Run a build or self-identification process with a hard time bound.

The process gets its own session (process group), output goes to a file (a pipe
held open by a stray grandchild could block us forever), and on timeout or exit the
whole group is killed so a build cannot leave daemons behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GRACE_S = 2.0


@dataclass(frozen=True)
class Bounded:
    exit_code: int | None
    timed_out: bool
    duration_s: float


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output: Path,
) -> Bounded:
    """Run ``argv`` writing stdout+stderr to ``output``; kill the group on timeout."""
    started = time.monotonic()
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pgid = proc.pid
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_group(pgid, signal.SIGKILL)
                proc.wait()
        finally:
            # Whatever the outcome, nothing the process started may outlive it.
            _kill_group(pgid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Bounded(
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
    )


def read_capped(path: Path, limit: int) -> tuple[str, bool]:
    """The first ``limit`` bytes of a file as text, and whether it was cut."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return "", False
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit
