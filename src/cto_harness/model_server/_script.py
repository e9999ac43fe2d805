"""Provider-neutral model scripts: what the scripted model does, step by step.

A script is a TOML file::

    model = "scripted-1"

    [[steps]]
    action = "read"
    path = "strings.py"

    [[steps]]
    action = "replace"
    path = "strings.py"
    old = "return text\\n"
    new = "return text.lower()\\n"

    [[steps]]
    action = "run"
    command = "python -m pytest -q"

    [[steps]]
    action = "finish"
    text = "Fixed slugify."

Every problem is reported as one :class:`ScriptError` line naming the file, the step and
the field, never as a pydantic traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cto_harness.model_server._case import CaseScript

ACTIONS = ("read", "replace", "write", "run", "finish")
Mode = Literal["auto", "tools", "text-actions"]


class ScriptError(ValueError):
    """The script cannot be used; the message is one line."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadStep(_Step):
    """Show a file to the model (read tool, else ``cat``)."""

    action: Literal["read"]
    path: str = Field(min_length=1)


class ReplaceStep(_Step):
    """Replace the first occurrence of ``old`` by ``new`` in ``path``.

    For ``apply_patch`` clients ``old`` and ``new`` are sent as whole lines, so scripts
    meant to work with every client should use whole-line ``old`` text.
    """

    action: Literal["replace"]
    path: str = Field(min_length=1)
    old: str = Field(min_length=1)
    new: str


class WriteStep(_Step):
    """Create or overwrite ``path`` with ``content``."""

    action: Literal["write"]
    path: str = Field(min_length=1)
    content: str


class RunStep(_Step):
    """Run a shell command."""

    action: Literal["run"]
    command: str = Field(min_length=1)


class FinishStep(_Step):
    """The final answer (plain text, no tool call); only allowed as the last step."""

    action: Literal["finish"]
    text: str


ActionStep = ReadStep | ReplaceStep | WriteStep | RunStep
Step = Annotated[ActionStep | FinishStep, Field(discriminator="action")]

DEFAULT_FINISH_TEXT = "Done."
DEFAULT_SIDE_TEXT = "Scripted session"


class Script(BaseModel):
    """A whole script. Build it with :func:`load_script` / :func:`parse_script`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="scripted-1", min_length=1)
    """Model id listed by ``GET /v1/models`` (replies echo the requested model)."""
    mode: Mode = "auto"
    """``auto``: tool calls when tools are offered, text actions for mini-swe-agent-like
    prompts, a short side reply otherwise. ``tools`` never uses text actions;
    ``text-actions`` always does when no tools are offered."""
    side_text: str = DEFAULT_SIDE_TEXT
    """Reply to side requests (no tools offered: titles, summaries, quota probes)."""
    submit_command: str | None = None
    """Shell command that ends a mini-swe-agent-like session. None: detected from the
    prompt (``echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``); empty string: never."""
    steps: list[Step] = Field(default_factory=list)
    case: CaseScript = Field(default_factory=CaseScript)
    """What each WorkOS Case agent role reports (``[case]``); see ``_case``."""

    @property
    def actions(self) -> list[ActionStep]:
        """The steps before the finish step."""
        return [s for s in self.steps if not isinstance(s, FinishStep)]

    @property
    def finish_text(self) -> str:
        last = self.steps[-1] if self.steps else None
        return last.text if isinstance(last, FinishStep) else DEFAULT_FINISH_TEXT


def parse_script(data: dict[str, Any], source: str = "<script>") -> Script:
    """Validate already-parsed TOML data.

    Raises:
        ScriptError: with a one-line message naming ``source``, the step and the field.
    """
    if not isinstance(data, dict):
        raise ScriptError(f"{source}: a script must be a TOML table")
    steps = data.get("steps", [])
    if not isinstance(steps, list):
        raise ScriptError(f"{source}: 'steps' must be an array of tables ([[steps]])")
    for index, step in enumerate(steps):
        where = f"{source}: steps[{index}]"
        if not isinstance(step, dict):
            raise ScriptError(f"{where}: a step must be a table")
        action = step.get("action")
        if action is None:
            raise ScriptError(f"{where}: missing field 'action' (one of: {', '.join(ACTIONS)})")
        if action not in ACTIONS:
            raise ScriptError(f"{where}: unknown action {action!r} (expected one of: {', '.join(ACTIONS)})")
        if action == "finish" and index != len(steps) - 1:
            raise ScriptError(f"{where}: 'finish' must be the last step")
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        raise ScriptError(_one_line(exc, source, steps)) from None


def load_script(path: Path) -> Script:
    """Read and validate a script file.

    Raises:
        ScriptError: unreadable file, bad TOML, or an invalid script (one line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: cannot read script: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{path}: invalid TOML: {exc}") from None
    return parse_script(data, str(path))


def _one_line(exc: ValidationError, source: str, steps: list[Any]) -> str:
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = source
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        index = loc[1]
        action = steps[index].get("action") if index < len(steps) else None
        where = f"{source}: steps[{index}] ({action})"
        # Drop the discriminator tag pydantic puts in the location.
        loc = [p for p in loc[2:] if p != action]
    field = ".".join(str(p) for p in loc)
    kind = error["type"]
    if kind == "missing":
        return f"{where}: missing field {field!r}"
    if kind == "extra_forbidden":
        return f"{where}: unknown field {field!r}"
    message = str(error["msg"]).replace("\n", " ")
    return f"{where}: {field}: {message}" if field else f"{where}: {message}"
