"""Choose the scripted model's next move from a protocol-neutral view of a request.

The server is stateless: the step is chosen from the conversation itself.

* tools mode: step ``k`` where ``k`` is the number of tool results already in the
  conversation (OpenAI chat ``role: "tool"`` messages, Responses
  ``function_call_output`` / ``custom_tool_call_output`` items, Anthropic
  ``tool_result`` blocks);
* text-actions mode (mini-swe-agent without tool calling): ``k`` is the number of user
  messages after the first that carry an observation (``<returncode>``);
* side mode: requests offering no tools that are not text-action sessions (title
  generation, summaries, quota probes) get a short plain reply and no step.

After the last action step the model answers with the finish text. In a session whose
prompt names a submit command (mini-swe-agent's ``echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``)
the model first runs that command, since such agents only stop on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from cto_harness.model_server._case import CLOSER_COMMAND, REVIEW_COMMAND, CaseRole, agent_result, case_role
from cto_harness.model_server._script import ActionStep, ReadStep, ReplaceStep, RunStep, Script, WriteStep
from cto_harness.model_server._tools import (
    SHELL_TOOLS,
    ToolCall,
    ToolSpec,
    find_tool,
    map_step,
    shell_call,
    shell_command_for,
)

ReplyMode = Literal["tools", "text-actions", "side", "case"]
ReplyKind = Literal["tool-call", "text-action", "finish", "side", "no-tool", "hang", "server-error"]

SUBMIT_MARKERS = ("COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "MINI_SWE_AGENT_FINAL_OUTPUT")
OBSERVATION_MARKER = "<returncode>"
MSWEA_FENCE = "mswea_bash_command"
_CWD_RE = re.compile(r"(?:Working directory:|<cwd>)\s*([^\s<]+)")


@dataclass(frozen=True)
class Conversation:
    """What the planner needs to know about one request, whatever its protocol."""

    tools: tuple[ToolSpec, ...] = ()
    tool_results: int = 0
    """Tool results already in the conversation."""
    prompt_text: str = ""
    """System prompt plus the first user message: where agents put their instructions."""
    observations: int = 0
    """User messages after the first that carry a text-action observation."""

    @property
    def cwd(self) -> str | None:
        match = _CWD_RE.search(self.prompt_text)
        return match.group(1) if match else None


@dataclass(frozen=True)
class Decision:
    """The reply to send, before it is rendered in a wire protocol."""

    mode: ReplyMode
    kind: ReplyKind
    step: int | None = None
    """Index into ``script.steps`` (``len(script.actions)`` for the finish)."""
    action: str | None = None
    text: str = ""
    tool_call: ToolCall | None = field(default=None)
    role: str | None = None
    """The WorkOS Case agent role (Case mode only)."""


def choose_mode(script: Script, conv: Conversation) -> ReplyMode:
    if conv.tools:
        return "tools"
    if script.mode == "text-actions":
        return "text-actions"
    if script.mode == "auto" and _looks_text_actions(conv):
        return "text-actions"
    return "side"


def submit_command(script: Script, conv: Conversation) -> str:
    if script.submit_command is not None:
        return script.submit_command
    for marker in SUBMIT_MARKERS:
        if marker in conv.prompt_text:
            return f"echo {marker}"
    return ""


def case_steps(script: Script, role: CaseRole) -> list[ActionStep]:
    """What each Case role does before its AGENT_RESULT (see ``_case``)."""
    if role == "implementer":
        return list(script.actions)
    if role == "verifier":
        runs: list[ActionStep] = [s for s in script.actions if isinstance(s, RunStep)]
        return runs[-1:]
    if role == "reviewer":
        return [RunStep(action="run", command=REVIEW_COMMAND)]
    if role == "closer":
        return [RunStep(action="run", command=CLOSER_COMMAND)]
    return []


def decide_case(script: Script, conv: Conversation, role: CaseRole) -> Decision:
    behaviour = script.case.behaviour(role)
    if behaviour in ("hang", "server-error"):
        return Decision("case", behaviour, role=role)
    steps = case_steps(script, role) if behaviour in ("completed", "rubric-fail") else []
    done = conv.tool_results
    if done < len(steps):
        step = steps[done]
        call = map_step(step, conv.tools, conv.cwd)
        if call is None:
            text = f"scripted model: Case {role} step {done} ({step.action}) has no tool; offered: " + (
                ", ".join(t.name for t in conv.tools) or "none")
            return Decision("case", "no-tool", done, step.action, text, role=role)
        return Decision("case", "tool-call", done, step.action, tool_call=call, role=role)
    files = sorted({s.path for s in steps if isinstance(s, ReplaceStep | WriteStep)})
    summary = script.finish_text if role == "implementer" else f"Scripted {role}: done."
    text = agent_result(role, behaviour, summary=summary, files=files)
    return Decision("case", "finish", len(steps), "finish", text, role=role)


def decide(script: Script, conv: Conversation) -> Decision:
    role = case_role(conv.prompt_text) if conv.tools else None
    if role is not None:
        return decide_case(script, conv, role)
    mode = choose_mode(script, conv)
    if mode == "side":
        return Decision(mode="side", kind="side", text=script.side_text)
    actions = script.actions
    done = conv.observations if mode == "text-actions" else conv.tool_results
    submit = submit_command(script, conv)
    if done < len(actions):
        step = actions[done]
        if mode == "text-actions":
            text = text_action(_thought(step), shell_command_for(step), conv)
            return Decision(mode, "text-action", done, step.action, text)
        call = map_step(step, conv.tools, conv.cwd)
        if call is None:
            text = f"scripted model: step {done} ({step.action}) needs a shell tool; offered: " + (
                ", ".join(t.name for t in conv.tools) or "none"
            )
            return Decision(mode, "no-tool", done, step.action, text)
        return Decision(mode, "tool-call", done, step.action, tool_call=call)
    finish = len(actions)
    if submit and (mode == "text-actions" or done == len(actions)):
        if mode == "text-actions":
            text = text_action(script.finish_text, submit, conv)
            return Decision(mode, "text-action", finish, "finish", text)
        shell = find_tool(conv.tools, SHELL_TOOLS)
        if shell is not None:
            return Decision(mode, "tool-call", finish, "finish", tool_call=shell_call(shell, submit))
    return Decision(mode, "finish", finish, "finish", script.finish_text)


def text_action(thought: str, command: str, conv: Conversation) -> str:
    """One THOUGHT plus exactly one fenced bash block (mini-swe-agent's format)."""
    fence = MSWEA_FENCE if MSWEA_FENCE in conv.prompt_text else "bash"
    return f"THOUGHT: {thought}\n\n```{fence}\n{command}\n```\n"


def _looks_text_actions(conv: Conversation) -> bool:
    if conv.observations:
        return True
    text = conv.prompt_text
    return MSWEA_FENCE in text or any(marker in text for marker in SUBMIT_MARKERS)


def _thought(step: ActionStep) -> str:
    if isinstance(step, ReadStep):
        return f"I need to look at {step.path} first."
    if isinstance(step, ReplaceStep):
        return f"I will edit {step.path} to fix the problem."
    if isinstance(step, WriteStep):
        return f"I will write {step.path}."
    return "I will run a command to check the result."
