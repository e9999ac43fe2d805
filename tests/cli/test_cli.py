"""The CLI's read-only commands: fixtures, schema, report show, help, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli_env, run_cli


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in ("run", "fixtures", "schema", "report", "verify", "runs", "health", "validate", "provider"):
        assert name in result.stdout


def test_fixtures_list_and_show() -> None:
    listed = run_cli("fixtures", "list", "--json")
    ids = [f["id"] for f in json.loads(listed.stdout)]
    assert "r1-string-slugify" in ids and len(ids) >= 3
    shown = run_cli("fixtures", "show", "r1-string-slugify")
    assert shown.returncode == 0 and "slugify" in shown.stdout
    missing = run_cli("fixtures", "show", "nope")
    assert missing.returncode == 2


def test_schema_report_prints_the_report_schema() -> None:
    """The snapshot comparison lives in tests/evidence/test_schema_snapshot.py."""
    result = run_cli("schema", "report")
    assert result.returncode == 0
    assert "verdict" in json.loads(result.stdout)["required"]


def test_report_show_summarises_a_run(runs_dir: Path, tmp_path: Path) -> None:
    run = run_cli("run", "--runs-dir", str(runs_dir), "--json", env=cli_env(tmp_path))
    report = json.loads(run.stdout)
    run_dir = runs_dir / report["run_id"]
    shown = run_cli("report", "show", str(run_dir))
    assert shown.returncode == 0 and "verdict:       pass" in shown.stdout
    assert run_cli("report", "show", str(tmp_path)).returncode == 1


def test_bad_scenario_and_timeout_are_usage_errors(runs_dir: Path, tmp_path: Path) -> None:
    assert run_cli("run", "--scenario", "explode", "--runs-dir", str(runs_dir)).returncode == 2
    assert run_cli("run", "--timeout", "0", "--runs-dir", str(runs_dir)).returncode == 2
    assert run_cli("run", "--provider", "nope", "--runs-dir", str(runs_dir)).returncode == 2
    assert not runs_dir.exists()


def test_runs_dir_from_environment(tmp_path: Path) -> None:
    target = tmp_path / "envruns"
    result = run_cli("run", env=cli_env(tmp_path, CTO_HARNESS_RUNS_DIR=str(target)), cwd=tmp_path)
    assert result.returncode == 0
    assert len(list(target.iterdir())) == 1


def test_broken_config_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "cto-harness.toml").write_text("[providers\n")
    result = run_cli("run", "--runs-dir", str(tmp_path / "runs"), env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "cto-harness.toml" in result.stderr


def test_run_exits_with_its_output_and_evidence_whole(runs_dir: Path, tmp_path: Path) -> None:
    """`run` skips the teardown's cycle collection (gc.freeze): what it printed and wrote is complete."""
    run = run_cli("run", "--runs-dir", str(runs_dir), "--json", env=cli_env(tmp_path))
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    run_dir = runs_dir / printed["run_id"]
    assert json.loads((run_dir / "report.json").read_text()) == printed
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "report_written"
    assert (run_dir / "attestation.dsse.json").is_file()
    verified = run_cli("verify", str(run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 0, verified.stderr
