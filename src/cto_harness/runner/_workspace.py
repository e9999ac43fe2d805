"""The run's workspace: a git-initialised copy of the fixture, and diffs against it.

Two repositories see the workspace. ``workspace/.git`` belongs to the agent (Case
commits there). ``<run>/baseline.git`` belongs to the harness: the patch is computed
against its baseline commit, so an agent that rewrites or deletes its own ``.git`` still
cannot hide or fake a change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cto_harness.proc import Captured, run_captured

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "cto-harness",
    "GIT_AUTHOR_EMAIL": "harness@cto-harness.invalid",
    "GIT_COMMITTER_NAME": "cto-harness",
    "GIT_COMMITTER_EMAIL": "harness@cto-harness.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
JUNK_EXCLUDES = (":(exclude,glob)**/__pycache__/**", ":(exclude,glob)**/.pytest_cache/**")
"""Interpreter caches a test run leaves behind are never part of the agent's change."""
GIT_TIMEOUT_S = 120.0


class WorkspaceError(RuntimeError):
    """A git step on the workspace failed (a harness-side failure)."""


def git_env() -> dict[str, str]:
    """A git environment that ignores the caller's and the system's git config."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **GIT_IDENTITY,
    }


def git(args: Sequence[str], *, cwd: Path, git_dir: Path | None = None, work_tree: Path | None = None,
        index_file: Path | None = None) -> Captured:
    env = git_env()
    if index_file is not None:
        env["GIT_INDEX_FILE"] = str(index_file)
    prefix = ["git"]
    if git_dir is not None:
        prefix.append(f"--git-dir={git_dir}")
    if work_tree is not None:
        prefix.append(f"--work-tree={work_tree}")
    argv = [*prefix, "-c", "core.autocrlf=false", "-c", "core.fileMode=true", *args]
    completed = run_captured(argv, cwd=cwd, env=env, timeout_s=GIT_TIMEOUT_S)
    if not completed.ok:
        err = completed.text("stderr").strip().splitlines()
        detail = "timed out" if completed.timed_out else (err[-1] if err else completed.returncode)
        raise WorkspaceError(f"git {' '.join(args[:2])} failed: {detail}")
    return completed


def init_baseline(workspace: Path, baseline_git: Path) -> str:
    """Commit the fixture copy in both repositories; return the harness's baseline commit."""
    for git_dir in (None, baseline_git):
        if git_dir is None:
            git(["init", "-q", "-b", "main"], cwd=workspace)
        else:
            git(["init", "-q", "--bare", str(git_dir)], cwd=workspace)
        git(["add", "-A", "-f"], cwd=workspace, git_dir=git_dir, work_tree=workspace if git_dir else None)
        git(["commit", "-q", "--allow-empty", "-m", "cto-harness baseline"], cwd=workspace,
            git_dir=git_dir, work_tree=workspace if git_dir else None)
    head = git(["rev-parse", "HEAD"], cwd=workspace, git_dir=baseline_git)
    return head.stdout.decode().strip()


@dataclass(frozen=True)
class Changes:
    files: list[str]
    patch: bytes


def compute_changes(workspace: Path, baseline_git: Path, baseline: str,
                    exclude_dirs: Sequence[str] = ()) -> Changes:
    """Everything the agent changed against the baseline: edits, new files, its own commits."""
    index = baseline_git / "harness-diff.index"
    index.unlink(missing_ok=True)
    excludes = [*JUNK_EXCLUDES, *(f":(exclude){d}" for d in exclude_dirs)]

    def run(*args: str) -> bytes:
        return git(args, cwd=workspace, git_dir=baseline_git, work_tree=workspace, index_file=index).stdout

    try:
        run("read-tree", baseline)
        run("add", "-A", "-f", "--", ".", *excludes)
        names = run("diff", "--cached", "--name-only", "-z", "--no-renames", baseline)
        patch = run("diff", "--cached", "--binary", "--no-renames", "--full-index", baseline)
    finally:
        index.unlink(missing_ok=True)
    files = sorted(name.decode("utf-8", "surrogateescape") for name in names.split(b"\0") if name)
    return Changes(files=files, patch=patch)
