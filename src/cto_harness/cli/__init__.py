"""The command line: parse, call one library function, print. Nothing else lives here.

Subcommands are imported lazily so ``cto-harness --help`` stays fast. ``main`` is the
one exception hook: a usage error (bad option, unknown name, unusable path or config)
is one line and exit 2; Ctrl-C is exit 130; any other escaping exception is a harness
bug: traceback and exit 4 (never 1, which a script reads as verdict ``fail``).
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from cto_harness import __version__, _pydantic_plugins

_pydantic_plugins.disable()

_LAZY: dict[str, tuple[str, str]] = {
    "run": ("cto_harness.cli.run:run_command", "Run one fixture through one provider (Stage 2)."),
    "fixtures": ("cto_harness.cli.run:fixtures_group", "List and show fixtures."),
    "schema": ("cto_harness.cli.run:schema_group", "Print JSON Schemas (report)."),
    "report": ("cto_harness.cli.run:report_group", "Show a run's report."),
    "verify": ("cto_harness.cli.run:verify_command", "Re-check a run dir against its report."),
    "keys": ("cto_harness.cli.keys:keys_group", "Show the public key that signs run evidence."),
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

    Exit status of `run`: 0 pass, 1 fail, 3 blocked, 4 error, 2 usage error
    (2 is a usage error for every command; 130 after Ctrl-C).
    """


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


USAGE_EXIT = 2
INTERRUPTED_EXIT = 130
BUG_EXIT = 4


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Library errors that mean "the caller named something unusable" (imported only on error)."""
    from cto_harness.core import ConfigError
    from cto_harness.fixtures import UnknownFixtureError
    from cto_harness.providers import UnknownProviderError
    from cto_harness.supply_chain import UnknownProviderName

    return (ConfigError, UnknownFixtureError, UnknownProviderError, UnknownProviderName)


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class Done(SystemExit):
    """A command's end once all it wrote is closed (a run's evidence, a job's summary and index).

    Raised as ``sys.exit`` would be. The console script then leaves through
    ``proc.exit_now`` (no interpreter teardown, ~10 ms); a caller that passed ``args``
    (or click's test runner) gets an ordinary ``SystemExit``.
    """


def main(args: list[str] | None = None) -> None:
    """The ``cto-harness`` entry point and its exception hook."""
    try:
        code = cli.main(args=args, prog_name="cto-harness", standalone_mode=False)
    except Done as done:
        if args is None and isinstance(done.code, int):
            from cto_harness.proc import exit_now

            exit_now(done.code)
        raise
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt) as exc:
        interrupted = isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt)
        click.echo("interrupted" if interrupted else "aborted", err=True)
        sys.exit(INTERRUPTED_EXIT if interrupted else 1)
    except Exception as exc:
        if isinstance(exc, _usage_error_types()):
            click.echo(f"Error: {_one_line(exc)}", err=True)
            sys.exit(USAGE_EXIT)
        import traceback

        traceback.print_exc()
        click.echo(f"cto-harness: internal error (a harness bug): {type(exc).__name__}: {_one_line(exc)}", err=True)
        sys.exit(BUG_EXIT)
    sys.exit(code if isinstance(code, int) else 0)


