"""Convenience shapes over ``run_bounded``: captured output, one merged log, capped reads.

Every process the harness starts goes through ``run_bounded``; these helpers only
choose where its output goes, so git, npm, bun, pip, version probes and builds get the
same new session, monotonic deadline and TERM → grace → KILL of the whole tree.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cto_harness.core import ProcessResult
from cto_harness.proc._bounded import run_bounded

DEFAULT_CAPTURE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Captured:
    """A bounded run whose output was read back into memory (capped)."""

    result: ProcessResult
    stdout: bytes
    stderr: bytes

    @property
    def returncode(self) -> int | None:
        return self.result.exit_code

    @property
    def timed_out(self) -> bool:
        return self.result.timed_out

    @property
    def ok(self) -> bool:
        return self.result.exit_code == 0 and not self.result.timed_out

    def text(self, stream: str = "stdout") -> str:
        data = self.stdout if stream == "stdout" else self.stderr
        return data.decode("utf-8", "replace")


def run_captured(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    max_output_bytes: int = DEFAULT_CAPTURE_BYTES,
) -> Captured:
    """Run ``argv`` bounded and return its (capped) stdout and stderr as bytes.

    Raises:
        SpawnError: The program could not be started.
    """
    with tempfile.TemporaryDirectory(prefix="cto-proc-") as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        result = run_bounded(argv, cwd=cwd, env=env, timeout_s=timeout_s, stdout_path=out,
                             stderr_path=err, max_output_bytes=max_output_bytes)
        return Captured(result, out.read_bytes(), err.read_bytes())


def run_to_log(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    log: Path,
    max_output_bytes: int = DEFAULT_CAPTURE_BYTES,
) -> ProcessResult:
    """Run ``argv`` bounded, appending its stdout then its stderr to ``log`` (a build log).

    Raises:
        SpawnError: The program could not be started.
    """
    with tempfile.TemporaryDirectory(prefix="cto-proc-") as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        try:
            return run_bounded(argv, cwd=cwd, env=env, timeout_s=timeout_s, stdout_path=out,
                               stderr_path=err, max_output_bytes=max_output_bytes)
        finally:
            with log.open("ab") as sink:
                for part in (out, err):
                    with contextlib.suppress(FileNotFoundError), part.open("rb") as src:
                        while chunk := src.read(1 << 20):
                            sink.write(chunk)


def read_capped(path: Path, limit: int) -> tuple[str, bool]:
    """The first ``limit`` bytes of a file as text, and whether it was cut."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return "", False
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit
