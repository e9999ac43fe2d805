"""Step selection, tool mapping per client, side requests and text-actions mode (real HTTP)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ms_helpers import (
    CLAUDE_TOOLS,
    CODEX_EXEC_TOOLS,
    CODEX_SHELL_TOOLS,
    MINI_TOOLS,
    PI_TOOLS,
    anthropic_tool_results,
    chat_tool_results,
    post,
    responses_tool_results,
    schema,
    script,
)

from cto_harness.model_server import ScriptedModelServer, parse_script

WRITE_SCRIPT = {
    "steps": [
        {"action": "read", "path": "a.txt"},
        {"action": "replace", "path": "a.txt", "old": 'it\'s "quoted" $HOME `x`\n', "new": "fixed 'it'\n"},
        {"action": "write", "path": "sub/new.txt", "content": "line 1\n'two' \"three\" $(four)\n"},
        {"action": "run", "command": "cat sub/new.txt"},
        {"action": "finish", "text": "AGENT_RESULT\nstatus: done\nEND_AGENT_RESULT"},
    ]
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(script()) as srv:
        yield srv


@pytest.fixture(scope="module")
def write_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(parse_script(WRITE_SCRIPT)) as srv:
        yield srv


def chat_call(base_url: str, tools: list[dict[str, Any]], n: int, system: str = "sys") -> dict[str, Any]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "task"}]
    body = {"model": "m", "messages": messages + chat_tool_results(n), "tools": tools}
    message = post(base_url, "/v1/chat/completions", body).json()["choices"][0]["message"]
    if "tool_calls" not in message:
        return {"text": message["content"]}
    call = message["tool_calls"][0]
    if call["type"] == "custom":
        return {"name": call["custom"]["name"], "input": call["custom"]["input"]}
    return {"name": call["function"]["name"], "args": json.loads(call["function"]["arguments"])}


def responses_call(base_url: str, tools: list[dict[str, Any]], n: int, kind: str = "function_call_output") -> Any:
    body = {"model": "m", "input": [{"role": "user", "content": "task"}, *responses_tool_results(n, kind)]}
    output = post(base_url, "/v1/responses", {**body, "tools": tools}).json()["output"]
    (item,) = output
    if item["type"] == "message":
        return {"text": item["content"][0]["text"]}
    if item["type"] == "custom_tool_call":
        return {"name": item["name"], "input": item["input"]}
    return {"name": item["name"], "args": json.loads(item["arguments"])}


def anthropic_call(base_url: str, tools: list[dict[str, Any]], n: int, system: str = "sys") -> Any:
    messages = [{"role": "user", "content": "task"}, *anthropic_tool_results(n)]
    body = {"model": "m", "max_tokens": 100, "system": system, "messages": messages, "tools": tools}
    (block,) = post(base_url, "/v1/messages", body).json()["content"]
    if block["type"] == "text":
        return {"text": block["text"]}
    return {"name": block["name"], "args": block["input"]}


# -- step selection by tool-result count --------------------------------------------------------


def test_chat_step_follows_tool_results(server: ScriptedModelServer) -> None:
    got = [chat_call(server.base_url, PI_TOOLS, n) for n in range(5)]
    assert got[0] == {"name": "read", "args": {"path": "strings.py"}}
    assert got[1] == {
        "name": "edit",
        "args": {"path": "strings.py", "oldText": "    return text\n", "newText": "    return text.lower()\n"},
    }
    assert got[2] == {"name": "bash", "args": {"command": "python -m pytest -q"}}
    assert got[3] == got[4] == {"text": "Fixed slugify."}
    steps = [e["step"] for e in server.requests if e["protocol"] == "openai-chat"][-5:]
    assert steps == [0, 1, 2, 3, 3]


@pytest.mark.parametrize("kind", ["function_call_output", "custom_tool_call_output"])
def test_responses_step_follows_tool_results(server: ScriptedModelServer, kind: str) -> None:
    assert responses_call(server.base_url, CODEX_SHELL_TOOLS, 0, kind)["args"]["command"][2] == "cat -- strings.py"
    assert responses_call(server.base_url, CODEX_SHELL_TOOLS, 1, kind)["name"] == "apply_patch"
    run = responses_call(server.base_url, CODEX_SHELL_TOOLS, 2, kind)
    assert run == {"name": "shell", "args": {"command": ["bash", "-lc", "python -m pytest -q"]}}
    assert responses_call(server.base_url, CODEX_SHELL_TOOLS, 3, kind) == {"text": "Fixed slugify."}


def test_anthropic_step_follows_tool_results(server: ScriptedModelServer) -> None:
    system = "You are Claude Code.\n<env>\nWorking directory: /tmp/work\n</env>"
    got = [anthropic_call(server.base_url, CLAUDE_TOOLS, n, system) for n in range(4)]
    assert got[0] == {"name": "Read", "args": {"file_path": "/tmp/work/strings.py"}}
    assert got[1]["name"] == "Edit" and got[1]["args"]["old_string"] == "    return text\n"
    assert got[2] == {"name": "Bash", "args": {"command": "python -m pytest -q"}}
    assert got[3] == {"text": "Fixed slugify."}


# -- tool mapping per name variant --------------------------------------------------------------


def test_codex_exec_command_and_function_apply_patch(server: ScriptedModelServer) -> None:
    assert responses_call(server.base_url, CODEX_EXEC_TOOLS, 0) == {
        "name": "exec_command",
        "args": {"cmd": "cat -- strings.py"},
    }
    patch = responses_call(server.base_url, CODEX_EXEC_TOOLS, 1)
    assert patch["name"] == "apply_patch"
    assert patch["args"]["input"].startswith("*** Begin Patch\n*** Update File: strings.py\n@@\n-    return text\n")
    assert patch["args"]["input"].endswith("+    return text.lower()\n*** End Patch\n")


def test_bash_only_client_uses_shell_fallbacks(server: ScriptedModelServer) -> None:
    read = chat_call(server.base_url, MINI_TOOLS, 0)
    assert read == {"name": "bash", "args": {"command": "cat -- strings.py"}}
    edit = chat_call(server.base_url, MINI_TOOLS, 1)
    assert edit["name"] == "bash" and edit["args"]["command"].startswith('python3 -c "import base64')


def test_uppercase_bash_read_edit_in_chat(server: ScriptedModelServer) -> None:
    tools = [
        {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in CLAUDE_TOOLS
    ]
    system = "Working directory: /srv/x"
    assert chat_call(server.base_url, tools, 0, system) == {"name": "Read", "args": {"file_path": "/srv/x/strings.py"}}
    assert chat_call(server.base_url, tools, 1, system)["name"] == "Edit"
    assert chat_call(server.base_url, tools, 2, system) == {"name": "Bash", "args": {"command": "python -m pytest -q"}}


def test_anthropic_text_editor_and_bash_builtin_tools(server: ScriptedModelServer) -> None:
    tools = [
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    assert anthropic_call(server.base_url, tools, 0) == {
        "name": "str_replace_based_edit_tool",
        "args": {"command": "view", "path": "strings.py"},
    }
    edit = anthropic_call(server.base_url, tools, 1)
    assert edit["args"] == {
        "command": "str_replace",
        "path": "strings.py",
        "old_str": "    return text\n",
        "new_str": "    return text.lower()\n",
    }
    assert anthropic_call(server.base_url, tools, 2) == {"name": "bash", "args": {"command": "python -m pytest -q"}}


def test_nested_edits_schema(server: ScriptedModelServer) -> None:
    edits = {"type": "array", "items": schema("oldText", "newText")}
    tools = [
        {
            "type": "function",
            "function": {
                "name": "edit",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "edits": edits}},
            },
        },
        *MINI_TOOLS,
    ]
    assert chat_call(server.base_url, tools, 1) == {
        "name": "edit",
        "args": {
            "path": "strings.py",
            "edits": [{"oldText": "    return text\n", "newText": "    return text.lower()\n"}],
        },
    }


def test_write_tools(write_server: ScriptedModelServer) -> None:
    write = chat_call(write_server.base_url, PI_TOOLS, 2)
    assert write == {"name": "write", "args": {"path": "sub/new.txt", "content": "line 1\n'two' \"three\" $(four)\n"}}
    claude = anthropic_call(write_server.base_url, CLAUDE_TOOLS, 2, "Working directory: /w")
    assert claude["name"] == "Write" and claude["args"]["file_path"] == "/w/sub/new.txt"


def test_no_usable_tool_is_reported_in_text(server: ScriptedModelServer) -> None:
    tools = [{"type": "function", "function": {"name": "web_search", "parameters": schema("query")}}]
    reply = chat_call(server.base_url, tools, 0)
    assert "needs a shell tool" in reply["text"] and "web_search" in reply["text"]
    assert server.requests[-1]["kind"] == "no-tool"


def test_shell_fallback_commands_really_edit(write_server: ScriptedModelServer, tmp_path: Path) -> None:
    """Run the fallback commands the server emits through a real bash, in a scratch dir."""
    (tmp_path / "a.txt").write_text('keep\nit\'s "quoted" $HOME `x`\nkeep\n')
    outputs = []
    for n in range(4):
        command = chat_call(write_server.base_url, MINI_TOOLS, n)["args"]["command"]
        proc = subprocess.run(["bash", "-lc", command], cwd=tmp_path, capture_output=True, text=True, check=True)
        outputs.append(proc.stdout)
    assert outputs[0] == 'keep\nit\'s "quoted" $HOME `x`\nkeep\n'
    assert (tmp_path / "a.txt").read_text() == "keep\nfixed 'it'\nkeep\n"
    assert (tmp_path / "sub" / "new.txt").read_text() == "line 1\n'two' \"three\" $(four)\n"
    assert outputs[3] == "line 1\n'two' \"three\" $(four)\n"
    assert chat_call(write_server.base_url, MINI_TOOLS, 4)["text"].startswith("AGENT_RESULT\n")


def test_shell_fallback_replace_fails_loudly_when_old_text_missing(
    write_server: ScriptedModelServer, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("nothing to see\n")
    command = chat_call(write_server.base_url, MINI_TOOLS, 1)["args"]["command"]
    proc = subprocess.run(["bash", "-lc", command], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "old text not found" in proc.stderr
    assert (tmp_path / "a.txt").read_text() == "nothing to see\n"


# -- side requests ------------------------------------------------------------------------------


def test_side_requests_get_plain_text(server: ScriptedModelServer) -> None:
    body = {"model": "claude-haiku", "max_tokens": 50, "messages": [{"role": "user", "content": "Write a title"}]}
    reply = post(server.base_url, "/v1/messages", body).json()
    assert reply["content"] == [{"type": "text", "text": "Scripted session"}]
    assert reply["stop_reason"] == "end_turn"
    entry = server.requests[-1]
    assert entry["mode"] == "side" and entry["step"] is None
    chat = {"model": "m", "messages": [{"role": "user", "content": "summarize"}, *chat_tool_results(2)[1:2]]}
    assert post(server.base_url, "/v1/chat/completions", chat).json()["choices"][0]["message"]["content"] == (
        "Scripted session"
    )


# -- text-actions mode (mini-swe-agent without tool calling) ------------------------------------

MSWEA_V2_SYSTEM = (
    "Your response must contain exactly ONE bash code block.\n```mswea_bash_command\nyour_command_here\n```"
)
MSWEA_V2_TASK = "Please solve this issue: x\nfinish with: `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`."
MSWEA_V2_REGEX = r"```mswea_bash_command\s*\n(.*?)\n```"
MSWEA_V1_REGEX = r"```bash\s*\n(.*?)\n```"


def _observation(i: int) -> dict[str, str]:
    return {"role": "user", "content": f"<returncode>0</returncode>\n<output>\nout {i}\n</output>"}


def _text_chat(base_url: str, system: str, task: str, n_obs: int, *, format_errors: int = 0) -> str:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
    for i in range(n_obs):
        messages += [{"role": "assistant", "content": "THOUGHT: ..."}, _observation(i)]
    for _ in range(format_errors):
        messages += [{"role": "assistant", "content": "?"}, {"role": "user", "content": "Please provide ONE action"}]
    body = {"model": "m", "messages": messages}
    content: str = post(base_url, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"]
    return content


def _only_action(text: str, regex: str) -> str:
    actions = [a.strip() for a in re.findall(regex, text, re.DOTALL)]
    assert len(actions) == 1, text
    return actions[0]


def test_text_actions_mswea_v2_format(server: ScriptedModelServer) -> None:
    replies = [_text_chat(server.base_url, MSWEA_V2_SYSTEM, MSWEA_V2_TASK, n) for n in range(5)]
    assert all(r.startswith("THOUGHT: ") for r in replies)
    actions = [_only_action(r, MSWEA_V2_REGEX) for r in replies]
    assert actions[0] == "cat -- strings.py"
    assert actions[1].startswith('python3 -c "import base64')
    assert actions[2] == "python -m pytest -q"
    assert actions[3] == actions[4] == "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
    assert "Fixed slugify." in replies[3]
    assert server.requests[-1]["mode"] == "text-actions"


def test_text_actions_v1_bash_fence_and_format_errors_do_not_advance(server: ScriptedModelServer) -> None:
    system = "Reply with one ```bash block. Submit with echo MINI_SWE_AGENT_FINAL_OUTPUT"
    reply = _text_chat(server.base_url, system, "task", 1, format_errors=2)
    assert _only_action(reply, MSWEA_V1_REGEX).startswith("python3 -c")
    final = _text_chat(server.base_url, system, "task", 3)
    assert _only_action(final, MSWEA_V1_REGEX) == "echo MINI_SWE_AGENT_FINAL_OUTPUT"


def test_text_actions_over_anthropic_and_responses(server: ScriptedModelServer) -> None:
    messages = [
        {"role": "user", "content": MSWEA_V2_TASK},
        {"role": "assistant", "content": "THOUGHT"},
        {"role": "user", "content": [{"type": "text", "text": _observation(0)["content"]}]},
    ]
    body = {"model": "m", "max_tokens": 100, "system": MSWEA_V2_SYSTEM, "messages": messages}
    text = post(server.base_url, "/v1/messages", body).json()["content"][0]["text"]
    assert _only_action(text, MSWEA_V2_REGEX).startswith("python3 -c")
    items = [{"role": "user", "content": MSWEA_V2_TASK}]
    out = post(server.base_url, "/v1/responses", {"model": "m", "instructions": MSWEA_V2_SYSTEM, "input": items})
    assert _only_action(out.json()["output"][0]["content"][0]["text"], MSWEA_V2_REGEX) == "cat -- strings.py"


def test_forced_text_actions_mode() -> None:
    with ScriptedModelServer(script(mode="text-actions")) as srv:
        reply = _text_chat(srv.base_url, "plain system prompt", "plain task", 0)
        assert _only_action(reply, MSWEA_V1_REGEX) == "cat -- strings.py"
        final = _text_chat(srv.base_url, "plain system prompt", "plain task", 3)
        assert final == "Fixed slugify."  # no submit command in the prompt: plain finish


def test_tools_mode_never_uses_text_actions() -> None:
    with ScriptedModelServer(script(mode="tools")) as srv:
        assert _text_chat(srv.base_url, MSWEA_V2_SYSTEM, MSWEA_V2_TASK, 0) == "Scripted session"


def test_tool_calling_mini_swe_agent_submits_before_finishing(server: ScriptedModelServer) -> None:
    assert chat_call(server.base_url, MINI_TOOLS, 3, MSWEA_V2_TASK) == {
        "name": "bash",
        "args": {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"},
    }
    assert chat_call(server.base_url, MINI_TOOLS, 4, MSWEA_V2_TASK) == {"text": "Fixed slugify."}


def test_explicit_submit_command_disabled() -> None:
    with ScriptedModelServer(script(submit_command="")) as srv:
        assert chat_call(srv.base_url, MINI_TOOLS, 3, MSWEA_V2_TASK) == {"text": "Fixed slugify."}
