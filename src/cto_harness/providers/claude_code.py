"""Claude Code (``@anthropic-ai/claude-code``) as a provider.

``claude -p PROMPT --output-format stream-json --verbose --bare --model M
--permission-mode acceptEdits --allowedTools=Bash,Read,Edit`` in the workspace, with an
isolated ``HOME`` and every non-essential network feature off. The ``=`` form of
``--allowedTools`` matters: a space-separated list would swallow the prompt. Claude
Code exits 0 even when every tool call failed; success is its final ``result`` line
with ``is_error: false``, and only the harness's own diff and tests decide a pass.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cto_harness.core import ProcessResult
from cto_harness.providers._client_common import (
    add,
    as_float,
    as_int,
    client_preflight,
    isolated_dir,
    iter_jsonl,
    keep_model_server_log,
    open_client,
    tail_text,
)
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext, Usage
from cto_harness.providers._settings import ClientSettings

NAME = "claude-code"
KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_MAX_RETRIES": "0",
    "NO_COLOR": "1",
    "TERM": "dumb",
}


class ClaudeCodeSettings(ClientSettings):
    """Settings of the Claude Code adapter (``CTO_HARNESS_CLAUDE_CODE_*``)."""

    allowed_tools: ClassVar[str] = "Bash,Read,Edit"
    """Tools Claude Code may use without asking (``--allowedTools=``); not configurable."""


class ClaudeCodeProvider:
    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, NAME)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        assert gate.model.model
        client = open_client(ctx, gate, NAME, ClaudeCodeSettings, key_vars=KEY_VARS,
                             reserved=frozenset({"ANTHROPIC_BASE_URL"}))
        creds = client.creds
        extra = dict(QUIET_ENV)
        if client.url is not None:
            extra["ANTHROPIC_BASE_URL"] = client.url
        if creds.api_key and not any(v in creds.passed for v in KEY_VARS):
            extra["ANTHROPIC_API_KEY"] = creds.api_key
        argv = [client.executable, "-p", client.prompt, "--output-format", "stream-json", "--verbose", "--bare",
                "--model", gate.model.model, "--permission-mode", "acceptEdits",
                f"--allowedTools={ClaudeCodeSettings.allowed_tools}", "--no-session-persistence"]
        return client.invocation(ctx, argv, extra=extra, home=isolated_dir(ctx, "home"))

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        keep_model_server_log(ctx)
        final: dict[str, Any] | None = None
        for event in iter_jsonl(result.stdout.path):
            if event.get("type") == "result":
                final = event
        if final is None:
            why = tail_text(result.stderr.path) or tail_text(result.stdout.path) or "no output"
            return Outcome("agent-protocol-error", (f"claude-code: no final result line in its stream-json ({why})",))
        usage = _usage(final)
        summary = {k: final.get(k) for k in ("subtype", "is_error", "num_turns", "duration_ms", "total_cost_usd",
                                             "stop_reason", "session_id")}
        summary["result"] = str(final.get("result") or "")[:2000]
        if final.get("is_error") is not False:
            detail = final.get("result") or final.get("subtype") or "is_error"
            return Outcome("agent-reported-failure", (f"claude-code reported an error: {str(detail)[:300]}",),
                           agent_result=summary, usage=usage)
        return Outcome(None, agent_result=summary, usage=usage)


def _usage(final: dict[str, Any]) -> Usage:
    raw = final.get("usage") if isinstance(final.get("usage"), dict) else {}
    assert isinstance(raw, dict)
    inp = as_int(raw.get("input_tokens"))
    for key in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        inp = add(inp, raw.get(key))
    return Usage(input_tokens=inp, output_tokens=as_int(raw.get("output_tokens")),
                 cost_usd=as_float(final.get("total_cost_usd")), calls=as_int(final.get("num_turns")))
