"""Any command as a provider, for agents without an adapter.

The executable comes from ``CTO_HARNESS_COMMAND_BIN`` through admission like every real
provider (or ``--unadmitted`` for a local experiment); its arguments from
``CTO_HARNESS_COMMAND_ARGS``, a shell-style template whose placeholders are filled per
run: ``{workspace}``, ``{prompt_file}``, ``{task_file}``, ``{model_provider}``,
``{model}``, ``{base_url}``. The command has no protocol: success is judged only by
the harness's own diff and tests (and its exit status).
"""

from __future__ import annotations

import json
import shlex
import string

from cto_harness.core import ProcessResult
from cto_harness.providers._client_common import client_preflight, keep_model_server_log, open_client
from cto_harness.providers._protocol import Gate, Invocation, Outcome, ProviderSettingError, RunContext
from cto_harness.providers._settings import ClientSettings, env_var

NAME = "command"
PLACEHOLDERS = ("workspace", "prompt_file", "task_file", "model_provider", "model", "base_url")


class CommandSettings(ClientSettings):
    """Settings of the command adapter (``CTO_HARNESS_<NAME>_*``; ``COMMAND`` by default)."""

    args: str = "{prompt_file}"
    """``CTO_HARNESS_<NAME>_ARGS``: argument template, split like a shell would."""


def render_args(template: str, values: dict[str, str], *, provider: str = NAME) -> list[str]:
    """Split ``template`` and fill its placeholders.

    Raises:
        ProviderSettingError: unknown placeholder or unbalanced quotes.
    """
    var = env_var(provider, "ARGS")
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise ProviderSettingError(f"{var}: {exc}") from exc
    out = []
    for part in parts:
        names = {field for _, field, _, _ in string.Formatter().parse(part) if field is not None}
        unknown = names - set(PLACEHOLDERS)
        if unknown:
            raise ProviderSettingError(f"{var}: unknown placeholder(s) {sorted(unknown)}; valid: "
                                       + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
        out.append(part.format(**values))
    return out


class CommandProvider:
    """Also runs catalog entries declaring ``adapter = "command"`` under their own name."""

    def __init__(self, name: str = NAME) -> None:
        self.name = name

    def preflight(self, ctx: RunContext) -> Gate:
        return client_preflight(ctx, self.name)

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        client = open_client(ctx, gate, self.name, CommandSettings)
        prompt_file = client.prompt_file
        url = client.url or ""
        task = {"fixture_id": ctx.fixture.id, "title": ctx.fixture.title, "instructions": ctx.fixture.instructions,
                "workspace": str(ctx.workspace), "prompt_file": str(prompt_file),
                "model_provider": gate.model.provider, "model": gate.model.model, "base_url": url or None}
        task_file = ctx.task_dir / "task.json"
        task_file.write_text(json.dumps(task, indent=2) + "\n", encoding="utf-8")
        values = {"workspace": str(ctx.workspace), "prompt_file": str(prompt_file), "task_file": str(task_file),
                  "model_provider": gate.model.provider or "", "model": gate.model.model or "", "base_url": url}
        args = render_args(client.settings.args, values, provider=self.name)
        extra = {"CTO_HARNESS_TASK_FILE": str(task_file), "CTO_HARNESS_PROMPT_FILE": str(prompt_file)}
        return client.invocation(ctx, [client.executable, *args], extra=extra)

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        keep_model_server_log(ctx)
        return Outcome(None, ("command provider: no protocol; judged by the harness's diff and tests only",))
