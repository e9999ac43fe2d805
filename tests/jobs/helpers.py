"""Shared helpers for job tests: write specs, run the CLI, wait for explicit signals on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import cli_env


def write_spec(path: Path, *, name: str = "t", fixtures: tuple[str, ...] = ("r1-string-slugify",),
               attempts: int = 1, concurrency: int = 2, agents: tuple[str, ...] = ('name = "fixer"\nprovider = "fake"\n'
                                                                                  'scenario = "fix"',),
               extra: str = "") -> Path:
    lines = [f'name = "{name}"', f"fixtures = {json.dumps(list(fixtures))}", f"attempts = {attempts}",
             f"concurrency = {concurrency}", extra]
    for agent in agents:
        lines += ["", "[[agents]]", agent]
    path.write_text("\n".join(lines) + "\n")
    return path


def job_cli(*args: str, tmp_path: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cto_harness", *args], capture_output=True, text=True,
                          env=cli_env(tmp_path, **env), timeout=timeout, check=False)


def only_job_dir(jobs: Path) -> Path:
    found = [p for p in jobs.iterdir() if (p / "job.json").is_file()]
    assert len(found) == 1, found
    return found[0]


def summary(job_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((job_dir / "summary.json").read_text())
    return data


def report(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return data


def wait_for(predicate: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def provider_started(run_dir: Path) -> bool:
    events = run_dir / "events.jsonl"
    return events.exists() and b"provider_process_started" in events.read_bytes()
