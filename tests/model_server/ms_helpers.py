"""Real-HTTP helpers for the scripted model server tests (stdlib clients only)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cto_harness.model_server import Script, parse_script

SCRIPT_DATA: dict[str, Any] = {
    "model": "scripted-test",
    "steps": [
        {"action": "read", "path": "strings.py"},
        {"action": "replace", "path": "strings.py", "old": "    return text\n", "new": "    return text.lower()\n"},
        {"action": "run", "command": "python -m pytest -q"},
        {"action": "finish", "text": "Fixed slugify."},
    ],
}


def script(**overrides: Any) -> Script:
    return parse_script({**SCRIPT_DATA, **overrides}, "test-script")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    def sse(self) -> list[tuple[str | None, str]]:
        """(event name, data) pairs of a text/event-stream body."""
        events: list[tuple[str | None, str]] = []
        for block in self.raw.decode().split("\n\n"):
            if not block.strip():
                continue
            name: str | None = None
            data: list[str] = []
            for line in block.split("\n"):
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    data.append(line[len("data: ") :])
            events.append((name, "\n".join(data)))
        return events

    def sse_json(self) -> list[dict[str, Any]]:
        return [json.loads(data) for _, data in self.sse() if data != "[DONE]"]


def request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    raw: bytes | None = None,
) -> Reply:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def post(base_url: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return request(base_url, "POST", path, body, headers)


# -- tool definitions as each client sends them ------------------------------------------------


def schema(*props: str, array: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {p: {"type": "array" if p in array else "string"} for p in props},
        "required": list(props[:1]),
    }


CLAUDE_TOOLS = [
    {"name": "Bash", "description": "run", "input_schema": schema("command", "description", "timeout")},
    {"name": "Read", "description": "read", "input_schema": schema("file_path", "offset", "limit")},
    {"name": "Edit", "description": "edit", "input_schema": schema("file_path", "old_string", "new_string")},
    {"name": "Write", "description": "write", "input_schema": schema("file_path", "content")},
]
PI_TOOLS = [
    {"type": "function", "function": {"name": "read", "parameters": schema("path", "offset", "limit")}},
    {"type": "function", "function": {"name": "bash", "parameters": schema("command", "timeout")}},
    {"type": "function", "function": {"name": "edit", "parameters": schema("path", "oldText", "newText")}},
    {"type": "function", "function": {"name": "write", "parameters": schema("path", "content")}},
]
CODEX_SHELL_TOOLS = [
    {"type": "function", "name": "shell", "parameters": schema("command", "workdir", array=("command",))},
    {"type": "custom", "name": "apply_patch", "description": "patch", "format": {"type": "grammar"}},
]
CODEX_EXEC_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": schema("cmd", "workdir")},
    {"type": "function", "name": "apply_patch", "parameters": schema("input")},
]
MINI_TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": schema("command")}}]


def chat_tool_results(n: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i in range(n):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": f"output {i}"})
    return messages


def responses_tool_results(n: int, kind: str = "function_call_output") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i in range(n):
        items.append({"type": "function_call", "call_id": f"c{i}", "name": "shell", "arguments": "{}"})
        items.append({"type": kind, "call_id": f"c{i}", "output": f"output {i}"})
    return items


def anthropic_tool_results(n: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i in range(n):
        use = {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {}}
        messages.append({"role": "assistant", "content": [use]})
        result = {"type": "tool_result", "tool_use_id": f"t{i}", "content": f"output {i}"}
        messages.append({"role": "user", "content": [result]})
    return messages
