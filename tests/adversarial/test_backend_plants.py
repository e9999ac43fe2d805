"""What an agent leaves in ``backend/`` (its own dir) where the harness later writes evidence.

The harness runs as the invoking user (root in CI): a symlink planted at an evidence name
must be replaced, never written through; a directory planted there must not crash the run
or change its verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import hostile_agent_env, run_cli

from cto_harness.providers._agent_result import parse_last_agent_result
from cto_harness.providers._client_common import iter_jsonl

PRELUDE = "import os, pathlib, sys, time\nws = pathlib.Path(sys.argv[1])\nbackend = ws.parent / 'backend'\n"


def _env(tmp_path: Path, body: str, **extra: str) -> dict[str, str]:
    return hostile_agent_env(tmp_path, f"{PRELUDE}{body}", **extra)


def test_a_symlink_at_the_model_server_log_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "created-by-harness"
    outside.parent.mkdir()
    log = tmp_path / "model-server.log"
    log.write_text('{"request": "the endpoint log"}\n')
    body = f"os.symlink({str(outside)!r}, backend / 'model-server.jsonl')\n"
    env = _env(tmp_path, body, CTO_HARNESS_MODEL_SERVER_LOG=str(log))
    result = run_cli("run", "--provider", "command", "--runs-dir", str(tmp_path / "runs"), env=env)
    assert result.run_dir is not None and result.report is not None, result.stdout + result.stderr
    assert not outside.exists(), "the harness wrote through the agent's symlink"
    kept = result.run_dir / "backend" / "model-server.jsonl"
    assert not kept.is_symlink() and kept.read_text() == log.read_text()
    assert run_cli("verify", str(result.run_dir), env=env).returncode == 0


def test_a_directory_at_the_timeout_evidence_name_neither_crashes_nor_changes_the_verdict(tmp_path: Path) -> None:
    body = ("for name in ('provider-timeout.txt', 'harness-error.txt'):\n"
            "    (backend / name / 'x').mkdir(parents=True)\n"
            "time.sleep(60)\n")
    env = _env(tmp_path, body)
    result = run_cli("run", "--provider", "command", "--timeout", "3", "--runs-dir", str(tmp_path / "runs"), env=env)
    assert result.run_dir is not None and result.report is not None, result.stdout + result.stderr
    assert (result.report["verdict"], result.report["failure_class"]) == ("fail", "provider-timeout"), \
        result.report["reasons"]
    assert result.returncode == 1, result.stderr
    assert (result.run_dir / "backend" / "provider-timeout.txt").is_file()
    assert run_cli("verify", str(result.run_dir), env=env).returncode == 0


def test_json_nested_too_deep_is_not_a_harness_crash(tmp_path: Path) -> None:
    deep = b'{"a":' + b"[" * 200_000
    path = tmp_path / "stdout.jsonl"
    path.write_bytes(b'{"ok": 1}\n' + deep + b"\n")
    assert list(iter_jsonl(path)) == [{"ok": 1}]
    parsed = parse_last_agent_result(b"<<<AGENT_RESULT " + deep + b" AGENT_RESULT>>>")
    assert parsed.result is None and "too deep" in (parsed.error or "")
    json.dumps(parsed.error)  # a plain message, fit for the report
