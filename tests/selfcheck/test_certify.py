"""certify refuses what it cannot certify and stops at once when loopback is down."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30, check=False).returncode == 0


@pytest.mark.parametrize("name", ["fake", "command"])
def test_certify_refuses_a_provider_it_cannot_certify(name: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = run_cli("certify", name, "--runs-dir", str(runs), env=cli_env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "certifiable: case, claude-code, codex, mini-swe-agent, pi" in result.stderr
    assert "NOT CERTIFIED" not in result.stdout and not runs.exists()


@pytest.mark.skipif(not _unshare_works(), reason="unshare -rn is not available here")
def test_certify_with_loopback_down_stops_at_once_with_the_fix(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = cli_env(tmp_path, CTO_HARNESS_CODEX_BIN="/bin/true")
    started = time.monotonic()
    proc = subprocess.run(["unshare", "-rn", sys.executable, "-m", "cto_harness", "certify", "codex",
                           "--runs-dir", str(runs)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "loopback is unreachable" in lines[0] and "ip link set lo up" in lines[0], lines
    assert proc.stdout == ""
    assert not runs.exists() or not any(runs.iterdir()), "nothing may run when loopback is down"
    assert elapsed < 30, f"took {elapsed:.1f} s"
