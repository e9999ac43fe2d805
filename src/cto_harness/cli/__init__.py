"""The command line: parse, call one library function, print. Nothing else lives here.

Subcommands are imported lazily so ``cto-harness --help`` stays fast.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from cto_harness import __version__

_LAZY: dict[str, tuple[str, str]] = {
    "run": ("cto_harness.cli.run:run_command", "Run one fixture through one provider (Stage 2)."),
    "fixtures": ("cto_harness.cli.run:fixtures_group", "List and show fixtures."),
    "schema": ("cto_harness.cli.run:schema_group", "Print JSON Schemas (report)."),
    "report": ("cto_harness.cli.run:report_group", "Show a run's report."),
    "verify": ("cto_harness.cli.run:verify_command", "Re-check a run dir against its report."),
    "runs": ("cto_harness.cli.run:runs_group", "Manage run directories (recover orphans)."),
    "health": ("cto_harness.cli.health:health_command", "Prove the fail-closed paths (--json)."),
    "validate": ("cto_harness.cli.health:validate_group", "Validate a provider adapter (case)."),
    "provider": ("cto_harness.cli.provider:provider_group", "Discover, build, admit and inspect providers."),
    "model-server": ("cto_harness.cli.model_server:model_server_command", "Serve a scripted model on loopback."),
    "certify": ("cto_harness.cli.certify:certify_command", "Run a real client on every built-in fixture."),
    "job": ("cto_harness.cli.job:job_group", "Run agents x fixtures x attempts in parallel; resume, report, list."),
    "index": ("cto_harness.cli.job:index_group", "Rebuild the jobs index (a cache of every trial)."),
}


def _register(name: str, target: str, help_text: str) -> None:
    _LAZY[name] = (target, help_text)


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_LAZY) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY:
            module_name, _, attr = _LAZY[cmd_name][0].partition(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _LAZY[name][1]) for name in sorted(_LAZY)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cto-harness")
def cli() -> None:
    """cto-harness: run coding-agent providers on fixture tasks; trust only evidence.

    Exit status of `run`: 0 pass, 1 fail, 3 blocked, 4 error, 2 usage error.
    """


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def main() -> None:
    try:
        cli.main(prog_name="cto-harness")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


