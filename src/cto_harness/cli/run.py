"""CLI commands for runs: run, fixtures, schema, report, verify, runs."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cto_harness.cli import Done, echo_json

if TYPE_CHECKING:
    from cto_harness.evidence import Report
    from cto_harness.runner import HeldGrader

DEFAULT_RUNS_DIR = "harness-runs"


def _runs_dir(value: str | None) -> Path:
    """``--runs-dir``, else ``CTO_HARNESS_RUNS_DIR``, else ./harness-runs; unusable is a usage error.

    It must be a directory the harness may write, or not exist yet under one: a traceback
    (exit 1) would read as verdict ``fail`` to a script.
    """
    path = Path(value or os.environ.get("CTO_HARNESS_RUNS_DIR") or DEFAULT_RUNS_DIR).absolute()
    hint = "--runs-dir" if value else "CTO_HARNESS_RUNS_DIR" if os.environ.get("CTO_HARNESS_RUNS_DIR") else None
    existing = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        what = "is not a directory" if existing == path else f"cannot be created: {existing} is not a directory"
        raise click.BadParameter(f"{path} {what}", param_hint=hint or "runs dir")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK | (os.R_OK if existing == path else 0)):
        raise click.BadParameter(f"{existing} is not {'readable and ' if existing == path else ''}writable",
                                 param_hint=hint or "runs dir")
    return path


def _summary(report: Report, run_dir: Path) -> str:
    lines = [
        f"verdict:       {report.verdict}",
        f"failure class: {report.failure_class or '-'}",
        f"fixture:       {report.fixture.id}",
        f"provider:      {report.provider.name} (lane {report.lane})",
        f"run dir:       {run_dir}",
    ]
    if report.backend.process_started:
        lines.append(f"sandbox:       {_sandbox_line(report)}")
    if report.tests.ran:
        counts = report.tests.counts
        detail = f" ({counts.passed} passed, {counts.failed} failed)" if counts else ""
        lines.append(f"tests:         {'passed' if report.tests.passed else 'failed'}{detail}")
    lines.extend(_usage_lines(report))
    lines.extend(f"  - {reason}" for reason in report.reasons)
    return "\n".join(lines)


def _usage_lines(report: Report) -> list[str]:
    def figures(usage: object) -> str:
        if usage is None:
            return "-"
        calls, tin, tout, cost = (getattr(usage, k) for k in ("calls", "input_tokens", "output_tokens", "cost_usd"))
        return (f"{'?' if calls is None else calls} calls, {'?' if tin is None else tin} in / "
                f"{'?' if tout is None else tout} out tokens, cost {'-' if cost is None else f'${cost:.4f}'}")

    lines = []
    if report.network is not None:
        net = report.network
        lines.append(f"network:       {net.mode}, endpoint {net.endpoint or 'none (no network)'}, "
                     f"{net.calls} calls, {net.denied} denied")
    lines.append(f"usage:         measured {figures(report.usage.measured)}")
    lines.append(f"               reported {figures(report.usage.reported)}")
    lines.extend(f"  ! usage disagreement: {d}" for d in report.usage.disagreements())
    return lines


def _sandbox_line(report: Report) -> str:
    if report.backend.sandbox == "none":
        return "NONE: the provider ran unconfined (it could read and write what the harness user can)"
    return report.backend.sandbox or "unknown"


def _unconfined_warning(run_dir: Path) -> str | None:
    """verify's note when the run it checked was made without a sandbox."""
    from cto_harness.evidence import load_report

    try:
        report = load_report(run_dir)
    except (OSError, ValueError):
        return None
    if report.backend.process_started and report.backend.sandbox == "none":
        return ("warning: this run was made WITHOUT a sandbox (CTO_HARNESS_SANDBOX=none or no bubblewrap): "
                "the provider could have written anything the harness user can, evidence included")
    return None


def _finite_positive(value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value!r} is not a positive, finite number of seconds", param_hint="--timeout")
    return value


@click.command("run")
@click.option("--provider", default="fake", show_default=True, help="Provider adapter name.")
@click.option("--scenario", default=None, help="Fake-lane scenario (default: fix).")
@click.option("--fixture", "fixture", default="r1-string-slugify", show_default=True,
              help="Built-in fixture id or path to a fixture directory.")
