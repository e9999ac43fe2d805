"""Map provider-neutral script steps onto the tools a client actually offered.

Each client names its tools and their arguments differently; the mapping reads the
offered tool names and the property names of their JSON schemas:

============  =====================================================================
shell         ``bash`` / ``Bash`` / ``shell_command`` / ``exec_command`` / ``shell``;
              argument ``command`` or ``cmd``; an array-typed argument (Codex
              ``shell``) gets ``["bash", "-lc", cmd]``
read          ``Read`` / ``read`` / ``read_file`` (``file_path`` | ``path``), the
              Anthropic text editor (``view``), else the shell with ``cat``
replace       ``Edit`` / ``edit`` (path | file_path, old | old_string | oldText | old_str,
              new | new_string | newText | new_str), the text editor (``str_replace``),
              ``apply_patch`` (a V4A patch), else the shell with a ``python3 -c``
              one-liner carrying base64-encoded path/old/new
write         ``Write`` / ``write`` (content), the text editor (``create``), else the
              shell with a base64 ``python3 -c`` one-liner
============  =====================================================================
"""

from __future__ import annotations

import base64
import json
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cto_harness.model_server._script import (
    ActionStep,
    ReadStep,
    ReplaceStep,
    RunStep,
    WriteStep,
)

ToolKind = Literal["function", "custom"]

SHELL_TOOLS = ("bash", "Bash", "shell_command", "exec_command", "shell")
READ_TOOLS = ("Read", "read", "read_file")
EDIT_TOOLS = ("Edit", "edit")
WRITE_TOOLS = ("Write", "write")
TEXT_EDITOR_TOOLS = ("str_replace_based_edit_tool", "str_replace_editor")
PATCH_TOOLS = ("apply_patch",)

_PATH_PROPS = ("file_path", "path", "filePath", "filename")
_OLD_PROPS = ("old_string", "oldText", "old_str", "old", "old_text")
_NEW_PROPS = ("new_string", "newText", "new_str", "new", "new_text")
_CONTENT_PROPS = ("content", "file_text", "text", "contents")
_COMMAND_PROPS = ("command", "cmd")
_PATCH_PROPS = ("input", "patch")

# Anthropic-defined client tools arrive without a schema (``{"type": "bash_20250124",
# "name": "bash"}``); these are their documented argument names.
_BUILTIN_PROPS: dict[str, dict[str, Any]] = {
    "bash": {"command": {"type": "string"}},
    "str_replace_based_edit_tool": {
        "command": {"type": "string"},
        "path": {"type": "string"},
        "old_str": {"type": "string"},
        "new_str": {"type": "string"},
        "file_text": {"type": "string"},
    },
}
_BUILTIN_PROPS["str_replace_editor"] = _BUILTIN_PROPS["str_replace_based_edit_tool"]


@dataclass(frozen=True)
class ToolSpec:
    """One offered tool, normalized across protocols."""

    name: str
    kind: ToolKind = "function"
    properties: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    @classmethod
    def from_schema(cls, name: str, schema: Any, kind: ToolKind = "function") -> ToolSpec:
        props: Mapping[str, Any] = {}
        required: tuple[str, ...] = ()
        if isinstance(schema, dict):
            raw = schema.get("properties")
            if isinstance(raw, dict):
                props = raw
            req = schema.get("required")
            if isinstance(req, list):
                required = tuple(str(r) for r in req)
        if not props and name in _BUILTIN_PROPS:
            props = _BUILTIN_PROPS[name]
        return cls(name=name, kind=kind, properties=props, required=required)

    def prop(self, candidates: Sequence[str]) -> str | None:
        for candidate in candidates:
            if candidate in self.properties:
                return candidate
        return None

    def is_array(self, prop: str) -> bool:
        schema = self.properties.get(prop)
        if not isinstance(schema, dict):
            return False
        kind = schema.get("type")
        return kind == "array" or (isinstance(kind, list) and "array" in kind)


@dataclass(frozen=True)
class ToolCall:
    """The scripted model's call of one offered tool."""

    name: str
    kind: ToolKind = "function"
    arguments: Mapping[str, Any] = field(default_factory=dict)
    """JSON arguments of a function tool."""
    input: str = ""
    """Free-form input of a custom tool (Codex ``apply_patch`` grammar tool)."""

    def arguments_json(self) -> str:
        return json.dumps(dict(self.arguments), ensure_ascii=False)


def find_tool(tools: Sequence[ToolSpec], names: Sequence[str]) -> ToolSpec | None:
    by_name = {t.name: t for t in tools}
    for name in names:
        if name in by_name:
            return by_name[name]
    return None


def shell_command_for(step: ActionStep) -> str:
    """The shell command that performs ``step`` (text actions and tool fallbacks)."""
    if isinstance(step, RunStep):
        return step.command
    if isinstance(step, ReadStep):
        return f"cat -- {shlex.quote(step.path)}"
    if isinstance(step, ReplaceStep):
        return (
            'python3 -c "import base64 as b,pathlib as l;'
            f"p=l.Path(b.b64decode('{_b64(step.path)}').decode());s=p.read_bytes();"
            f"o=b.b64decode('{_b64(step.old)}');n=b.b64decode('{_b64(step.new)}');"
            "assert o in s,'old text not found in '+str(p);"
            "p.write_bytes(s.replace(o,n,1));print('edited',p)\""
        )
    return (
        'python3 -c "import base64 as b,pathlib as l;'
        f"p=l.Path(b.b64decode('{_b64(step.path)}').decode());"
        "p.parent.mkdir(parents=True,exist_ok=True);"
        f"p.write_bytes(b.b64decode('{_b64(step.content)}'));print('wrote',p)\""
    )


