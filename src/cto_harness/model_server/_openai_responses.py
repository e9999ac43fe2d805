"""OpenAI Responses: ``POST /v1/responses``, streamed and not.

The stream is ``response.created``, ``response.in_progress``, then per output item
``response.output_item.added`` ... ``response.output_item.done`` (with the text or
argument deltas between), then ``response.completed`` carrying the usage: Codex treats a
stream that closes without ``response.completed`` as failed.
"""

from __future__ import annotations

import copy

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

NAME = "openai-responses"
TOOL_OUTPUT_ITEMS = ("function_call_output", "custom_tool_call_output")


def conversation(body: JSON) -> Conversation:
    built = ConversationBuilder()
    for tool in require_list(body, "tools"):
        if not isinstance(tool, dict):
            continue
        name = str(tool.get("name", ""))
        if tool.get("type") == "function":
            built.tools.append(ToolSpec.from_schema(name, tool.get("parameters")))
        elif tool.get("type") == "custom":
            built.tools.append(ToolSpec(name=name, kind="custom"))
    raw_input = body.get("input", [])
    items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
    if not isinstance(items, list):
        items = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        built.system(instructions)
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind in TOOL_OUTPUT_ITEMS:
            built.tool_results += 1
        elif kind == "message":
            role = item.get("role")
            text = text_of(item.get("content"))
            if role in ("system", "developer"):
                built.system(text)
            elif role == "user":
                built.user(text)
    return built.build()


def render(ctx: Context, request: JSON) -> Rendered:
    decision = ctx.decision
    response_id = ctx.ids.new("resp_")
    items: list[JSON] = []
    if decision.text or decision.tool_call is None:
        items.append(
            {
                "id": ctx.ids.new("msg_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": decision.text, "annotations": [], "logprobs": []}],
            }
        )
    call = decision.tool_call
    if call is not None:
        call_id = ctx.ids.new("call_")
        if call.kind == "custom":
            items.append(
                {
                    "id": ctx.ids.new("ctc_"),
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": call.name,
                    "input": call.input,
                }
            )
        else:
            items.append(
                {
                    "id": ctx.ids.new("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": call.arguments_json(),
                    "call_id": call_id,
                    "name": call.name,
                }
            )
    usage = {
        "input_tokens": ctx.usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": ctx.usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": ctx.usage.total_tokens,
    }
    base: JSON = {
        "id": response_id,
        "object": "response",
        "created_at": ctx.created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": ctx.model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }
    final = {**base, "status": "completed", "output": items, "usage": usage}
    if not ctx.stream:
        return Rendered(final)
    events = _Events()
    events.add("response.created", response=base)
    events.add("response.in_progress", response=base)
    for index, item in enumerate(items):
        _stream_item(events, index, item)
    events.add("response.completed", response=final)
    return Rendered(final, events.events)


class _Events:
    def __init__(self) -> None:
        self.events: list[SseEvent] = []

    def add(self, kind: str, **fields: object) -> None:
        data = {"type": kind, "sequence_number": len(self.events), **fields}
        self.events.append(SseEvent(dumps(data), kind))


def _stream_item(events: _Events, index: int, item: JSON) -> None:
    item_id = item["id"]
    where = {"item_id": item_id, "output_index": index}
    added = copy.deepcopy(item)
    added["status"] = "in_progress"
    if item["type"] == "message":
        added["content"] = []
        events.add("response.output_item.added", output_index=index, item=added)
        part = item["content"][0]
        text = part["text"]
        empty = {"type": "output_text", "text": "", "annotations": []}
        events.add("response.content_part.added", **where, content_index=0, part=empty)
        for piece in chunks(text):
            if piece:
                events.add("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
        events.add("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
        done_part = {"type": "output_text", "text": text, "annotations": []}
        events.add("response.content_part.done", **where, content_index=0, part=done_part)
    elif item["type"] == "function_call":
        added["arguments"] = ""
        events.add("response.output_item.added", output_index=index, item=added)
        for piece in chunks(item["arguments"]):
            events.add("response.function_call_arguments.delta", **where, delta=piece)
        events.add(
            "response.function_call_arguments.done",
            **where,
            name=item["name"],
            arguments=item["arguments"],
        )
    else:  # custom_tool_call
        added["input"] = ""
        events.add("response.output_item.added", output_index=index, item=added)
        for piece in chunks(item["input"]):
            events.add("response.custom_tool_call_input.delta", **where, delta=piece)
        events.add("response.custom_tool_call_input.done", **where, input=item["input"])
    events.add("response.output_item.done", output_index=index, item=item)