@click.option("--runs-dir", default=None, help="Where run dirs go [env CTO_HARNESS_RUNS_DIR; ./harness-runs].")
@click.option("--timeout", type=float, default=None, callback=lambda _c, _p, v: _finite_positive(v),
              help="Provider timeout in seconds (overrides CTO_HARNESS_<P>_TIMEOUT_SECONDS).")
@click.option("--model-provider", default=None, help="Admitted model provider (real lanes).")
@click.option("--model", default=None, help="Admitted model (real lanes).")
@click.option("--unadmitted", is_flag=True, help="Local experiment: allow an unadmitted executable.")
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON instead of a summary.")
def run_command(provider: str, scenario: str | None, fixture: str, runs_dir: str | None, timeout: float | None,
                model_provider: str | None, model: str | None, unadmitted: bool, as_json: bool) -> None:
    """Run one fixture through one provider and write its evidence.

    Exit status: 0 pass, 1 fail, 3 blocked, 4 error, 2 usage error.
    """
    # Nothing the imports build is garbage: no cycle collection while they run, and what
    # they built (it lives as long as the process) is never traversed by a collection again.
    gc.disable()
    from cto_harness._share import early_shared
    from cto_harness.proc import enable_subreaper
    from cto_harness.runner import hold_grader

    enable_subreaper()
    # The grading sandbox starts first: its interpreter and pytest load while ours imports.
    # With the subtrees the verifier will share bound already (a big file, a big dir).
    grader = hold_grader(os.environ, shared=early_shared(fixture))
    try:
        code = _run(provider, scenario, fixture, runs_dir, timeout, model_provider, model, unadmitted, as_json,
                    grader)
    finally:
        if grader is not None:
            grader.close()
    # The evidence is written, fsynced and closed (run_stage2 returned) and the summary is
    # printed: the interpreter's teardown would only free memory.
    raise Done(code)


def _run(provider: str, scenario: str | None, fixture: str, runs_dir: str | None, timeout: float | None,
         model_provider: str | None, model: str | None, unadmitted: bool, as_json: bool,
         grader: HeldGrader | None) -> int:
    """One run; its exit status (``sys.exit`` only before a run dir owns the run)."""
    try:
        from cto_harness.core import ConfigError
        from cto_harness.evidence import EXIT_CODES
        from cto_harness.fixtures import UnknownFixtureError
        from cto_harness.proc import HarnessInterrupted, install_signal_handlers
        from cto_harness.providers import RunOptions, UnknownProviderError
        from cto_harness.providers.fake import SCENARIOS
        from cto_harness.runner import RunRequest, run_stage2
    finally:
        gc.freeze()
        gc.enable()

    if scenario is not None and provider == "fake" and scenario not in SCENARIOS:
        raise click.BadParameter(f"{scenario!r}; valid: {', '.join(SCENARIOS)}", param_hint="--scenario")
    if scenario is not None and provider != "fake":
        raise click.BadParameter("scenarios exist only for the fake provider", param_hint="--scenario")
    request = RunRequest(
        provider=provider,
        fixture=fixture,
        runs_dir=_runs_dir(runs_dir),
        options=RunOptions(scenario=scenario, model_provider=model_provider, model=model,
                           timeout_s=timeout, unadmitted=unadmitted),
        environ=dict(os.environ),
        grader=grader,
    )
    restore = install_signal_handlers()
    try:
        result = run_stage2(request)
    except (UnknownFixtureError, UnknownProviderError, ConfigError) as exc:
        raise click.UsageError(str(exc).strip("'\"")) from exc
    except HarnessInterrupted as exc:
        # Only before a run dir owns the run (a run in progress always reports itself).
        click.echo(f"interrupted by {exc.signame} before the run started", err=True)
        sys.exit(EXIT_CODES["error"])
    finally:
        restore()
    for path in result.recovered:
        click.echo(f"recovered orphaned run: {path}", err=True)
    if as_json:
        click.echo(result.report.model_dump_json(indent=2))
    else:
        click.echo(_summary(result.report, result.run_dir))
    return EXIT_CODES[result.report.verdict]


@click.group("fixtures")
def fixtures_group() -> None:
    """List and show fixtures."""


@fixtures_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def fixtures_list(as_json: bool) -> None:
    """List the built-in fixtures."""
    from cto_harness.fixtures import builtin_fixture_ids, load_fixture, resolve_fixture

    fixtures = [load_fixture(resolve_fixture(i), builtin=True) for i in builtin_fixture_ids()]
    if as_json:
        echo_json([{"id": f.id, "title": f.title, "digest": f.digest} for f in fixtures])
        return
    for f in fixtures:
        click.echo(f"{f.id:28} {f.title}")


