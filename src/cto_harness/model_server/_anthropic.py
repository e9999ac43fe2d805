"""Anthropic Messages: ``POST /v1/messages`` (streamed and not) and ``count_tokens``.

The stream is ``message_start``, ``ping``, per content block ``content_block_start`` /
``content_block_delta`` (``text_delta`` or ``input_json_delta``) / ``content_block_stop``,
then ``message_delta`` (stop reason and output usage) and ``message_stop``.
"""

from __future__ import annotations

import copy
import json

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

NAME = "anthropic-messages"
# Anthropic-defined client tools carry no schema; server tools (web search, ...) are skipped.
_SCHEMALESS_CLIENT_TOOLS = ("bash", "str_replace_based_edit_tool", "str_replace_editor")


def conversation(body: JSON) -> Conversation:
    built = ConversationBuilder()
    for tool in require_list(body, "tools"):
        if not isinstance(tool, dict):
            continue
        name = str(tool.get("name", ""))
        if "input_schema" in tool or name in _SCHEMALESS_CLIENT_TOOLS:
            built.tools.append(ToolSpec.from_schema(name, tool.get("input_schema")))
    if body.get("system"):
        built.system(text_of(body.get("system")))
    for message in require_list(body, "messages"):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        built.tool_results += sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result")
        if isinstance(content, str):
            built.user(content)
        else:
            built.user(text_of([b for b in blocks if isinstance(b, dict) and b.get("type", "text") == "text"]))
    return built.build()


def count_tokens(raw_body: bytes) -> JSON:
    return {"input_tokens": max(1, len(raw_body) // 4)}


def render(ctx: Context) -> Rendered:
    decision = ctx.decision
    blocks: list[JSON] = []
    if decision.text or decision.tool_call is None:
        blocks.append({"type": "text", "text": decision.text})
    call = decision.tool_call
    if call is not None:
        arguments = dict(call.arguments) if call.kind == "function" else {"input": call.input}
        blocks.append({"type": "tool_use", "id": ctx.ids.new("toolu_"), "name": call.name, "input": arguments})
    stop_reason = "tool_use" if call else "end_turn"
    usage = {
        "input_tokens": ctx.usage.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": ctx.usage.output_tokens,
    }
    body: JSON = {
        "id": ctx.ids.new("msg_"),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not ctx.stream:
        return Rendered(body)
    events: list[SseEvent] = []

    def add(kind: str, **fields: object) -> None:
        events.append(SseEvent(dumps({"type": kind, **fields}), kind))

    start = {**body, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    add("message_start", message=start)
    add("ping")
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            add("content_block_start", index=index, content_block={"type": "text", "text": ""})
            for piece in chunks(block["text"]):
                if piece:
                    delta = {"type": "text_delta", "text": piece}
                    add("content_block_delta", index=index, delta=delta)
        else:
            opening = copy.deepcopy(block)
            opening["input"] = {}
            add("content_block_start", index=index, content_block=opening)
            for piece in chunks(json.dumps(block["input"], ensure_ascii=False)):
                delta = {"type": "input_json_delta", "partial_json": piece}
                add("content_block_delta", index=index, delta=delta)
        add("content_block_stop", index=index)
    add(
        "message_delta",
        delta={"stop_reason": stop_reason, "stop_sequence": None},
        usage={"output_tokens": ctx.usage.output_tokens},
    )
    add("message_stop")
    return Rendered(body, events)
