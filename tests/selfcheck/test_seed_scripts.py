"""The seed's script names (CTO-WORK-017/018) run the same checks as the CLI commands they stand for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

EVALS = Path(__file__).resolve().parents[2] / "harness" / "evals"


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = cli_env(tmp_path)
    # This interpreter's own install first on PATH: `cto-harness` (or python3) is the one under test.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env["PYTHON"] = sys.executable
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_health_sh_json_passes_with_the_seed_checks(tmp_path: Path) -> None:
    done = _run([str(EVALS / "health.sh"), "--json"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    for name in ("provider_timeout_fail_closed", "model_provider_gate_blocks", "digest_mismatch_blocks"):
        assert data["checks"][name]["status"] == "ok", name


def test_validate_case_provider_adapter_py_checks_the_seed_scenarios(tmp_path: Path) -> None:
    done = _run([sys.executable, str(EVALS / "validate-case-provider-adapter.py"), "--json"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    for name in ("sleeping_provider_times_out", "model_provider_gate_blocks"):
        assert data["checks"][name]["status"] == "ok", name
