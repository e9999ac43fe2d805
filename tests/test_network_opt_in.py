"""Registry tests are opt-in: offline, the README's test command must finish."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORK_TESTS = "tests/supply_chain/test_bootstrap_network.py"


def _collect(*extra: str) -> str:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          NETWORK_TESTS, *extra], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)
    return out.stdout + out.stderr


def test_network_registry_tests_are_deselected_by_default() -> None:
    out = _collect()
    assert "test_bootstrap_bun_from_npm_registry" not in out
    assert "2 deselected" in out, out


def test_run_network_selects_them() -> None:
    out = _collect("--run-network")
    assert "test_bootstrap_bun_from_npm_registry" in out
    assert "deselected" not in out, out
