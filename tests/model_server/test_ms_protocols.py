"""Each wire protocol, streamed and not, over real loopback HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from ms_helpers import (
    CLAUDE_TOOLS,
    CODEX_SHELL_TOOLS,
    MINI_TOOLS,
    anthropic_tool_results,
    chat_tool_results,
    post,
    request,
    responses_tool_results,
    script,
)

from cto_harness.model_server import ScriptedModelServer


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(script()) as srv:
        yield srv


def _chat(n_results: int, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Fix slugify"}]
    return {"model": "gpt-x", "messages": messages + chat_tool_results(n_results), "tools": MINI_TOOLS, **extra}


# -- OpenAI Chat Completions --------------------------------------------------------------------


def test_chat_non_streamed_tool_call(server: ScriptedModelServer) -> None:
    reply = post(server.base_url, "/v1/chat/completions", _chat(0))
    assert reply.status == 200
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-x"
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "bash"
    assert json.loads(call["function"]["arguments"]) == {"command": "cat -- strings.py"}
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_streamed_tool_call_with_usage(server: ScriptedModelServer) -> None:
    reply = post(server.base_url, "/v1/chat/completions", _chat(2, stream=True, stream_options={"include_usage": True}))
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = reply.sse()
    assert events[-1] == (None, "[DONE]")
    chunks = reply.sse_json()
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    head = deltas[0]["tool_calls"][0]
    assert head["index"] == 0 and head["id"].startswith("call_") and head["function"]["name"] == "bash"
    arguments = "".join(
        tc["function"]["arguments"] for d in deltas for tc in d.get("tool_calls", []) if "function" in tc
    )
    assert json.loads(arguments) == {"command": "python -m pytest -q"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])


def test_chat_streamed_finish_text_without_usage_chunk(server: ScriptedModelServer) -> None:
    reply = post(server.base_url, "/chat/completions", _chat(3, stream=True))
    chunks = reply.sse_json()
    assert all("usage" not in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Fixed slugify."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_non_streamed_finish(server: ScriptedModelServer) -> None:
    body = post(server.base_url, "/v1/chat/completions", _chat(5)).json()
    message = body["choices"][0]["message"]
    assert message["content"] == "Fixed slugify."
    assert "tool_calls" not in message
    assert body["choices"][0]["finish_reason"] == "stop"


# -- OpenAI Responses ---------------------------------------------------------------------------


def _responses(n_results: int, **extra: Any) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fix slugify"}]}
    ]
    return {
        "model": "gpt-5-codex",
        "instructions": "You are Codex.",
        "input": items + responses_tool_results(n_results),
        "tools": CODEX_SHELL_TOOLS,
        "store": False,
        **extra,
    }


def test_responses_non_streamed(server: ScriptedModelServer) -> None:
    body = post(server.base_url, "/v1/responses", _responses(0)).json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["id"].startswith("resp_")
    (item,) = body["output"]
    assert item["type"] == "function_call" and item["name"] == "shell"
    assert item["call_id"].startswith("call_") and item["id"].startswith("fc_")
    assert json.loads(item["arguments"]) == {"command": ["bash", "-lc", "cat -- strings.py"]}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] == {"cached_tokens": 0}


def test_responses_streamed_event_sequence(server: ScriptedModelServer) -> None:
    reply = post(server.base_url, "/v1/responses", _responses(1, stream=True))
    events = reply.sse()
    datas = [json.loads(d) for _, d in events]
    assert [name for name, _ in events] == [d["type"] for d in datas]
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    kinds = [d["type"] for d in datas]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.index("response.output_item.added") < kinds.index("response.output_item.done")
    done = next(d for d in datas if d["type"] == "response.output_item.done")
    item = done["item"]
    assert item["type"] == "custom_tool_call" and item["name"] == "apply_patch"
    assert item["input"] == (
        "*** Begin Patch\n*** Update File: strings.py\n@@\n-    return text\n+    return text.lower()\n*** End Patch\n"
    )
    streamed = "".join(d["delta"] for d in datas if d["type"] == "response.custom_tool_call_input.delta")
    assert streamed == item["input"]
    completed = datas[-1]["response"]
    assert completed["status"] == "completed" and completed["output"] == [item]
    assert completed["usage"]["output_tokens"] > 0


def test_responses_streamed_finish_message(server: ScriptedModelServer) -> None:
    datas = post(server.base_url, "/responses", _responses(3, stream=True)).sse_json()
    kinds = [d["type"] for d in datas]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    item = datas[7]["item"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert item["content"][0] == {"type": "output_text", "text": "Fixed slugify.", "annotations": [], "logprobs": []}
    assert {d.get("output_index") for d in datas[2:8]} == {0}


# -- Anthropic Messages -------------------------------------------------------------------------


def _messages(n_results: int, **extra: Any) -> dict[str, Any]:
    first = {"role": "user", "content": [{"type": "text", "text": "Fix slugify"}]}
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are Claude Code.\nWorking directory: /work/repo"}],
        "messages": [first, *anthropic_tool_results(n_results)],
        "tools": CLAUDE_TOOLS,
        **extra,
    }


def test_anthropic_non_streamed(server: ScriptedModelServer) -> None:
    body = post(server.base_url, "/v1/messages?beta=true", _messages(0)).json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block == {**block, "name": "Read", "input": {"file_path": "/work/repo/strings.py"}}
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0


def test_anthropic_streamed_tool_use(server: ScriptedModelServer) -> None:
    reply = post(server.base_url, "/v1/messages", _messages(1, stream=True))
    events = reply.sse()
    datas = [json.loads(d) for _, d in events]
    assert [name for name, _ in events] == [d["type"] for d in datas]
    kinds = [d["type"] for d in datas]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = datas[2]["content_block"]
    assert start["type"] == "tool_use" and start["name"] == "Edit" and start["input"] == {}
    partial = "".join(d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta")
    assert json.loads(partial) == {
        "file_path": "/work/repo/strings.py",
        "old_string": "    return text\n",
        "new_string": "    return text.lower()\n",
    }
    assert all(d["delta"]["type"] == "input_json_delta" for d in datas if d["type"] == "content_block_delta")
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"
    assert datas[-2]["usage"]["output_tokens"] > 0
    assert datas[0]["message"]["usage"]["input_tokens"] > 0


def test_anthropic_streamed_finish_text(server: ScriptedModelServer) -> None:
    datas = post(server.base_url, "/v1/messages", _messages(3, stream=True)).sse_json()
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "Fixed slugify."
    assert datas[2]["content_block"] == {"type": "text", "text": ""}
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_count_tokens_models_and_head(server: ScriptedModelServer) -> None:
    counted = post(server.base_url, "/v1/messages/count_tokens", _messages(0)).json()
    assert isinstance(counted["input_tokens"], int) and counted["input_tokens"] > 0
    head = request(server.base_url, "HEAD", "/")
    assert head.status == 200 and head.raw == b""
    for path in ("/v1/models", "/models"):
        models = request(server.base_url, "GET", path).json()
        assert [m["id"] for m in models["data"]] == ["scripted-test"]
        assert models["data"][0]["object"] == "model" and models["data"][0]["type"] == "model"
    one = request(server.base_url, "GET", "/v1/models/scripted-test").json()
    assert one["id"] == "scripted-test"


# -- errors -------------------------------------------------------------------------------------


def test_unknown_route_and_bad_json(server: ScriptedModelServer) -> None:
    missing = post(server.base_url, "/v1/embeddings", {"input": "x"})
    assert missing.status == 404 and "no route" in missing.json()["error"]["message"]
    bad = request(server.base_url, "POST", "/v1/messages", raw=b"{not json")
    assert bad.status == 400
    assert bad.json()["type"] == "error" and bad.json()["error"]["type"] == "invalid_request_error"
    bad_chat = request(server.base_url, "POST", "/v1/chat/completions", raw=b"[1, 2]")
    assert bad_chat.status == 400 and "JSON object" in bad_chat.json()["error"]["message"]
    wrong = post(server.base_url, "/v1/chat/completions", {"messages": "nope"})
    assert wrong.status == 400 and "'messages' must be an array" in wrong.json()["error"]["message"]


def test_chunked_request_body(server: ScriptedModelServer) -> None:
    body = json.dumps(_chat(1)).encode()
    half = len(body) // 2
    raw = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:half], body[half:])) + b"0\r\n\r\n"
    reply = request(server.base_url, "POST", "/v1/chat/completions", raw=raw, headers={"Transfer-Encoding": "chunked"})
    assert reply.status == 200
    call = reply.json()["choices"][0]["message"]["tool_calls"][0]
    assert "b64decode" in json.loads(call["function"]["arguments"])["command"]


def test_keep_alive_connection_serves_streams_and_plain_replies(server: ScriptedModelServer) -> None:
    """Real clients reuse connections: a chunked stream must end cleanly before the next request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for stream in (True, False, True):
            payload = json.dumps(_messages(3, stream=stream)).encode()
            conn.request("POST", "/v1/messages", body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200
            assert (b"message_stop" in data) is stream
    finally:
        conn.close()
