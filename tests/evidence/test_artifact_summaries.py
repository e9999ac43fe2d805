"""Summarised trees (workspace/, its .git, baseline.git) still expose every edit to verify."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli


def _first_object(git_dir: Path) -> Path:
    return next(p for p in sorted((git_dir / "objects").glob("??/*")) if p.is_file())


def _flip_last_byte(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


EDITS: dict[str, Callable[[Path], None]] = {
    "workspace file, same size": lambda run: _flip_last_byte(run / "workspace" / "strings.py"),
    "workspace file added": lambda run: (run / "workspace" / "new.py").write_text("x\n"),
    "workspace .git object": lambda run: _flip_last_byte(_first_object(run / "workspace" / ".git")),
    "baseline object, same size": lambda run: _flip_last_byte(_first_object(run / "baseline.git")),
    "baseline object added": lambda run: (run / "baseline.git" / "objects" / "ab").mkdir(exist_ok=True)
    or (run / "baseline.git" / "objects" / "ab" / ("c" * 38)).write_bytes(b"junk"),
    "baseline config": lambda run: (run / "baseline.git" / "config").write_text("[core]\n\tfsmonitor = evil\n"),
    "baseline ref": lambda run: (run / "baseline.git" / "HEAD").write_text("ref: refs/heads/other\n"),
    "baseline ref packed elsewhere": lambda run: (run / "baseline.git" / "refs" / "heads" / "main").unlink()
    or (run / "baseline.git" / "packed-refs").write_text(f"{'1' * 40} refs/heads/main\n"),
}


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("summaries")
    result = run_cli("run", "--runs-dir", str(base / "runs"), env=cli_env(base))
    assert result.run_dir is not None and result.returncode == 0, result.stderr
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["artifacts"]["baseline.git/"]["kind"] == "git"
    assert len(report["artifacts"]["baseline.git/"]["commit"]) == 40
    assert report["artifacts"]["workspace/.git/"]["tree"] == report["artifacts"]["baseline.git/"]["tree"]
    by_git = subprocess.run(["git", f"--git-dir={result.run_dir / 'baseline.git'}", "rev-parse", "HEAD^{commit}",
                             "HEAD^{tree}"], capture_output=True, text=True, check=True).stdout.split()
    assert [report["artifacts"]["baseline.git/"][k] for k in ("commit", "tree")] == by_git  # read without git
    return base, result.run_dir


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_inside_a_summarised_tree_fails_verify(edit: str, signed_run: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    base, run_dir = signed_run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, symlinks=True)
    assert run_cli("verify", str(copy), env=cli_env(base)).returncode == 0
    EDITS[edit](copy)
    verified = run_cli("verify", str(copy), env=cli_env(base))
    assert verified.returncode == 1, verified.stdout
