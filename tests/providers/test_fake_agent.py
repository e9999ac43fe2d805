"""The fake provider's agent: a real child process that starts with few imports."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cto_harness.providers.fake._provider import AGENT_SCRIPT

HEAVY = ("argparse", "subprocess", "pathlib", "signal", "site", "json", "re")
"""Modules the fix scenario's agent must not import (each is part of every fake-lane run)."""


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("old\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    return repo


def _task(tmp_path: Path, repo: Path, scenario: str) -> Path:
    (repo / "a.txt").write_text("new\n")
    patch = subprocess.run(["git", "-C", str(repo), "diff"], capture_output=True, check=True).stdout
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "a.txt"], check=True)
    (tmp_path / "solution.patch").write_bytes(patch)
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"fixture_id": "t", "scenario": scenario, "grading_tests": [],
                                "solution_patch": str(tmp_path / "solution.patch")}))
    return task


def test_fix_applies_the_patch_without_heavy_imports(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    task = _task(tmp_path, repo, "fix")
    agent = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(AGENT_SCRIPT), "--task", str(task)],
                           cwd=repo, capture_output=True, text=True, timeout=60, check=False)
    assert agent.returncode == 0, agent.stderr
    assert (repo / "a.txt").read_text() == "new\n"
    assert "<<<AGENT_RESULT" in agent.stdout
    assert not _imported(agent.stderr) & set(HEAVY)


def test_a_failed_git_apply_fails_the_agent(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    task = _task(tmp_path, repo, "fix")
    (repo / "a.txt").write_text("something else\n")
    agent = subprocess.run([sys.executable, "-I", "-S", str(AGENT_SCRIPT), "--task", str(task)],
                           cwd=repo, capture_output=True, text=True, timeout=60, check=False)
    assert agent.returncode != 0
    assert "git apply exited" in agent.stderr and "<<<AGENT_RESULT" not in agent.stdout


def test_bad_arguments_are_a_usage_error(tmp_path: Path) -> None:
    agent = subprocess.run([sys.executable, "-I", "-S", str(AGENT_SCRIPT), "--tusk", "x"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert agent.returncode == 2 and "usage:" in agent.stderr


@functools.cache
def _agent_module() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_agent_under_test", AGENT_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(value=_JSON)
@settings(max_examples=200, deadline=None)
def test_the_agents_json_is_the_json_packages(value: object) -> None:
    """The agent reads and writes JSON with json's C half: same values, same bytes as json."""
    agent = _agent_module()
    assert agent.dumps(value) == json.dumps(value, sort_keys=True)  # type: ignore[attr-defined]
    assert agent.loads(" " + json.dumps(value) + "\n") == value  # type: ignore[attr-defined]
