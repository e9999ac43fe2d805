"""proc.git_env / git_config_args: harness-side git never runs configuration someone planted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cto_harness.proc import git_config_args, git_env


def _planted_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose config and whose user's global config run a command on ``git status``."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=git_env())
    (repo / "f.txt").write_text("x\n")
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    script.chmod(0o755)
    with open(repo / ".git" / "config", "a") as handle:
        handle.write(f"[core]\n\tfsmonitor = {script}\n")
    return repo, marker


def test_repository_config_does_not_run_under_the_safe_arguments(tmp_path: Path) -> None:
    repo, marker = _planted_repo(tmp_path)
    subprocess.run(["git", *git_config_args(), "status", "--porcelain"], cwd=repo, env=git_env(), check=True,
                   capture_output=True)
    assert not marker.exists()
    subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=git_env(), capture_output=True)
    assert marker.exists(), "the planted fsmonitor runs without the -c settings (the test proves nothing)"


def test_the_callers_global_config_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    marker = tmp_path / "ran-global"
    (home / ".gitconfig").write_text(f"[alias]\n\tst = !echo ran > {marker}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    subprocess.run(["git", *git_config_args(), "st"], cwd=tmp_path, env=git_env(), capture_output=True)
    assert not marker.exists()
    subprocess.run(["git", "st"], cwd=tmp_path, env=dict(os.environ), capture_output=True)
    assert marker.exists(), "the caller's config is read without git_env (the test proves nothing)"


def test_inherited_environment_is_kept_but_made_non_interactive() -> None:
    env = git_env(inherit={"HTTPS_PROXY": "http://proxy:3128", "GIT_TERMINAL_PROMPT": "1"})
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == "true"
    assert "protocol.allow=never" not in git_config_args(transport=True)
    assert "protocol.allow=never" in git_config_args()
