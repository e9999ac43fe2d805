"""The pi coding agent (``@mariozechner/pi-coding-agent``) as a provider.

``pi -p --mode json --provider P --model M --no-session PROMPT`` in the workspace, with
``PI_CODING_AGENT_DIR`` isolated under ``backend/pi-agent/``. With a base URL the agent
dir gets a ``models.json`` declaring provider P at that endpoint. pi exits 0 even when
the model call failed, so success is read from its event stream: the last assistant
message of ``agent_end`` must have ``stopReason`` ``"stop"``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from cto_harness.core import ProcessResult
from cto_harness.providers._client_common import (
    DEFAULT_TIMEOUT_S,
    add,
    as_float,
    base_url,
    client_invocation,
    client_preflight,
    credentials,
    isolated_dir,
    iter_jsonl,
    keep_model_server_log,
    tail_text,
    write_prompt,
)
from cto_harness.providers._gates import ProviderSettingError, setting
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext, Usage

NAME = "pi"
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PI_API_KEY")
API_KEY_ENV = "CTO_HARNESS_PI_ENDPOINT_KEY"
APIS = ("openai-completions", "openai-responses", "anthropic-messages")
SETTINGS = {"retry": {"enabled": False, "maxRetries": 0}}


class PiConfig(BaseModel):
    """Settings of the pi adapter (``CTO_HARNESS_PI_*``)."""

    api: str = "openai-completions"
    """Wire protocol of a configured endpoint (``CTO_HARNESS_PI_API``): one of ``APIS``."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Provider timeout when neither --timeout nor CTO_HARNESS_PI_TIMEOUT_SECONDS is set."""


class PiProvider:
    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, NAME)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        assert gate.provider.executable and gate.model.provider and gate.model.model
        prompt, _ = write_prompt(ctx)
        agent_dir = isolated_dir(ctx, "pi-agent")
        creds = credentials(ctx, NAME, KEY_VARS, reserved=frozenset({API_KEY_ENV}))
        # pi retries a failed model call with backoff (3 tries, ~14 s); the harness wants a fast failure.
        (agent_dir / "settings.json").write_text(json.dumps(SETTINGS, indent=2) + "\n", encoding="utf-8")
        extra = {"PI_CODING_AGENT_DIR": str(agent_dir), "PI_OFFLINE": "1", "PI_SKIP_VERSION_CHECK": "1",
                 "NO_COLOR": "1", "TERM": "dumb"}
        url = base_url(ctx, NAME)
        if url is not None:
            api = setting(ctx, NAME, "API") or PiConfig().api
            if api not in APIS:
                raise ProviderSettingError(f"CTO_HARNESS_PI_API={api!r}; valid: {', '.join(APIS)}")
            provider: dict[str, Any] = {
                "baseUrl": url,
                "api": api,
                "apiKey": API_KEY_ENV,
                "compat": {"supportsDeveloperRole": False, "supportsReasoningEffort": False},
                "models": [{"id": gate.model.model}],
            }
            models = {"providers": {gate.model.provider: provider}}
            (agent_dir / "models.json").write_text(json.dumps(models, indent=2) + "\n", encoding="utf-8")
            extra[API_KEY_ENV] = creds.api_key or ""
        argv = [gate.provider.executable, "-p", "--mode", "json", "--provider", gate.model.provider,
                "--model", gate.model.model, "--no-session", prompt]
        return client_invocation(ctx, NAME, gate, argv, extra=extra, creds=creds,
                                 default_timeout_s=PiConfig().timeout_s)

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
