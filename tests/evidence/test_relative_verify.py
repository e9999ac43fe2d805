"""``verify`` gives the same answer for a relative run-dir path as for an absolute one."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli


def test_verify_accepts_a_relative_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = cli_env(tmp_path)
    result = run_cli("run", "--runs-dir", str(tmp_path / "runs"), env=env, cwd=tmp_path)
    assert result.run_dir is not None
    relative = result.run_dir.relative_to(tmp_path)
    checked = run_cli("verify", str(relative), env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
