"""mini-swe-agent (PyPI ``mini-swe-agent``, in its own virtualenv) as a provider.

``mini -y --exit-immediately -m MODEL -c mini.yaml [-c model.model_kwargs.api_base=URL]
-o backend/mini-traj.json -t PROMPT`` in the workspace, with its global config dir
isolated and litellm kept offline (``LITELLM_LOCAL_MODEL_COST_MAP=True``, else it
fetches a cost map from the internet). With a base URL the model is addressed as an
OpenAI-compatible endpoint (``openai/M``); without one as ``MODEL_PROVIDER/M``
(litellm's naming). Completion is the trajectory's ``info.exit_status == "Submitted"``;
``info.model_stats`` carries cost and API calls.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cto_harness.core import ProcessResult
from cto_harness.evidence import read_agent_file
from cto_harness.providers._client_common import (
    add,
    as_float,
    as_int,
    client_preflight,
    isolated_dir,
    keep_model_server_log,
    open_client,
    tail_text,
)
from cto_harness.providers._protocol import Gate, Invocation, Outcome, RunContext, Usage
from cto_harness.providers._settings import ClientSettings

NAME = "mini-swe-agent"
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
TRAJECTORY = "mini-traj.json"


class MiniSweAgentSettings(ClientSettings):
    """Settings of the mini-swe-agent adapter (``CTO_HARNESS_MINI_SWE_AGENT_*``)."""

    config_file: ClassVar[str] = "mini.yaml"
    """Built-in mini-swe-agent config the run starts from; not configurable."""


class MiniSweAgentProvider:
    name = NAME

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, NAME)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        assert gate.model.provider and gate.model.model
        client = open_client(ctx, gate, NAME, MiniSweAgentSettings, key_vars=KEY_VARS,
                             reserved=frozenset({"MSWEA_GLOBAL_CONFIG_DIR"}))
        config_dir = isolated_dir(ctx, "mswea-config")
        extra = {
            "MSWEA_CONFIGURED": "1",
            "MSWEA_COST_TRACKING": "ignore_errors",
            "MSWEA_GLOBAL_CONFIG_DIR": str(config_dir),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1",
            "PYTHONPYCACHEPREFIX": str(ctx.backend_dir / "pycache"),
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
        model = f"{gate.model.provider}/{gate.model.model}"
        overrides: list[str] = []
        if client.url is not None:
            model = f"openai/{gate.model.model}"
            overrides = ["-c", f"model.model_kwargs.api_base={client.url}"]
            if client.creds.api_key:
                extra["OPENAI_API_KEY"] = client.creds.api_key
        argv = [client.executable, "-y", "--exit-immediately", "-m", model,
                "-c", MiniSweAgentSettings.config_file, *overrides,
                "-o", str(ctx.backend_dir / TRAJECTORY), "-t", client.prompt]
        return client.invocation(ctx, argv, extra=extra)

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        keep_model_server_log(ctx)
        path = ctx.backend_dir / TRAJECTORY
        try:
            raw = read_agent_file(path, limit=64 * 1024 * 1024)
            if raw is None:
                raise OSError(f"{TRAJECTORY} missing, a symlink or not a regular file")
            traj = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: a trajectory nested too deep
            why = tail_text(result.stderr.path) or tail_text(result.stdout.path) or str(exc)
            return Outcome("agent-protocol-error", (f"mini-swe-agent: no readable trajectory {TRAJECTORY} ({why})",))
        info = traj.get("info") if isinstance(traj, dict) and isinstance(traj.get("info"), dict) else {}
        assert isinstance(info, dict)
        stats = info.get("model_stats") if isinstance(info.get("model_stats"), dict) else {}
        assert isinstance(stats, dict)
        usage = _usage(traj.get("messages") if isinstance(traj, dict) else None, stats)
        status = info.get("exit_status")
        summary = {"exit_status": status, "submission": str(info.get("submission") or "")[:2000],
                   "model_stats": stats, "mini_version": info.get("mini_version")}
        if status != "Submitted":
            return Outcome("agent-reported-failure", (f"mini-swe-agent exit status {status!r}",),
                           agent_result=summary, usage=usage)
        return Outcome(None, agent_result=summary, usage=usage)


def _usage(messages: Any, stats: dict[str, Any]) -> Usage:
    inp: int | None = None
    out: int | None = None
    for message in messages if isinstance(messages, list) else []:
        extra = message.get("extra") if isinstance(message, dict) else None
        response = extra.get("response") if isinstance(extra, dict) else None
        usage = response.get("usage") if isinstance(response, dict) else None
        if isinstance(usage, dict):
            inp = add(inp, usage.get("prompt_tokens"))
            out = add(out, usage.get("completion_tokens"))
    return Usage(input_tokens=inp, output_tokens=out, cost_usd=as_float(stats.get("instance_cost")),
                 calls=as_int(stats.get("api_calls")))
