"""Claude Code (``@anthropic-ai/claude-code``) as a provider.

``claude -p PROMPT --output-format stream-json --verbose --bare --model M
--permission-mode acceptEdits --allowedTools=Bash,Read,Edit`` in the workspace, with an
isolated ``HOME`` and every non-essential network feature off. The ``=`` form of
``--allowedTools`` matters: a space-separated list would swallow the prompt. Claude
Code exits 0 even when every tool call failed; success is its final ``result`` line
with ``is_error: false``, and only the harness's own diff and tests decide a pass.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cto_harness.core import ProcessResult
from cto_harness.providers._client_common import (
    DEFAULT_TIMEOUT_S,
    add,
    as_float,
    as_int,
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
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext, Usage

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


class ClaudeCodeConfig(BaseModel):
    """Settings of the Claude Code adapter (``CTO_HARNESS_CLAUDE_CODE_*``)."""

    allowed_tools: str = "Bash,Read,Edit"
    """Tools Claude Code may use without asking (``--allowedTools=``)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Provider timeout when neither --timeout nor CTO_HARNESS_CLAUDE_CODE_TIMEOUT_SECONDS is set."""


class ClaudeCodeProvider:
    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, NAME)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        assert gate.provider.executable and gate.model.model
        config = ClaudeCodeConfig()
        prompt, _ = write_prompt(ctx)
        home = isolated_dir(ctx, "home")
        creds = credentials(ctx, NAME, KEY_VARS, reserved=frozenset({"ANTHROPIC_BASE_URL"}))
        extra = dict(QUIET_ENV)
        url = base_url(ctx, NAME)
        if url is not None:
            extra["ANTHROPIC_BASE_URL"] = url
        if creds.api_key and not any(v in creds.passed for v in KEY_VARS):
            extra["ANTHROPIC_API_KEY"] = creds.api_key
        argv = [gate.provider.executable, "-p", prompt, "--output-format", "stream-json", "--verbose", "--bare",
                "--model", gate.model.model, "--permission-mode", "acceptEdits",
                f"--allowedTools={config.allowed_tools}", "--no-session-persistence"]
        return client_invocation(ctx, NAME, gate, argv, extra=extra, creds=creds,
                                 default_timeout_s=config.timeout_s, home=home)

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