@fixtures_group.command("show")
@click.argument("fixture")
@click.option("--json", "as_json", is_flag=True)
def fixtures_show(fixture: str, as_json: bool) -> None:
    """Show one fixture (built-in id or directory) after validating it."""
    from cto_harness.fixtures import FixtureError, UnknownFixtureError, load_fixture, resolve_fixture

    try:
        loaded = load_fixture(resolve_fixture(fixture))
    except UnknownFixtureError as exc:
        raise click.UsageError(str(exc).strip("'\"")) from exc
    except FixtureError as exc:
        raise click.ClickException(f"fixture invalid: {exc}") from exc
    if as_json:
        click.echo(loaded.model_dump_json(indent=2))
        return
    click.echo(f"id:            {loaded.id}\ntitle:         {loaded.title}\ndigest:        {loaded.digest}")
    click.echo(f"test command:  {' '.join(loaded.test_command)} (timeout {loaded.test_timeout_s:g} s)")
    click.echo(f"grading tests: {', '.join(loaded.grading_tests)}")
    click.echo(f"files:         {', '.join(loaded.files)}")
    click.echo(f"\n{loaded.instructions.strip()}")


@click.group("schema")
def schema_group() -> None:
    """Print JSON Schemas generated from the models."""


@schema_group.command("report")
def schema_report() -> None:
    """The JSON Schema of report.json."""
    from cto_harness.evidence import report_schema

    echo_json(report_schema())


@click.group("report")
def report_group() -> None:
    """Read run reports."""


@report_group.command("show")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def report_show(run_dir: Path, as_json: bool) -> None:
    """Human summary of RUN_DIR/report.json."""
    from cto_harness.evidence import load_report

    try:
        report = load_report(run_dir)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{run_dir}: no report.json (try `cto-harness runs recover`)") from exc
    except ValueError as exc:
        raise click.ClickException(f"{run_dir}: {exc}") from exc
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        click.echo(_summary(report, run_dir))


@click.command("verify")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pubkey", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM public key that must have signed the run [default: the harness home's key].")
@click.option("--json", "as_json", is_flag=True)
def verify_command(run_dir: Path, pubkey: Path | None, as_json: bool) -> None:
    """Check RUN_DIR's signature, every artifact digest and the event hash chain.

    Exit 0 when everything matches the report and the signed attestation; 1 and the
    first mismatch otherwise; 2 when RUN_DIR is missing or is no run dir at all (neither
    report.json nor events.jsonl).
    """
    from cto_harness.evidence import load_public_key, verify_run

    if not any((run_dir / name).exists() for name in ("report.json", "events.jsonl")):
        raise click.BadParameter(f"{run_dir} is not a run dir (no report.json, no events.jsonl)",
                                 param_hint="RUN_DIR")
    try:
        key = load_public_key(pubkey.read_bytes()) if pubkey else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pubkey") from exc
    result = verify_run(run_dir, key)
    warning = _unconfined_warning(run_dir)
    if as_json:
        echo_json({"ok": result.ok, "problems": result.problems, "checked_artifacts": result.checked_artifacts,
                   "warnings": [warning] if warning else []})
    elif result.ok:
        click.echo(f"ok: signature, {result.checked_artifacts} artifacts and the event chain match the report")
    else:
        click.echo(f"MISMATCH: {result.problems[0]}", err=True)
        for problem in result.problems[1:]:
            click.echo(f"  also: {problem}", err=True)
    if warning and not as_json:
        click.echo(warning, err=True)
    sys.exit(0 if result.ok else 1)


@click.group("runs")
def runs_group() -> None:
    """Manage run directories."""


@runs_group.command("recover")
@click.option("--runs-dir", default=None, help="[env CTO_HARNESS_RUNS_DIR; ./harness-runs]")
@click.option("--json", "as_json", is_flag=True)
def runs_recover(runs_dir: str | None, as_json: bool) -> None:
    """Give every orphaned run dir (no report, no live harness) an `interrupted` report."""
    from cto_harness.runner import recover_runs

    recovered = recover_runs(_runs_dir(runs_dir).resolve())
    if as_json:
        echo_json({"recovered": [str(p) for p in recovered]})
        return
    for path in recovered:
        click.echo(f"recovered: {path}")
    if not recovered:
        click.echo("no orphaned run directories")


