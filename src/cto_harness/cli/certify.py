"""``cto-harness certify NAME``: a real client against every built-in fixture, offline."""

from __future__ import annotations

import os
import sys

import click

from cto_harness.cli.run import _runs_dir


@click.command("certify")
@click.argument("name")
@click.option("--runs-dir", default=None, help="Where run dirs go [env CTO_HARNESS_RUNS_DIR; ./harness-runs].")
@click.option("--fixture", "fixtures", multiple=True, help="Only this built-in fixture (repeatable).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Per-run provider timeout in seconds.")
def certify_command(name: str, runs_dir: str | None, fixtures: tuple[str, ...], timeout: float | None) -> None:
    """Run client NAME on every built-in fixture against the scripted model on loopback.

    NAME is case or a real client (claude-code, codex, mini-swe-agent, pi). Prints one row per
    fixture. Exit 0 only when every fixture passes in the real lane with usage parsed; 1
    otherwise (also when loopback is unreachable: nothing is run then); 2 on a usage error.
    """
    from cto_harness.core import ConfigError
    from cto_harness.fixtures import UnknownFixtureError
    from cto_harness.model_server import ScriptError
    from cto_harness.proc import enable_subreaper, install_signal_handlers
    from cto_harness.providers import UnknownProviderError
    from cto_harness.selfcheck import LoopbackUnreachable, UncertifiableProviderError, certify

    runs = _runs_dir(runs_dir)
    enable_subreaper()
    restore = install_signal_handlers()
    try:
        result = certify(name, runs_dir=runs, environ=dict(os.environ), fixtures=list(fixtures),
                         timeout_s=timeout,
                         on_fixture=lambda row: click.echo(f"{row.fixture}: {row.verdict} {row.failure_class or ''}",
                                                           err=True))
    except (UnknownFixtureError, UnknownProviderError, ConfigError, UncertifiableProviderError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from exc
    except (ScriptError, LoopbackUnreachable) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        restore()
    click.echo(result.table())
    sys.exit(0 if result.ok else 1)
