"""Pieces shared by the wire protocols: rendered replies, ids, usage, text helpers."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from cto_harness.model_server._planner import OBSERVATION_MARKER, Conversation, Decision
from cto_harness.model_server._tools import ToolSpec

JSON = dict[str, Any]
CHUNK = 48
"""Characters per streamed text / argument delta."""


class RequestError(ValueError):
    """The request body is not a usable request of its protocol (answered with 400)."""


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str | None = None

    def encode(self) -> bytes:
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {self.data}\n\n".encode()


@dataclass(frozen=True)
class Rendered:
    """A reply in one protocol: the non-streamed body and, when streamed, its events."""

    body: JSON
    events: list[SseEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Ids:
    """Deterministic, thread-safe ids: ``prefix`` + a per-server counter."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counter)
        return f"{prefix}{n:024x}"


@dataclass(frozen=True)
class Context:
    """Per-request rendering inputs."""

    decision: Decision
    conversation: Conversation
    model: str
    usage: Usage
    ids: Ids
    created: int
    stream: bool
    include_usage: bool = False


def usage_for(raw_body: bytes, decision: Decision) -> Usage:
    """Deterministic token counts: request bytes / 4 and reply characters / 4."""
    reply = decision.text
    if decision.tool_call is not None:
        reply += decision.tool_call.name + decision.tool_call.arguments_json()
        reply += decision.tool_call.input
    return Usage(max(1, len(raw_body) // 4), max(1, len(reply) // 4))


def chunks(text: str, size: int = CHUNK) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def text_of(content: Any) -> str:
    """Plain text of a message content: a string, or a list of text-bearing parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                value = part.get("text")
                if isinstance(value, str):
                    parts.append(value)
                elif "content" in part:
                    parts.append(text_of(part["content"]))
        return "\n".join(parts)
    return ""


def require_list(body: JSON, key: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be an array")
    return value


def count_observations(user_texts: list[str]) -> int:
    """User messages after the first that carry a text-action observation."""
    return sum(1 for text in user_texts[1:] if OBSERVATION_MARKER in text)


@dataclass
class ConversationBuilder:
    """Collects one request's conversation in any protocol; the rules live here once.

    The prompt is the system texts plus the first user message (in arrival order); later
    user messages only count as text-action observations.
    """

    tools: list[ToolSpec] = field(default_factory=list)
    tool_results: int = 0
    prompt: list[str] = field(default_factory=list)
    user_texts: list[str] = field(default_factory=list)

    def system(self, text: str) -> None:
        self.prompt.append(text)

    def user(self, text: str) -> None:
        if not self.user_texts:
            self.prompt.append(text)
        self.user_texts.append(text)

    def build(self) -> Conversation:
        return Conversation(
            tools=tuple(self.tools),
            tool_results=self.tool_results,
            prompt_text="\n".join(self.prompt),
            observations=count_observations(self.user_texts),
        )
