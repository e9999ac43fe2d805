"""End to end: the CLI as a subprocess, the fake provider as a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tests.conftest import cli_env, run_cli, tagged_processes

EXPECTED = {
    "fix": ("pass", None, 0),
    "noop": ("fail", "no-changes", 1),
    "sleep": ("fail", "provider-timeout", 1),
    "hang-with-children": ("fail", "provider-timeout", 1),
    "crash": ("fail", "provider-crashed", 1),
    "protocol-error": ("fail", "agent-protocol-error", 1),
    "edit-tests": ("fail", "tests-failed", 1),
    "huge-output": ("pass", None, 0),
    "binary-output": ("pass", None, 0),
    "fork-and-exit": ("pass", None, 0),
}
DECIDING_REASON = {
    "fix": "provider completed",
    "noop": "the provider changed nothing",
    "sleep": "provider exceeded its 3 s timeout",
    "hang-with-children": "provider exceeded its 3 s timeout",
    "crash": "provider exited with status 3",
    "protocol-error": "fake agent: ",
    "edit-tests": "fixture tests failed",
    "huge-output": "provider completed",
    "binary-output": "provider completed",
    "fork-and-exit": "provider completed",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "cto_harness", "schema", "report"], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_scenario_yields_its_verdict(scenario: str, runs_dir: Path, tmp_path: Path,
                                          schema: dict[str, object]) -> None:
    verdict, failure_class, exit_code = EXPECTED[scenario]
    result = run_cli("run", "--scenario", scenario, "--runs-dir", str(runs_dir), "--timeout", "3",
                     env=cli_env(tmp_path))
    assert result.report is not None, result.stderr
    assert (result.report["verdict"], result.report["failure_class"]) == (verdict, failure_class), result.stdout
    assert result.returncode == exit_code
    assert result.report["reasons"][0].startswith(DECIDING_REASON[scenario]), result.report["reasons"]
    jsonschema.validate(result.report, schema)
    assert result.run_dir is not None
    verified = run_cli("verify", str(result.run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 0, verified.stderr
    assert not tagged_processes(result.report["run_id"])
    events = [json.loads(line)["event"] for line in (result.run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_started" and events[-1] == "report_written"
    for required in ("provider_preflight", "model_admission", "provider_process_started",
                     "provider_process_exited", "tests_finished"):
        assert required in events
    if scenario in ("fix", "noop", "crash", "edit-tests") and result.report["backend"]["sandbox"] == "bwrap":
        # The sandbox's own pid 1 dies a moment after its bwrap: it is not the provider's leftover.
        assert result.report["backend"]["leftover_pids"] == [], result.report["reasons"]
        assert not any("left 1 process" in r for r in result.report["reasons"])


def test_timeout_writes_evidence_and_still_grades(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--scenario", "hang-with-children", "--runs-dir", str(runs_dir), "--timeout", "2",
                     env=cli_env(tmp_path))
    assert result.run_dir and result.report
    text = (result.run_dir / "backend" / "provider-timeout.txt").read_text()
    assert "limit 2 s" in text and "pids killed" in text
    _assert_tree_killed(result.report, result.run_dir)
    assert result.report["tests"]["ran"] is True
    assert result.report["backend"]["timed_out"] is True


def _assert_tree_killed(report: dict[str, Any], run_dir: Path) -> None:
    """The agent and, once it said it started them, its two grandchildren were killed.

    Only without a sandbox does the harness signal each one itself: under bubblewrap the
    pid namespace takes the rest down with its init, so fewer pids may be recorded.
    """
    killed = report["backend"]["killed_pids"]
    started = b"started grandchildren" in (run_dir / "backend" / "stdout.txt").read_bytes()
    if report["backend"]["sandbox"] == "none" and started:
        assert len(killed) >= 3, killed  # agent + two grandchildren
    else:
        assert killed, "the provider itself must have been killed"


@pytest.mark.parametrize("sandbox", ["none", "auto"])
def test_a_daemon_left_behind_is_killed(sandbox: str, runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--scenario", "fork-and-exit", "--runs-dir", str(runs_dir),
                     env=cli_env(tmp_path, CTO_HARNESS_SANDBOX=sandbox))
    assert result.report and result.report["verdict"] == "pass"
    if result.report["backend"]["sandbox"] == "none":
        assert result.report["backend"]["leftover_pids"], "the harness must find and kill the daemon"
        assert any("left 1 process" in r for r in result.report["reasons"])
    # Under bubblewrap the daemon dies with the sandbox's pid namespace.
    assert not tagged_processes(result.report["run_id"])


@pytest.mark.parametrize("sandbox", ["none", "auto"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_harness_kills_the_provider_and_writes_a_report(sig: signal.Signals, sandbox: str, runs_dir: Path,
                                                                  tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cto_harness", "run", "--scenario", "hang-with-children",
                             "--runs-dir", str(runs_dir), "--timeout", "60"],
                            env=cli_env(tmp_path, CTO_HARNESS_SANDBOX=sandbox), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_dir = _wait_for_agent(runs_dir, b"started grandchildren")
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == 4
    report = json.loads((run_dir / "report.json").read_text())
    assert report["backend"]["interrupted"] == sig.name
    _assert_tree_killed(report, run_dir)
    assert not tagged_processes(run_dir.name)


def test_edit_tests_lists_tampered_files(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--scenario", "edit-tests", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.report
    assert "tests/test_strings.py" in result.report["tests"]["tampered_files"]
    assert "conftest.py" in result.report["tests"]["tampered_files"], "an added conftest.py must be removed"
    assert "tests/test_strings.py" in result.report["changes"]["files"]


def test_huge_output_is_capped(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--scenario", "huge-output", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.run_dir and result.report
    stdout = result.report["backend"]["stdout"]
    assert stdout["truncated"] is True
    assert stdout["bytes_kept"] == 10 * 1024 * 1024 == (result.run_dir / "backend" / "stdout.txt").stat().st_size
    assert stdout["bytes_total"] > 200 * 1024 * 1024


def test_binary_output_survives_byte_exact(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--scenario", "binary-output", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.run_dir
    data = (result.run_dir / "backend" / "stderr.txt").read_bytes()
    assert bytes(range(256)) in data and b"\xff\xfe\x80\xc3\x28" in data


def test_verify_detects_one_changed_byte(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.returncode == 0 and result.run_dir
    stdout = result.run_dir / "backend" / "stdout.txt"
    data = bytearray(stdout.read_bytes())
    data[0] ^= 0x01
    stdout.write_bytes(bytes(data))
    verified = run_cli("verify", str(result.run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 1
    assert "backend/stdout.txt: altered" in verified.stderr


@pytest.mark.parametrize("tamper", ["remove", "add", "report", "events"])
def test_verify_detects_removed_added_and_rewritten_files(tamper: str, runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.run_dir
    if tamper == "remove":
        (result.run_dir / "patch.diff").unlink()
    elif tamper == "add":
        (result.run_dir / "backend" / "extra.txt").write_text("x")
    elif tamper == "report":
        path = result.run_dir / "report.json"
        path.write_text(path.read_text().replace('"verdict": "pass"', '"verdict": "fail"'))
    else:
        path = result.run_dir / "events.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:2] + lines[3:]))
    verified = run_cli("verify", str(result.run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 1, verified.stdout


def test_sigterm_to_harness_still_writes_a_report(runs_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cto_harness", "run", "--scenario", "sleep",
                             "--runs-dir", str(runs_dir), "--timeout", "60"],
                            env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = _wait_for_agent(runs_dir, b"fake agent: sleeping")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "error" and report["failure_class"] == "harness-error"
    assert report["reasons"][0] == "interrupted: the harness received SIGTERM", report["reasons"]
    assert report["backend"]["interrupted"] == "SIGTERM"
    assert not tagged_processes(run_dir.name)
    assert run_cli("verify", str(run_dir), env=cli_env(tmp_path)).returncode == 0


@pytest.mark.parametrize("sandbox", ["none", "auto"])
def test_sigkilled_harness_is_recovered(sandbox: str, runs_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cto_harness", "run", "--scenario", "sleep",
                             "--runs-dir", str(runs_dir), "--timeout", "60"],
                            env=cli_env(tmp_path, CTO_HARNESS_SANDBOX=sandbox),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for_agent(runs_dir, b"fake agent: sleeping")
    proc.kill()
    proc.wait()
    assert not (run_dir / "report.json").exists()
    recovered = run_cli("runs", "recover", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert recovered.returncode == 0 and str(run_dir) in recovered.stdout
    report = json.loads((run_dir / "report.json").read_text())
    assert (report["verdict"], report["failure_class"]) == ("error", "harness-error")
    assert report["reasons"][0] == "interrupted"
    if sandbox == "none":
        assert report["backend"]["killed_pids"], "the orphaned provider must be killed by recovery"
    assert not tagged_processes(run_dir.name)
    assert run_cli("verify", str(run_dir), env=cli_env(tmp_path)).returncode == 0


def test_next_run_recovers_orphans_first(runs_dir: Path, tmp_path: Path) -> None:
    orphan = runs_dir / "20200101T000000Z-r1-string-slugify-1"
    orphan.mkdir(parents=True)
    (orphan / ".run.lock").touch()
    (orphan / "events.jsonl").write_bytes(b'{"torn":')
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.returncode == 0
    assert "recovered orphaned run" in result.stderr
    assert json.loads((orphan / "report.json").read_text())["verdict"] == "error"
    assert run_cli("verify", str(orphan), env=cli_env(tmp_path)).returncode == 0


def _wait_for_agent(runs_dir: Path, marker: bytes) -> Path:
    """The run dir once the fake agent has said ``marker`` on its stdout (an explicit signal, not a delay)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run in runs_dir.glob("*"):
            stdout = run / "backend" / "stdout.txt"
            if stdout.exists() and marker in stdout.read_bytes():
                return run
        time.sleep(0.05)
    raise AssertionError(f"the fake agent never said {marker!r}")


