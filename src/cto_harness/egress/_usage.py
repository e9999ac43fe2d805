"""Token usage and stop reason read from a model response as it crossed the wire.

One reader for the three protocols (OpenAI Chat Completions, OpenAI Responses,
Anthropic Messages), streamed (SSE) or not: every JSON object of the body (the body
itself, or each SSE ``data:`` payload) is scanned for its ``usage`` block and stop
reason, and the last value seen wins. That is right for each protocol's stream: Chat
puts usage on its final chunk, Responses on ``response.completed``, Anthropic starts
with ``message_start`` and updates output tokens in ``message_delta``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CallUsage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None


def decode_body(data: bytes, content_encoding: str) -> bytes | None:
    """The identity bytes of a body, or None when its encoding is not one we read."""
    encoding = content_encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return data
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(data)
        if encoding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        return None
    return None


@dataclass(frozen=True)
class RequestInfo:
    parsed: bool
    """False when the body is not a JSON object (so its model cannot be checked)."""
    model: str | None = None
    stream: bool = False


def _model_named_twice(pairs: list[tuple[str, Any]]) -> bool:
    """``model`` named twice, or also as ``Model``/``MODEL``: not checkable.

    Python keeps the last duplicate key; an endpoint written in another language may keep the
    first, or match keys case-insensitively (Go's encoding/json does), and so run another
    model than the one the policy saw.
    """
    return sum(1 for key, _ in pairs if key.casefold() == "model") > 1 or \
        any(key.casefold() == "model" and key != "model" for key, _ in pairs)


def request_info(body: bytes | None) -> RequestInfo:
    """The requested model and stream flag of a (decoded) request body."""
    if body is None:
        return RequestInfo(parsed=False)
    if not body.strip():
        return RequestInfo(parsed=True)
    ambiguous: set[int] = set()

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if _model_named_twice(pairs):
            ambiguous.add(id(obj))  # every object stays alive in the tree: ids stay unique
        return obj

    try:
        obj = json.loads(body, object_pairs_hook=build)
    except (ValueError, RecursionError):
        return RequestInfo(parsed=False)
    if not isinstance(obj, dict) or id(obj) in ambiguous:  # only the top level names the model
        return RequestInfo(parsed=False)
    model = obj.get("model")
    shown = model if isinstance(model, str) or model is None else json.dumps(model)[:200]
    return RequestInfo(parsed=True, model=shown, stream=obj.get("stream") is True)


def _objects(body: bytes, content_type: str) -> list[Any]:
    text = body.decode("utf-8", "replace")
    if "event-stream" in content_type.lower() or text.lstrip().startswith(("data:", "event:")):
        out = []
        for line in text.splitlines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == "[DONE]":
                continue
            try:
                out.append(json.loads(payload))
            except ValueError:
                continue
        return out
    try:
        return [json.loads(text)]
    except ValueError:
        return []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage_blocks(obj: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = [obj.get("usage")]
    for key in ("response", "message"):
        inner = obj.get(key)
        if isinstance(inner, dict):
            blocks.append(inner.get("usage"))
    return [b for b in blocks if isinstance(b, dict)]


def _stop(obj: dict[str, Any]) -> str | None:
    for choice in obj.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
            return str(choice["finish_reason"])
    for holder in (obj, obj.get("delta"), obj.get("message")):
        if isinstance(holder, dict) and isinstance(holder.get("stop_reason"), str):
            return str(holder["stop_reason"])
    response = obj.get("response") if isinstance(obj.get("response"), dict) else obj
    if isinstance(response, dict) and response.get("object") == "response":
        details = response.get("incomplete_details")
        if isinstance(details, dict) and isinstance(details.get("reason"), str):
            return str(details["reason"])
        status = response.get("status")
        if isinstance(status, str) and status not in ("in_progress", "queued"):
            return status
    return None


def parse_usage(body: bytes, content_type: str) -> CallUsage:
    """Usage and stop reason of one response body (identity-encoded)."""
    input_tokens = output_tokens = None
    stop = None
    for obj in _objects(body, content_type):
        if not isinstance(obj, dict):
            continue
        for usage in _usage_blocks(obj):
            prompt = _int(usage.get("prompt_tokens"))
            if prompt is None and _int(usage.get("input_tokens")) is not None:
                prompt = sum(_int(usage.get(k)) or 0 for k in (
                    "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
            completion = _int(usage.get("completion_tokens"))
            if completion is None:
                completion = _int(usage.get("output_tokens"))
            input_tokens = prompt if prompt is not None else input_tokens
            output_tokens = completion if completion is not None else output_tokens
        stop = _stop(obj) or stop
    return CallUsage(input_tokens=input_tokens, output_tokens=output_tokens, stop_reason=stop)
