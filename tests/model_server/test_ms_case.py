"""Case mode: the scripted model plays each WorkOS Case role, over real HTTP like pi-ai calls it."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from ms_helpers import PI_TOOLS, chat_tool_results, post, script

from cto_harness.model_server import ScriptedModelServer

# The first lines of Case's agent prompts (agents/<role>.md, front matter stripped), as pi sends them.
ROLE_PROMPTS = {
    "implementer": "# Implementer — Code Implementation Agent\n\nImplement a fix or feature in the target repo.",
    "verifier": "# Verifier — Fresh-Context Verification Agent\n\nYou start with a completely fresh context.",
    "reviewer": "# Reviewer — Code Review Agent\n\nYou start with a completely fresh context.",
    "closer": "# Closer — PR Creation Agent\n\nCreate a pull request with a thorough description.",
    "retrospective": "# Retrospective — Post-Run Harness Improvement Agent\n\nYou run after every pipeline.",
}
RESULT_RE = re.compile(r"<<<AGENT_RESULT\n(?P<json>.*)\nAGENT_RESULT>>>", re.DOTALL)


def chat(server: ScriptedModelServer, role: str, done: int) -> dict[str, Any]:
    body = {"model": "scripted-test", "tools": PI_TOOLS, "messages": [
        {"role": "system", "content": ROLE_PROMPTS[role]},
        {"role": "user", "content": "## Task\nFix slugify. Read the CLAUDE.md of the repo first."},
        *chat_tool_results(done)]}
    reply = post(server.openai_base_url, "/chat/completions", body)
    assert reply.status == 200, reply.raw
    message: dict[str, Any] = reply.json()["choices"][0]["message"]
    return message


def tool(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    call = message["tool_calls"][0]["function"]
    return call["name"], json.loads(call["arguments"])


def result_of(message: dict[str, Any]) -> dict[str, Any]:
    assert not message.get("tool_calls")
    match = RESULT_RE.search(message["content"])
    assert match is not None, message["content"]
    data: dict[str, Any] = json.loads(match["json"])
    return data


def test_each_role_does_its_work_then_prints_its_agent_result(tmp_path: Path) -> None:
    with ScriptedModelServer(script(), log_path=tmp_path / "log.jsonl") as server:
        implementer = [chat(server, "implementer", n) for n in range(4)]
        assert [tool(m)[0] for m in implementer[:3]] == ["read", "edit", "bash"]
        done = result_of(implementer[3])
        assert done["status"] == "completed" and done["artifacts"]["filesChanged"] == ["strings.py"]
        assert done["artifacts"]["testsPassed"] is True and done["summary"] == "Fixed slugify."

        assert tool(chat(server, "verifier", 0)) == ("bash", {"command": "python -m pytest -q"})
        verifier = result_of(chat(server, "verifier", 1))
        assert verifier["rubric"]["role"] == "verifier"
        assert {c["verdict"] for c in verifier["rubric"]["categories"]} == {"pass"}

        assert tool(chat(server, "reviewer", 0))[0] == "bash"
        reviewer = result_of(chat(server, "reviewer", 1))
        assert reviewer["rubric"]["role"] == "reviewer" and reviewer["findings"]["critical"] == 0
        assert {c["category"] for c in reviewer["rubric"]["categories"]} >= {"principle-compliance",
                                                                              "scope-discipline"}
        assert "gh " not in tool(chat(server, "closer", 0))[1]["command"]
        closer = result_of(chat(server, "closer", 1))
        assert closer["status"] == "completed" and closer["artifacts"]["prUrl"] is None
        assert result_of(chat(server, "retrospective", 0))["status"] == "completed"
    roles = [json.loads(line).get("role") for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert roles == ["implementer"] * 4 + ["verifier"] * 2 + ["reviewer"] * 2 + ["closer"] * 2 + ["retrospective"]


def test_a_repeated_role_replays_the_same_steps() -> None:
    with ScriptedModelServer(script()) as server:
        first = [chat(server, "implementer", n) for n in range(4)]
        again = [chat(server, "implementer", n) for n in range(4)]
    assert [tool(m) for m in first[:3]] == [tool(m) for m in again[:3]]
    assert result_of(first[3]) == result_of(again[3])


@pytest.mark.parametrize(("role", "behaviour", "check"), [
    ("implementer", "failed", lambda r: r["status"] == "failed" and "on purpose" in r["error"]),
    ("verifier", "rubric-fail", lambda r: r["rubric"]["categories"][0]["verdict"] == "fail"),
    ("reviewer", "rubric-fail", lambda r: r["rubric"]["categories"][0] == {
        "category": "principle-compliance", "verdict": "fail", "detail": "scripted: failing on purpose"}),
])
def test_case_table_changes_what_a_role_reports(role: str, behaviour: str, check: Any) -> None:
    with ScriptedModelServer(script(case={role: behaviour})) as server:
        message = chat(server, role, 0)
        if message.get("tool_calls"):
            message = chat(server, role, 1)
        assert check(result_of(message))


def test_no_result_omits_the_block() -> None:
    with ScriptedModelServer(script(case={"implementer": "no-result"})) as server:
        message = chat(server, "implementer", 0)
    assert "<<<AGENT_RESULT\n" not in message["content"] and not message.get("tool_calls")


def test_server_error_and_hang(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with ScriptedModelServer(script(case={"implementer": "server-error", "verifier": "hang"}), log_path=log) as server:
        system = {"role": "system", "content": ROLE_PROMPTS["implementer"]}
        body = {"model": "m", "tools": PI_TOOLS, "messages": [system]}
        reply = post(server.openai_base_url, "/chat/completions", body)
        assert reply.status == 500 and "on purpose" in reply.json()["error"]["message"]
        held: dict[str, Any] = {}

        def call_verifier() -> None:
            try:
                held["reply"] = post(server.openai_base_url, "/chat/completions",
                                     {**body, "messages": [{"role": "system", "content": ROLE_PROMPTS["verifier"]}]})
            except OSError as exc:  # the server drops the held connection when it stops
                held["error"] = exc

        thread = threading.Thread(target=call_verifier)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive() and not held  # no answer while the server runs
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert "reply" not in held or held["reply"].status != 200
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["kind"], e["role"], e.get("status")) for e in entries] == [
        ("server-error", "implementer", 500), ("hang", "verifier", None)]


def test_other_clients_are_not_affected_by_case_mode() -> None:
    with ScriptedModelServer(script()) as server:
        body = {"model": "m", "tools": PI_TOOLS, "messages": [{"role": "system", "content": "You are pi."},
                                                              {"role": "user", "content": "Fix it."}]}
        message = post(server.openai_base_url, "/chat/completions", body).json()["choices"][0]["message"]
    assert tool(message)[0] == "read"