def test_unknown_fixture_is_a_usage_error(runs_dir: Path, tmp_path: Path) -> None:
    result = run_cli("run", "--fixture", "no-such-fixture", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "no-such-fixture" in result.stderr
    assert not runs_dir.exists() or not list(runs_dir.iterdir())


def test_invalid_user_fixture_is_blocked_with_a_report(runs_dir: Path, tmp_path: Path) -> None:
    fixture = tmp_path / "bad-fixture"
    (fixture / "repo").mkdir(parents=True)
    (fixture / "fixture.toml").write_text('id = "bad"\ntitle = "t"\ninstructions = "i"\n'
                                          '[tests]\ncommand = ["true"]\ntimeout_seconds = 5\n'
                                          'paths = ["../../etc/passwd"]\n[solution]\npatch = "s.patch"\n')
    result = run_cli("run", "--fixture", str(fixture), "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.report and result.report["failure_class"] == "fixture-invalid"
    assert result.report["backend"]["process_started"] is False


def test_outside_symlink_fixture_is_blocked(runs_dir: Path, tmp_path: Path) -> None:
    import shutil

    from cto_harness.fixtures import resolve_fixture

    fixture = tmp_path / "linked"
    shutil.copytree(resolve_fixture("r1-string-slugify"), fixture)
    os.symlink("/etc/passwd", fixture / "repo" / "passwd")
    result = run_cli("run", "--fixture", str(fixture), "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.returncode == 3
    assert result.report and result.report["failure_class"] == "fixture-invalid"
    assert result.run_dir and not (result.run_dir / "workspace" / "passwd").exists()


_RECORD_DISK_SYNCS = """
import os, sys
log = open(sys.argv[1], "a", buffering=1)
real_fsync, real_replace = os.fsync, os.replace
def fsync(fd):
    log.write("fsync " + os.readlink(f"/proc/self/fd/{fd}") + "\\n")
    real_fsync(fd)
def replace(src, dst, **kwargs):
    real_replace(src, dst, **kwargs)
    log.write("replace " + os.fspath(dst) + "\\n")
os.fsync, os.replace = fsync, replace
sys.argv = ["cto-harness", *sys.argv[2:]]
from cto_harness.cli import main
main()
"""


def test_the_event_chain_is_on_disk_before_the_report_that_names_it(runs_dir: Path, tmp_path: Path) -> None:
    """Events are fsynced at checkpoints, not one by one (issue 12: ~2.7 ms per fsync here),
    but never after the report: a report on disk never names a chain the disk may not hold."""
    log = tmp_path / "syncs.log"
    proc = subprocess.run([sys.executable, "-c", _RECORD_DISK_SYNCS, str(log), "run", "--runs-dir", str(runs_dir)],
                          capture_output=True, text=True, env=cli_env(tmp_path), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    steps = log.read_text().splitlines()
    report_done = next(i for i, step in enumerate(steps)
                       if step.startswith("replace ") and step.endswith("/report.json"))
    event_syncs = [i for i, step in enumerate(steps) if step.startswith("fsync ") and step.endswith("/events.jsonl")]
    assert any(i < report_done for i in event_syncs), steps
    assert any(step.startswith("fsync ") and "/.report.json." in step for step in steps[:report_done]), steps
    events = (next(runs_dir.iterdir()) / "events.jsonl").read_text().splitlines()
    assert len(event_syncs) <= 3 < len(events), (event_syncs, len(events))


def test_the_reported_platform_is_what_the_standard_library_says(runs_dir: Path, tmp_path: Path) -> None:
    """harness.platform is built from os.uname and confstr (no ``uname -p`` process per run)."""
    import platform

    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.report is not None, result.stderr
    assert result.report["harness"]["platform"] == platform.platform()