def shell_call(tool: ToolSpec, command: str) -> ToolCall:
    prop = tool.prop(_COMMAND_PROPS) or _first_required(tool) or "command"
    value: Any = ["bash", "-lc", command] if tool.is_array(prop) else command
    return ToolCall(name=tool.name, kind=tool.kind, arguments={prop: value}, input=command)


def v4a_patch(path: str, old: str, new: str) -> str:
    """A V4A ``*** Update File`` patch replacing the lines of ``old`` by those of ``new``."""
    removed = "".join(f"-{line}\n" for line in _lines(old))
    added = "".join(f"+{line}\n" for line in _lines(new))
    return f"*** Begin Patch\n*** Update File: {path}\n@@\n{removed}{added}*** End Patch\n"


def map_step(step: ActionStep, tools: Sequence[ToolSpec], cwd: str | None = None) -> ToolCall | None:
    """The tool call performing ``step`` with the offered ``tools``.

    Returns None when no suitable tool (not even a shell) is offered.
    """
    call = _native(step, tools, cwd)
    if call is not None:
        return call
    shell = find_tool(tools, SHELL_TOOLS)
    return shell_call(shell, shell_command_for(step)) if shell else None


def _native(step: ActionStep, tools: Sequence[ToolSpec], cwd: str | None) -> ToolCall | None:
    if isinstance(step, ReadStep):
        tool = find_tool(tools, READ_TOOLS)
        if tool and (prop := tool.prop(_PATH_PROPS)):
            return _call(tool, {prop: _path(tool, prop, step.path, cwd)})
        editor = find_tool(tools, TEXT_EDITOR_TOOLS)
        if editor:
            return _call(editor, {"command": "view", "path": _abs(step.path, cwd)})
        return None
    if isinstance(step, ReplaceStep):
        return _replace(step, tools, cwd)
    if isinstance(step, WriteStep):
        tool = find_tool(tools, WRITE_TOOLS)
        if tool:
            path_prop, content_prop = tool.prop(_PATH_PROPS), tool.prop(_CONTENT_PROPS)
            if path_prop and content_prop:
                return _call(
                    tool,
                    {path_prop: _path(tool, path_prop, step.path, cwd), content_prop: step.content},
                )
        editor = find_tool(tools, TEXT_EDITOR_TOOLS)
        if editor:
            args = {"command": "create", "path": _abs(step.path, cwd), "file_text": step.content}
            return _call(editor, args)
        return None
    return None  # run: the shell itself


def _replace(step: ReplaceStep, tools: Sequence[ToolSpec], cwd: str | None) -> ToolCall | None:
    tool = find_tool(tools, EDIT_TOOLS)
    if tool and (path_prop := tool.prop(_PATH_PROPS)):
        path = _path(tool, path_prop, step.path, cwd)
        old_prop, new_prop = tool.prop(_OLD_PROPS), tool.prop(_NEW_PROPS)
        if old_prop and new_prop:
            return _call(tool, {path_prop: path, old_prop: step.old, new_prop: step.new})
        nested = _nested_edits(tool)
        if nested:
            list_prop, old_prop, new_prop = nested
            edit = {old_prop: step.old, new_prop: step.new}
            return _call(tool, {path_prop: path, list_prop: [edit]})
    editor = find_tool(tools, TEXT_EDITOR_TOOLS)
    if editor:
        args = {
            "command": "str_replace",
            "path": _abs(step.path, cwd),
            "old_str": step.old,
            "new_str": step.new,
        }
        return _call(editor, args)
    patch_tool = find_tool(tools, PATCH_TOOLS)
    if patch_tool:
        patch = v4a_patch(step.path, step.old, step.new)
        if patch_tool.kind == "custom":
            return ToolCall(name=patch_tool.name, kind="custom", input=patch)
        prop = patch_tool.prop(_PATCH_PROPS) or _first_required(patch_tool) or "input"
        return ToolCall(name=patch_tool.name, arguments={prop: patch}, input=patch)
    return None


def _nested_edits(tool: ToolSpec) -> tuple[str, str, str] | None:
    """``edits: [{oldText, newText}]``-style schemas: (list prop, old prop, new prop)."""
    for name, schema in tool.properties.items():
        if not (isinstance(schema, dict) and isinstance(schema.get("items"), dict)):
            continue
        item = ToolSpec.from_schema(name, schema["items"])
        old_prop, new_prop = item.prop(_OLD_PROPS), item.prop(_NEW_PROPS)
        if old_prop and new_prop:
            return name, old_prop, new_prop
    return None


def _call(tool: ToolSpec, arguments: dict[str, Any]) -> ToolCall:
    if tool.kind == "custom":
        return ToolCall(name=tool.name, kind="custom", input=json.dumps(arguments))
    return ToolCall(name=tool.name, arguments=arguments)


def _path(tool: ToolSpec, prop: str, path: str, cwd: str | None) -> str:
    # Claude Code's ``file_path`` arguments are documented as absolute.
    return _abs(path, cwd) if prop == "file_path" else path


def _abs(path: str, cwd: str | None) -> str:
    if cwd and not posixpath.isabs(path):
        return posixpath.join(cwd, path)
    return path


def _first_required(tool: ToolSpec) -> str | None:
    return tool.required[0] if tool.required else None


def _lines(text: str) -> list[str]:
    if text == "":
        return []
    return (text[:-1] if text.endswith("\n") else text).split("\n")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
