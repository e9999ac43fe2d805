"""The bubblewrap sandbox keeps a provider's writes inside workspace/, task/ and backend/."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli

ESCAPE = textwrap.dedent(
    """\
    import pathlib, sys
    workspace = pathlib.Path(sys.argv[1])
    run_dir = workspace.parent
    for target in (run_dir / "evil.txt", run_dir / "baseline.git" / "evil.txt", pathlib.Path("/tmp/evil-escape")):
        try:
            target.write_text("escaped")
            print("wrote", target)
        except OSError as exc:
            print("refused", target, exc.strerror)
    strings = workspace / "strings.py"
    strings.write_text(strings.read_text().replace(
        'return text.strip().replace(" ", "-")',
        'import re\\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")'))
    """
)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def _escape_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    script = tmp_path / "escape-agent"
    script.write_text(f"#!{sys.executable}\n{ESCAPE}")
    script.chmod(0o755)
    return cli_env(tmp_path, CTO_HARNESS_COMMAND_BIN=str(script), CTO_HARNESS_COMMAND_ARGS="{workspace}",
                   CTO_HARNESS_COMMAND_MODEL_PROVIDER="local", CTO_HARNESS_COMMAND_MODEL="none",
                   CTO_HARNESS_ALLOW_UNADMITTED="1", **extra)


@needs_bwrap
def test_provider_cannot_write_evidence_outside_its_dirs(tmp_path: Path, runs_dir: Path) -> None:
    Path("/tmp/evil-escape").unlink(missing_ok=True)
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir),
                     env=_escape_env(tmp_path, CTO_HARNESS_SANDBOX="bwrap"))
    assert result.report is not None and result.run_dir is not None
    assert (result.report["verdict"], result.report["backend"]["sandbox"]) == ("pass", "bwrap")
    assert not (result.run_dir / "evil.txt").exists()
    assert not (result.run_dir / "baseline.git" / "evil.txt").exists()
    assert not Path("/tmp/evil-escape").exists()
    assert result.run_dir is not None and run_cli("verify", str(result.run_dir)).returncode == 0


def test_without_a_sandbox_the_report_says_so(tmp_path: Path, runs_dir: Path) -> None:
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir),
                     env=_escape_env(tmp_path, CTO_HARNESS_SANDBOX="none"))
    assert result.report is not None and result.run_dir is not None
    assert result.report["backend"]["sandbox"] == "none"
    assert (result.run_dir / "evil.txt").exists(), "without bubblewrap the run dir is writable"
    Path("/tmp/evil-escape").unlink(missing_ok=True)


def test_unknown_sandbox_mode_blocks(tmp_path: Path, runs_dir: Path) -> None:
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path, CTO_HARNESS_SANDBOX="chroot"))
    assert result.report is not None
    assert (result.report["verdict"], result.report["failure_class"]) == ("blocked", "provider-unavailable")
    assert result.report["backend"]["process_started"] is False
