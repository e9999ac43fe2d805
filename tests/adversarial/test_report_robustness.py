"""A report whatever the agent does (issue 9 §3, §4): one hostile agent per attack.

Each agent is a script run through the ``command`` provider. Each test asserts the report
exists and verifies (or, for the forgery, that verify fails) and that nothing was written
outside the run dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import CliRun, cli_env, run_cli
from tests.evidence.deep import make_chain, remove_tree
from tests.evidence.forge import forge_pass

FIX = textwrap.dedent(
    """\
    strings = workspace / "strings.py"
    strings.write_text(strings.read_text().replace(
        'return text.strip().replace(" ", "-")',
        'import re\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")'))
    """
)


def _agent_env(tmp_path: Path, body: str, **extra: str) -> dict[str, str]:
    script = tmp_path / "hostile-agent"
    script.write_text(f"#!{sys.executable}\nimport os, pathlib, sys\nworkspace = pathlib.Path(sys.argv[1])\n"
                      f"backend = workspace.parent / 'backend'\n{body}")
    script.chmod(0o755)
    return cli_env(tmp_path, CTO_HARNESS_COMMAND_BIN=str(script), CTO_HARNESS_COMMAND_ARGS="{workspace}",
                   CTO_HARNESS_COMMAND_MODEL_PROVIDER="local", CTO_HARNESS_COMMAND_MODEL="none",
                   CTO_HARNESS_ALLOW_UNADMITTED="1", **extra)


def _run(tmp_path: Path, runs_dir: Path, body: str, *args: str, timeout: float = 300, **extra: str) -> CliRun:
    return run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir), *args,
                   env=_agent_env(tmp_path, body, **extra), timeout=timeout)


def _assert_verifies(tmp_path: Path, result: CliRun) -> dict[str, object]:
    assert result.run_dir is not None and result.report is not None, result.stderr[-3000:]
    verified = run_cli("verify", str(result.run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 0, verified.stderr
    return result.report


def _outside_untouched(tmp_path: Path, runs_dir: Path) -> None:
    """Nothing but the runs dir, the harness home and the agent script appeared in tmp_path."""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"runs", "home", "hostile-agent"}
                                                                & {p.name for p in tmp_path.iterdir()})


def test_non_utf8_and_newline_names_are_escaped(tmp_path: Path, runs_dir: Path) -> None:
    body = FIX + textwrap.dedent(
        """\
        open(os.path.join(bytes(workspace), b"bad\\xff\\nname.py"), "wb").write(b"x = 1\\n")
        open(os.path.join(bytes(workspace), b"line\\nbreak.txt"), "wb").write(b"y\\n")
        open(os.path.join(bytes(backend), b"log\\xfe.txt"), "wb").write(b"z\\n")
        os.symlink(b"/etc/\\xff", os.path.join(bytes(backend), b"link\\x1b[31m"))
        """
    )
    result = _run(tmp_path, runs_dir, body)
    report = _assert_verifies(tmp_path, result)
    changes = report["changes"]
    assert isinstance(changes, dict)
    assert "bad\\xff\\nname.py" in changes["files"] and "line\\nbreak.txt" in changes["files"]
    assert report["artifacts"]["backend/link\\x1b[31m"] == {  # type: ignore[index]
        "sha256": None, "bytes": 0, "symlink": "/etc/\\xff"}
    assert "backend/log\\xfe.txt" in report["artifacts"]  # type: ignore[operator]
    assert report["verdict"] == "pass"
    _outside_untouched(tmp_path, runs_dir)


def _run_bytes(tmp_path: Path, runs_dir: Path, *args: bytes) -> tuple[Path, dict[str, Any]]:
    argv = [sys.executable.encode(), b"-m", b"cto_harness", b"run", b"--provider", b"command",
            b"--runs-dir", bytes(runs_dir), *args, b"--json"]
    proc = subprocess.run(argv, capture_output=True, env=_agent_env(tmp_path, FIX), timeout=300, check=False)
    assert proc.returncode in (0, 1, 3), proc.stderr.decode(errors="replace")[-3000:]
    report = json.loads(proc.stdout)
    run_dir = runs_dir / report["run_id"]
    assert run_cli("verify", str(run_dir), env=cli_env(tmp_path)).returncode == 0
    return run_dir, report


def test_non_utf8_fixture_dir_name_and_model_value(tmp_path: Path, runs_dir: Path) -> None:
    from cto_harness.fixtures import builtin_fixtures_dir

    fixture = bytes(tmp_path) + b"/fx-\xff\nname"
    shutil.copytree(builtin_fixtures_dir() / "r1-string-slugify", os.fsdecode(fixture))
    _, report = _run_bytes(tmp_path, runs_dir, b"--fixture", fixture, b"--model", b"m\xff\nx")
    assert report["model"]["model"] == "m\\xff\\nx"
    assert report["fixture"]["id"] == "r1-string-slugify"
    assert report["verdict"] == "pass"


def test_non_utf8_name_in_a_fixture_blocks_with_a_report(tmp_path: Path, runs_dir: Path) -> None:
    from cto_harness.fixtures import builtin_fixtures_dir

    fixture = bytes(tmp_path) + b"/fx-\xfe"
    shutil.copytree(builtin_fixtures_dir() / "r1-string-slugify", os.fsdecode(fixture))
    Path(os.fsdecode(fixture + b"/repo/odd-\xfe\n.txt")).write_bytes(b"odd\n")
    _, report = _run_bytes(tmp_path, runs_dir, b"--fixture", fixture)
    assert (report["verdict"], report["failure_class"]) == ("blocked", "fixture-invalid")
    assert "odd-\\xfe" in report["reasons"][0]


def test_deep_tree_gives_a_report_and_later_runs_work(tmp_path: Path, runs_dir: Path) -> None:
    try:
        body = FIX + textwrap.dedent(
            """\
            os.chdir(workspace)
            for _ in range(1500):
                os.mkdir("d")
                os.chdir("d")
            open("leaf.txt", "w").write("deep\\n")
            """
        )
        result = _run(tmp_path, runs_dir, body)
        report = _assert_verifies(tmp_path, result)
        assert any(s["reason"] == "too deep" for s in report["artifacts_skipped"])  # type: ignore[union-attr]
        # The deep chain is part of the patch: the verifier grades it (the fix passes), and
        # neither its symlink check nor its clean-up may trip over the depth (a harness error).
        assert report["verdict"] == "pass", report["reasons"]
        again = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
        assert again.returncode == 0, again.stderr[-3000:]
        orphan = runs_dir / "20200101T000000Z-r1-string-slugify-1"
        (orphan / "backend").mkdir(parents=True)
        (orphan / ".run.lock").touch()
        (orphan / "events.jsonl").write_bytes(b'{"torn":')
        make_chain(orphan / "backend", 1500)
        recovered = run_cli("runs", "recover", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
        assert recovered.returncode == 0 and str(orphan) in recovered.stdout, recovered.stderr[-3000:]
        assert run_cli("verify", str(orphan), env=cli_env(tmp_path)).returncode == 0
    finally:
        remove_tree(runs_dir)  # pytest's own cleanup of tmp dirs recurses


def test_sparse_huge_file_is_skipped_with_its_size(tmp_path: Path, runs_dir: Path) -> None:
    size = 200 * 1024**3
    body = FIX + f"with open(backend / 'huge.bin', 'wb') as f:\n    f.truncate({size})\n"
    started = time.monotonic()
    result = _run(tmp_path, runs_dir, body, timeout=180)
    elapsed = time.monotonic() - started
    report = _assert_verifies(tmp_path, result)
    skipped = {s["path"]: s for s in report["artifacts_skipped"]}  # type: ignore[union-attr]
    assert skipped["backend/huge.bin"] == {"path": "backend/huge.bin", "bytes": size, "reason": "byte budget"}
    assert report["artifacts"]["backend/huge.bin"]["sha256"] is None  # type: ignore[index]
    assert report["duration_s"] <= elapsed and report["duration_s"] < 60  # type: ignore[operator]
    assert report["verdict"] == "pass"


def test_timeouts_must_be_finite_and_positive(tmp_path: Path, runs_dir: Path) -> None:
    for value in ("nan", "inf", "-inf", "0", "-1"):
        result = _run(tmp_path, runs_dir, FIX, "--timeout", value)
        assert result.returncode == 2, (value, result.stdout, result.stderr)
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
    for value in ("nan", "inf", "0"):  # from the environment: blocked, with a report, nothing started
        result = _run(tmp_path, runs_dir, FIX, CTO_HARNESS_COMMAND_TIMEOUT_SECONDS=value)
        fake = run_cli("run", "--runs-dir", str(runs_dir),
                       env=cli_env(tmp_path, CTO_HARNESS_FAKE_TIMEOUT_SECONDS=value))
        for run in (result, fake):
            assert run.returncode == 3 and run.report is not None, (value, run.stdout, run.stderr)
            assert run.report["backend"]["process_started"] is False


SECRET = "tok-5up3r-s3cr3t-v4lu3"


def test_secret_in_file_names_and_contents_is_redacted_before_evidence(tmp_path: Path, runs_dir: Path) -> None:
    body = FIX + textwrap.dedent(
        """\
        secret = os.environ["MY_TOKEN"]
        (workspace / f"leak-{secret}.py").write_text(f"TOKEN = {secret!r}\\n")
        (backend / f"dir-{secret}").mkdir()
        (backend / f"dir-{secret}" / f"{secret}.log").write_text(secret)
        os.symlink(f"/tmp/{secret}", backend / "link")
        print("token is", secret)
        """
    )
    result = _run(tmp_path, runs_dir, body, CTO_HARNESS_COMMAND_PASS_ENV="MY_TOKEN", MY_TOKEN=SECRET)
    report = _assert_verifies(tmp_path, result)
    assert result.run_dir is not None
    assert report["verdict"] == "pass"
    for root, dirs, files in os.walk(result.run_dir):
        if os.path.basename(root) == "objects":
            dirs[:] = []  # git object stores hold the agent's change as it made it (documented)
            continue
        for name in dirs + files:
            assert SECRET not in name, os.path.join(root, name)
            path = os.path.join(root, name)
            if os.path.islink(path):
                assert SECRET not in os.readlink(path)
            elif os.path.isfile(path):
                assert SECRET.encode() not in Path(path).read_bytes(), path


def test_forged_verdict_with_rehashed_last_event_fails_verify(tmp_path: Path, runs_dir: Path) -> None:
    result = _run(tmp_path, runs_dir, "print('doing nothing')\n")
    assert result.report is not None and result.run_dir is not None
    assert result.report["verdict"] == "fail"
    assert run_cli("verify", str(result.run_dir), env=cli_env(tmp_path)).returncode == 0
    forge_pass(result.run_dir)
    verified = run_cli("verify", str(result.run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 1
    assert "attestation" in verified.stderr


@pytest.mark.parametrize("planted", ["symlink", "dir-with-symlink"])
def test_state_dir_copy_never_writes_through_agent_symlinks(tmp_path: Path, planted: str) -> None:
    from cto_harness.runner import keep_state_dir

    outside = tmp_path / "host"
    outside.mkdir()
    workspace = tmp_path / "run" / "workspace"
    backend = tmp_path / "run" / "backend"
    (workspace / ".case").mkdir(parents=True)
    (workspace / ".case" / "run-log.jsonl").write_text("{}\n")
    (workspace / ".case" / "escape").symlink_to(outside)
    backend.mkdir()
    if planted == "symlink":
        (backend / "case-state").symlink_to(outside)
    else:
        (backend / "case-state").mkdir()
        (backend / "case-state" / "run-log.jsonl").symlink_to(outside / "written.txt")
    keep_state_dir(workspace, ".case", backend, "case-state")
    assert list(outside.iterdir()) == []
    copied = backend / "case-state"
    assert not copied.is_symlink() and (copied / "run-log.jsonl").read_text() == "{}\n"
    assert (copied / "escape").is_symlink()
