"""What one bounded child process did: the typed result every caller of ``proc`` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CapturedStream:
    """One captured output stream (stdout or stderr) of a bounded run."""

    path: Path
    """File holding the first ``bytes_kept`` bytes, verbatim (no truncation marker)."""
    bytes_total: int
    """Every byte the child wrote to the pipe, kept or discarded."""
    bytes_kept: int
    """Bytes written to ``path`` (at most ``max_output_bytes``)."""
    truncated: bool
    """True when ``bytes_total > bytes_kept``."""
    eof: bool = True
    """False when reading stopped before EOF (a process we could not find held the pipe)."""
    error: str | None = None
    """Set when writing the file failed; the stream was still drained."""


@dataclass(frozen=True)
class ProcessResult:
    """What happened to one bounded child process."""

    argv: tuple[str, ...]
    pid: int
    exit_code: int | None
    """Raw ``Popen.returncode``: negative means killed by that signal; None if never reaped."""
    timed_out: bool
    interrupted: str | None
    """Signal name (``"SIGTERM"``/``"SIGINT"``) if the harness was interrupted meanwhile."""
    duration_s: float
    stdout: CapturedStream
    stderr: CapturedStream
    killed_pids: tuple[int, ...]
    """Every pid we signalled (group, tree, tagged processes, stragglers)."""
    leftover_pids: tuple[int, ...]
    """Processes still alive after the child exited on its own (they were then killed)."""
