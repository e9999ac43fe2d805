"""A scripted model on loopback that speaks the real wire protocols of coding-agent CLIs.

Real clients (Claude Code, Codex CLI, mini-swe-agent, pi) talk to it as they would to a
hosted model: OpenAI Chat Completions, OpenAI Responses and Anthropic Messages, streamed
or not. What the "model" does comes from a provider-neutral TOML script (see
``docs/model-server.md``); each step is mapped onto the tools the client offered.
"""

from cto_harness.model_server._planner import Conversation, Decision, decide
from cto_harness.model_server._script import (
    ACTIONS,
    FinishStep,
    ReadStep,
    ReplaceStep,
    RunStep,
    Script,
    ScriptError,
    WriteStep,
    load_script,
    parse_script,
)
from cto_harness.model_server._server import (
    NonLoopbackHostError,
    ScriptedModelServer,
    check_loopback,
    redact_headers,
)
from cto_harness.model_server._tools import ToolCall, ToolSpec, map_step, v4a_patch

__all__ = [
    "ACTIONS",
    "Conversation",
    "Decision",
    "FinishStep",
    "NonLoopbackHostError",
    "ReadStep",
    "ReplaceStep",
    "RunStep",
    "Script",
    "ScriptError",
    "ScriptedModelServer",
    "ToolCall",
    "ToolSpec",
    "WriteStep",
    "check_loopback",
    "decide",
    "load_script",
    "map_step",
    "parse_script",
    "redact_headers",
    "v4a_patch",
]
