"""OpenAI Codex CLI (``@openai/codex``) as a provider.

``codex exec --json --skip-git-repo-check --disable plugins --disable
unbounded_connection_retries --dangerously-bypass-approvals-and-sandbox -C WORKSPACE
PROMPT`` with ``CODEX_HOME`` isolated under ``backend/codex-home/`` and a ``config.toml``
naming the admitted model and, with a base URL, a model provider at that endpoint
(``wire_api = "responses"``: Codex rejects chat). Without ``--disable plugins`` Codex
contacts GitHub; without ``--disable unbounded_connection_retries`` it retries forever
when the endpoint is down. Completion is a ``turn.completed`` event (usage there);
``turn.failed`` or a missing completion is a failure. An ``error`` item about unknown
model metadata is harmless and ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cto_harness.core import ProcessResult
from cto_harness.providers._client_common import (
    add,
    client_preflight,
    isolated_dir,
    iter_jsonl,
    keep_model_server_log,
    open_client,
    tail_text,
)
from cto_harness.providers._protocol import FailureClass, Gate, Invocation, Outcome, RunContext, Usage
from cto_harness.providers._settings import ClientSettings

NAME = "codex"
KEY_VARS = ("OPENAI_API_KEY", "CODEX_API_KEY")
ENDPOINT_KEY_ENV = "CTO_HARNESS_CODEX_ENDPOINT_KEY"
RESERVED_PROVIDER_IDS = frozenset({"openai", "oss", "ollama", "lmstudio", "ollama-chat"})


class CodexSettings(ClientSettings):
    """Settings of the Codex adapter (``CTO_HARNESS_CODEX_*``)."""


def _toml(value: str) -> str:
    return json.dumps(value)


def config_toml(*, model: str, model_provider: str, url: str | None) -> str:
    """Codex ``config.toml``: the admitted model, retries off, analytics/feedback/update checks off."""
    provider_id = model_provider
    lines = [f"model = {_toml(model)}"]
    table: list[str] = []
    if url is not None:
        provider_id = re.sub(r"[^A-Za-z0-9_-]", "-", model_provider)
        if provider_id in RESERVED_PROVIDER_IDS:
            provider_id += "-endpoint"
        table = [
            "",
            f"[model_providers.{_toml(provider_id)}]",
            f"name = {_toml(model_provider)}",
            f"base_url = {_toml(url)}",
            'wire_api = "responses"',
            f"env_key = {_toml(ENDPOINT_KEY_ENV)}",
            "request_max_retries = 0",
            "stream_max_retries = 0",
            "stream_idle_timeout_ms = 120000",
        ]
    lines += [
        f"model_provider = {_toml(provider_id)}",
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        "check_for_update_on_startup = false",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[feedback]",
        "enabled = false",
        *table,
    ]
    return "\n".join(lines) + "\n"


class CodexProvider:
    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, NAME)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        assert gate.model.provider and gate.model.model
        client = open_client(ctx, gate, NAME, CodexSettings, key_vars=KEY_VARS,
                             reserved=frozenset({ENDPOINT_KEY_ENV, "CODEX_HOME"}))
        codex_home = isolated_dir(ctx, "codex-home")
        (codex_home / "config.toml").write_text(
            config_toml(model=gate.model.model, model_provider=gate.model.provider, url=client.url),
            encoding="utf-8")
        extra = {"CODEX_HOME": str(codex_home), "NO_COLOR": "1", "TERM": "dumb", "RUST_LOG": "error"}
        if client.url is not None:
            extra[ENDPOINT_KEY_ENV] = client.creds.api_key or ""
        argv = [client.executable, "exec", "--json", "--skip-git-repo-check", "--disable", "plugins",
                "--disable", "unbounded_connection_retries", "--dangerously-bypass-approvals-and-sandbox",
                "-C", str(ctx.workspace), client.prompt]
        return client.invocation(ctx, argv, extra=extra)

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        keep_model_server_log(ctx)
        completed = failed = 0
        errors: list[str] = []
        messages: list[str] = []
        inp: int | None = None
        out: int | None = None
        for event in iter_jsonl(result.stdout.path):
            kind = event.get("type")
            if kind == "turn.completed":
                completed += 1
                usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
                assert isinstance(usage, dict)
                inp = add(inp, usage.get("input_tokens"))
                out = add(out, usage.get("output_tokens"))
            elif kind == "turn.failed":
                failed += 1
                errors.append(_message(event.get("error")))
            elif kind == "error":
                errors.append(_message(event))
            elif kind == "item.completed":
                item = event.get("item") if isinstance(event.get("item"), dict) else {}
                assert isinstance(item, dict)
                if item.get("type") == "agent_message":
                    messages.append(str(item.get("text") or ""))
        usage = Usage(input_tokens=inp, output_tokens=out, calls=completed or None)
        summary = {"turns_completed": completed, "turns_failed": failed, "errors": errors[-5:],
                   "final_message": messages[-1][:2000] if messages else None}
        if failed or not completed:
            why = errors[-1] if errors else (tail_text(result.stderr.path) or "no turn.completed event")
            failure: FailureClass = "agent-reported-failure" if failed else "agent-protocol-error"
            return Outcome(failure, (f"codex: the turn did not complete: {why[:300]}",),
                           agent_result=summary, usage=usage)
        return Outcome(None, agent_result=summary, usage=usage)


def _message(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("message") or value)
    return str(value)
