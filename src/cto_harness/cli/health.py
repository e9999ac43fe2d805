"""CLI commands that prove the fail-closed paths: ``health`` and ``validate case``.

Exit status: 0 when no check fails (skipped checks prove nothing but fail nothing), 1 when
one fails, 130 when interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from cto_harness.cli import echo_json

_KEEP = click.option("--keep", "keep", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Keep the scratch home and run dirs in this directory (default: a removed temp dir).")
_JSON = click.option("--json", "as_json", is_flag=True,
                     help='Print {"ok": ..., "counts": ..., "checks": {NAME: {"status": "ok|fail|skip", "ok": ...}}}.')


def _run_suite(run: Callable[[], object], as_json: bool) -> None:
    from cto_harness.proc import HarnessInterrupted, enable_subreaper, install_signal_handlers
    from cto_harness.selfcheck import SuiteResult

    enable_subreaper()
    restore = install_signal_handlers()
    try:
        result = run()
    except HarnessInterrupted as exc:
        click.echo(f"interrupted ({exc.signame})", err=True)
        sys.exit(130)
    finally:
        restore()
    assert isinstance(result, SuiteResult)
    if as_json:
        echo_json(result.to_json())
    else:
        for name, check in result.checks.items():
            click.echo(f"{check.status.upper() if check.status == 'fail' else check.status:4}  {name}"
                       + (f"  ({check.detail})" if check.status == "skip" and check.detail else ""))
            if check.status == "fail":
                click.echo(f"      expected: {check.expected}\n      observed: {check.observed}")
        kept = f" (runs kept in {result.workdir})" if result.kept else ""
        click.echo(f"{'all checks hold' if result.ok else 'NOT OK'}{kept}")
    sys.exit(0 if result.ok else 1)


@click.command("health")
@_JSON
@_KEEP
def health_command(as_json: bool, keep: Path | None) -> None:
    """Run the health checks: real runs through the fail-closed paths, offline, in seconds."""
    from cto_harness.selfcheck import run_health

    _run_suite(lambda: run_health(workdir=keep), as_json)


@click.group("validate")
def validate_group() -> None:
    """Validate a provider adapter against synthetic executables."""


@validate_group.command("case")
@_JSON
@_KEEP
def validate_case_command(as_json: bool, keep: Path | None) -> None:
    """Run the Case adapter against synthetic `ca` executables, one per contract path."""
    from cto_harness.selfcheck import validate_case

    _run_suite(lambda: validate_case(workdir=keep), as_json)
