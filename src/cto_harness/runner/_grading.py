"""Grading: restore the fixture's tests from the pristine fixture, then run them bounded."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cto_harness.evidence import TestCounts
from cto_harness.fixtures import Fixture, read_pristine, test_argv
from cto_harness.proc import ProcessResult, run_bounded

_COUNT = re.compile(rb"(\d+) (passed|failed|errors?|skipped)")


@dataclass(frozen=True)
class Grade:
    result: ProcessResult
    argv: list[str]
    timeout_s: float
    counts: TestCounts | None
    tampered_files: list[str]


TEST_CONFIG_NAMES = frozenset({"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml"})
"""Files that change how pytest collects and runs tests: an agent must not add or edit them."""


def restore_grading_tests(fixture: Fixture, workspace: Path) -> list[str]:
    """Put grading tests and test config back to pristine; return what the agent had changed.

    Test-config files the agent added (a ``conftest.py`` that skips everything) are removed.
    """
    tampered: list[str] = []
    for path in sorted(workspace.rglob("*")):
        rel = path.relative_to(workspace).as_posix()
        if path.name in TEST_CONFIG_NAMES and not rel.startswith(".git/") and rel not in fixture.files:
            _remove(path)
            tampered.append(rel)
    for rel in sorted(set(fixture.grading_tests) | {f for f in fixture.files if Path(f).name in TEST_CONFIG_NAMES}):
        pristine = read_pristine(fixture, rel)
        target = workspace / rel
        if target.is_symlink() or not target.is_file() or target.read_bytes() != pristine:
            tampered.append(rel)
            if target.is_symlink() or (target.exists() and not target.is_file()):
                _remove(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pristine)
    return sorted(tampered)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def grading_env(home: Path) -> dict[str, str]:
    """The test command's environment: an allowlist, never the caller's whole environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def parse_counts(output_path: Path) -> TestCounts | None:
    """Read pytest's closing summary line (the last line that carries counts)."""
    tail = _tail(output_path, 64 * 1024)
    for line in reversed(tail.splitlines()):
        found = _COUNT.findall(line)
        if found:
            counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
            for number, kind in found:
                key = kind.decode()
                counts["errors" if key.startswith("error") else key] += int(number)
            return TestCounts(**counts)
    return None


def _tail(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read()


def run_grading(fixture: Fixture, workspace: Path, out_dir: Path, home: Path, *, tag: str) -> Grade:
    tampered = restore_grading_tests(fixture, workspace)
    argv = test_argv(fixture)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = run_bounded(
        argv,
        cwd=workspace,
        env=grading_env(home),
        timeout_s=fixture.test_timeout_s,
        stdout_path=out_dir / "stdout.txt",
        stderr_path=out_dir / "stderr.txt",
        tag=tag,
    )
    return Grade(
        result=result,
        argv=argv,
        timeout_s=fixture.test_timeout_s,
        counts=parse_counts(out_dir / "stdout.txt"),
        tampered_files=tampered,
    )
