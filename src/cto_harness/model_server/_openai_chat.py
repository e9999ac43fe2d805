"""OpenAI Chat Completions: ``POST /v1/chat/completions``, streamed and not."""

from __future__ import annotations

from cto_harness.model_server._common import (
    JSON,
    Context,
    ConversationBuilder,
    Rendered,
    SseEvent,
    chunks,
    dumps,
    require_list,
    text_of,
)
from cto_harness.model_server._planner import Conversation
from cto_harness.model_server._tools import ToolSpec

NAME = "openai-chat"


def conversation(body: JSON) -> Conversation:
    messages = require_list(body, "messages")
    built = ConversationBuilder()
    for tool in require_list(body, "tools"):
        if not isinstance(tool, dict):
            continue
        if tool.get("type", "function") == "function" and isinstance(tool.get("function"), dict):
            fn = tool["function"]
            built.tools.append(ToolSpec.from_schema(str(fn.get("name", "")), fn.get("parameters")))
        elif tool.get("type") == "custom" and isinstance(tool.get("custom"), dict):
            built.tools.append(ToolSpec(name=str(tool["custom"].get("name", "")), kind="custom"))
    for fn in require_list(body, "functions"):  # legacy function calling
        if isinstance(fn, dict):
            built.tools.append(ToolSpec.from_schema(str(fn.get("name", "")), fn.get("parameters")))
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("tool", "function"):
            built.tool_results += 1
        elif role in ("system", "developer"):
            built.system(text)
        elif role == "user":
            built.user(text)
    return built.build()


def render(ctx: Context) -> Rendered:
    decision = ctx.decision
    completion_id = ctx.ids.new("chatcmpl-")
    call = decision.tool_call
    call_id = ctx.ids.new("call_") if call else ""
    tool_calls: list[JSON] = []
    if call is not None:
        if call.kind == "custom":
            tool_calls.append({"id": call_id, "type": "custom", "custom": {"name": call.name, "input": call.input}})
        else:
            tool_calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
            )
    finish_reason = "tool_calls" if call else "stop"
    usage = {
        "prompt_tokens": ctx.usage.input_tokens,
        "completion_tokens": ctx.usage.output_tokens,
        "total_tokens": ctx.usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    message: JSON = {
        "role": "assistant",
        "content": decision.text if decision.text or not call else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage,
        "system_fingerprint": None,
    }
    if not ctx.stream:
        return Rendered(body)

    def chunk(delta: JSON, finish: str | None = None) -> SseEvent:
        data: JSON = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if ctx.include_usage:
            data["usage"] = None
        return SseEvent(dumps(data))

    events: list[SseEvent] = []
    if decision.text or not call:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        events.extend(chunk({"content": piece}) for piece in chunks(decision.text))
    if call is not None:
        head: JSON = {"index": 0, "id": call_id, "type": tool_calls[0]["type"]}
        first: JSON = {"tool_calls": [head]}
        if not events:
            first = {"role": "assistant", "content": None, "refusal": None, **first}
        if call.kind == "custom":
            head["custom"] = {"name": call.name, "input": ""}
            pieces = chunks(call.input)
            events.append(chunk(first))
            events.extend(chunk(_call_delta({"custom": {"input": p}})) for p in pieces)
        else:
            head["function"] = {"name": call.name, "arguments": ""}
            pieces = chunks(call.arguments_json())
            events.append(chunk(first))
            events.extend(chunk(_call_delta({"function": {"arguments": p}})) for p in pieces)
    events.append(chunk({}, finish_reason))
    if ctx.include_usage:
        events.append(
            SseEvent(
                dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": ctx.created,
                        "model": ctx.model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        )
    events.append(SseEvent("[DONE]"))
    return Rendered(body, events)


def _call_delta(part: JSON) -> JSON:
    return {"tool_calls": [{"index": 0, **part}]}
