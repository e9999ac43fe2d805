"""The pi coding agent (``@mariozechner/pi-coding-agent``) as a provider.

``pi -p --mode json --provider P --model M --no-session PROMPT`` in the workspace, with
``PI_CODING_AGENT_DIR`` isolated under ``backend/pi-agent/``. With a base URL the agent
dir gets a ``models.json`` declaring provider P at that endpoint. pi exits 0 even when
the model call failed, so success is read from its event stream: the last assistant
message of ``agent_end`` must have ``stopReason`` ``"stop"``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from cto_harness.core import ProcessResult
from cto_harness.providers._client_common import (
    add,
    as_float,
    client_preflight,
    isolated_dir,
    iter_jsonl,
    keep_model_server_log,
    open_client,
    tail_text,
)
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext, Usage
from cto_harness.providers._settings import ClientSettings

NAME = "pi"
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PI_API_KEY")
API_KEY_ENV = "CTO_HARNESS_PI_ENDPOINT_KEY"
Api = Literal["openai-completions", "openai-responses", "anthropic-messages"]
APIS: tuple[Api, ...] = ("openai-completions", "openai-responses", "anthropic-messages")
SETTINGS = {"retry": {"enabled": False, "maxRetries": 0}}


class PiSettings(ClientSettings):
    """Settings of the pi adapter (``CTO_HARNESS_PI_*``)."""

    api: Api = "openai-completions"
    """``CTO_HARNESS_PI_API``: wire protocol of a configured endpoint, one of ``APIS``."""


class PiProvider:
    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, NAME)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        assert gate.model.provider and gate.model.model
        client = open_client(ctx, gate, NAME, PiSettings, key_vars=KEY_VARS, reserved=frozenset({API_KEY_ENV}))
        agent_dir = isolated_dir(ctx, "pi-agent")
        # pi retries a failed model call with backoff (3 tries, ~14 s); the harness wants a fast failure.
        (agent_dir / "settings.json").write_text(json.dumps(SETTINGS, indent=2) + "\n", encoding="utf-8")
        extra = {"PI_CODING_AGENT_DIR": str(agent_dir), "PI_OFFLINE": "1", "PI_SKIP_VERSION_CHECK": "1",
                 "NO_COLOR": "1", "TERM": "dumb"}
        if client.url is not None:
            provider: dict[str, Any] = {
                "baseUrl": client.url,
                "api": client.settings.api,
                "apiKey": API_KEY_ENV,
                "compat": {"supportsDeveloperRole": False, "supportsReasoningEffort": False},
                "models": [{"id": gate.model.model}],
            }
            models = {"providers": {gate.model.provider: provider}}
            (agent_dir / "models.json").write_text(json.dumps(models, indent=2) + "\n", encoding="utf-8")
            extra[API_KEY_ENV] = client.creds.api_key or ""
        argv = [client.executable, "-p", "--mode", "json", "--provider", gate.model.provider,
                "--model", gate.model.model, "--no-session", client.prompt]
        return client.invocation(ctx, argv, extra=extra)

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        keep_model_server_log(ctx)
        end: dict[str, Any] | None = None
        for event in iter_jsonl(result.stdout.path):
            if event.get("type") == "agent_end":
                end = event
        if end is None:
            why = tail_text(result.stderr.path) or "no output"
            return Outcome("agent-protocol-error", (f"pi: no agent_end event in its JSON output ({why})",))
        messages = [m for m in end.get("messages") or [] if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role") == "assistant"]
        usage = _usage(assistant)
        last = assistant[-1] if assistant else {}
        stop = last.get("stopReason")
        summary = {"stop_reason": stop, "error": last.get("errorMessage"), "assistant_messages": len(assistant),
                   "final_text": _text(last)[:2000]}
        if stop == "error":
            # pi exits 0 when the model endpoint fails; the run itself failed, not the agent's judgement.
            return Outcome("provider-crashed", (f"pi: the model call failed: {last.get('errorMessage') or 'error'}",),
                           agent_result=summary, usage=usage)
        if stop != "stop":
            detail = last.get("errorMessage") or f"stopReason {stop!r}"
            return Outcome("agent-reported-failure", (f"pi: the session did not end cleanly: {detail}",),
                           agent_result=summary, usage=usage)
        return Outcome(None, agent_result=summary, usage=usage)


def _usage(messages: list[dict[str, Any]]) -> Usage:
    inp: int | None = None
    out: int | None = None
    cost: float | None = None
    for message in messages:
        usage = message.get("usage")
        if not isinstance(usage, dict):
            continue
        inp = add(inp, usage.get("input"))
        inp = add(inp, usage.get("cacheRead"))
        out = add(out, usage.get("output"))
        total = as_float((usage.get("cost") or {}).get("total")) if isinstance(usage.get("cost"), dict) else None
        if total is not None:
            cost = total if cost is None else cost + total
    return Usage(input_tokens=inp, output_tokens=out, cost_usd=cost, calls=len(messages))


def _text(message: dict[str, Any]) -> str:
    parts = message.get("content") or []
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text")
