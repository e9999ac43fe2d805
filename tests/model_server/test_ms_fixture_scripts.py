"""The built-in fixtures' model scripts really solve their tasks.

Each script is served by the real server to three tool dialects and the returned tool
calls are carried out here (a bash-only client's commands through a real bash; Claude
Code's Edit and Codex's apply_patch by their documented semantics), then the fixture's own
tests run on the result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ms_helpers import CODEX_SHELL_TOOLS, MINI_TOOLS, PI_TOOLS, chat_tool_results, post, responses_tool_results

import cto_harness
from cto_harness.model_server import ScriptedModelServer, load_script

BUILTIN = Path(cto_harness.__file__).parent / "fixtures" / "builtin"
SCRIPTS = sorted(BUILTIN.glob("*/model-script.toml"))


def _fixture_tests_pass(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _apply_v4a(repo: Path, patch: str) -> None:
    """Apply the single-hunk ``*** Update File`` patches the server writes, as Codex would."""
    lines = patch.splitlines()
    assert lines[0] == "*** Begin Patch" and lines[-1] == "*** End Patch"
    assert lines[1].startswith("*** Update File: ") and lines[2] == "@@"
    path = repo / lines[1].removeprefix("*** Update File: ")
    old = [line[1:] for line in lines[3:-1] if line.startswith("-")]
    new = [line[1:] for line in lines[3:-1] if line.startswith("+")]
    current = path.read_text().split("\n")
    starts = [i for i in range(len(current)) if current[i : i + len(old)] == old]
    assert len(starts) == 1, f"patch context must match exactly once in {path.name}"
    start = starts[0]
    path.write_text("\n".join(current[:start] + new + current[start + len(old) :]))


def _apply_edit(repo: Path, args: dict[str, Any]) -> None:
    """pi's ``edit``: exact, unique text replacement."""
    path = repo / args["path"]
    text = path.read_text()
    assert text.count(args["oldText"]) == 1, "edit tools require a unique old text"
    path.write_text(text.replace(args["oldText"], args["newText"]))


@pytest.mark.skipif(not SCRIPTS, reason="no built-in fixture has a model-script.toml yet")
@pytest.mark.parametrize("script_path", SCRIPTS, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("dialect", ["bash-only", "pi", "codex"])
def test_fixture_script_solves_the_task(script_path: Path, dialect: str, tmp_path: Path) -> None:
    fixture = script_path.parent
    repo = tmp_path / "repo"
    shutil.copytree(fixture / "repo", repo)
    if dialect == "bash-only":
        assert _fixture_tests_pass(repo).returncode != 0, "the unsolved fixture must fail its tests"
    script = load_script(script_path)
    with ScriptedModelServer(script) as server:
        for n in range(len(script.actions) + 1):
            if dialect == "codex":
                items = [{"role": "user", "content": "task"}, *responses_tool_results(n)]
                body = {"model": "m", "input": items, "tools": CODEX_SHELL_TOOLS}
                (item,) = post(server.base_url, "/v1/responses", body).json()["output"]
                if item["type"] == "message":
                    assert item["content"][0]["text"] == script.finish_text
                    break
                if item["type"] == "custom_tool_call":
                    _apply_v4a(repo, item["input"])
                    continue
                command = json.loads(item["arguments"])["command"]
            else:
                messages = [{"role": "user", "content": "task"}, *chat_tool_results(n)]
                tools = MINI_TOOLS if dialect == "bash-only" else PI_TOOLS
                message = post(
                    server.base_url, "/v1/chat/completions", {"model": "m", "messages": messages, "tools": tools}
                ).json()
                message = message["choices"][0]["message"]
                if "tool_calls" not in message:
                    assert message["content"] == script.finish_text
                    break
                call = message["tool_calls"][0]["function"]
                args = json.loads(call["arguments"])
                if call["name"] == "edit":
                    _apply_edit(repo, args)
                    continue
                if call["name"] == "read":
                    assert (repo / args["path"]).is_file()
                    continue
                command = args["command"]
            if isinstance(command, list):
                command = command[-1]
            if "pytest" in command:
                continue  # the check below runs the tests with this interpreter
            subprocess.run(["bash", "-c", command], cwd=repo, check=True, capture_output=True, timeout=30)
        else:
            pytest.fail("the script never finished")
    result = _fixture_tests_pass(repo)
    assert result.returncode == 0, result.stdout + result.stderr
