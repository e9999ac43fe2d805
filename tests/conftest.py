"""Shared test helpers: run the CLI as a real subprocess, find leftover processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-network", action="store_true", default=False,
                     help="also run tests marked network_registry (they need the PyPI/npm registry)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``network_registry`` tests unless ``--run-network``: offline, the suite must finish."""
    if config.getoption("--run-network"):
        return
    kept = [item for item in items if item.get_closest_marker("network_registry") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path | None
    report: dict[str, Any] | None


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTO_HARNESS_")}
    env["CTO_HARNESS_HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def hostile_agent_env(tmp_path: Path, source: str, **extra: str) -> dict[str, str]:
    """The environment of a run whose agent is the Python ``source`` (the ``command`` provider,
    unadmitted, given its workspace as ``sys.argv[1]``): the adversarial tests' hostile agent."""
    script = tmp_path / "hostile-agent"
    script.write_text(f"#!{sys.executable}\n{source}\n")
    script.chmod(0o755)
    return cli_env(tmp_path, CTO_HARNESS_COMMAND_BIN=str(script), CTO_HARNESS_COMMAND_ARGS="{workspace}",
                   CTO_HARNESS_COMMAND_MODEL_PROVIDER="local", CTO_HARNESS_COMMAND_MODEL="none",
                   CTO_HARNESS_ALLOW_UNADMITTED="1", **extra)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> CliRun:
    proc = subprocess.run([sys.executable, "-m", "cto_harness", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout, check=False)
    run_dir = None
    report = None
    for line in proc.stdout.splitlines():
        if line.startswith("run dir:"):
            run_dir = Path(line.split(":", 1)[1].strip())
    if run_dir is None and "--json" in args and proc.stdout.strip().startswith("{"):
        report = json.loads(proc.stdout)
    if run_dir is not None and (run_dir / "report.json").exists():
        report = json.loads((run_dir / "report.json").read_text())
    return CliRun(proc.returncode, proc.stdout, proc.stderr, run_dir, report)


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live (non-zombie) processes carrying the harness run tag."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("CTO_HARNESS_RUN_TAG", "").startswith(tag):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture
def runs_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "runs"
    yield path
    leftovers = []
    if path.exists():
        for run in path.iterdir():
            leftovers.extend(tagged_processes(run.name))
    for proc in leftovers:
        proc.kill()
    assert not leftovers, f"processes survived a run: {[p.pid for p in leftovers]}"
