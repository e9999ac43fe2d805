"""CLI commands for jobs: job run/resume/report/list and index rebuild."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cto_harness.cli import Done, echo_json

if TYPE_CHECKING:
    from cto_harness.jobs import Executor, JobOutcome, JobSpec, Progress

_FORMATS = ["table", "md", "json", "csv", "jsonl-predictions"]


def _retry_classes(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


@contextmanager
def _stop_on_signals(display: _Display) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM stop the job cleanly: no new trial starts, running ones write reports."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if not stop.is_set():
            display.note(f"{signal.Signals(signum).name}: stopping; running trials are writing their reports")
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Display:
    """Live progress on stderr: a Rich bar on a TTY, one plain line per trial otherwise.

    Both show planned/done, pass/fail/blocked/error counts and an ETA (from the trials this
    coordinator ran, not the ones it skipped as already done).
    """

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.counts: Counter[str] = Counter()
        self.t0 = time.monotonic()
        self.ran = 0
        self._live: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def note(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message, markup=False, highlight=False)
        else:
            click.echo(f"\n{message}" if self.tty else message, err=True)

    def _status(self, event: Progress) -> tuple[str, str]:
        remaining = event.planned - event.done
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / self.ran * remaining:.0f}s" if self.ran and remaining else "-"
        counts = " ".join(f"{name} {self.counts[name]}" for name in ("pass", "fail", "blocked", "error"))
        return counts, eta

    def __call__(self, event: Progress) -> None:
        verdict = event.report.verdict if event.report else "missing"
        if event.trial is not None:
            self.counts[verdict] += 1
            if not event.skipped:
                self.ran += 1
        counts, eta = self._status(event)
        if self.tty:
            self._rich(event, counts, eta, verdict)
        elif event.trial is not None and not event.skipped:
            click.echo(f"[{event.done}/{event.planned}] {counts} · eta {eta} · {event.trial.label()}: {verdict}",
                       err=True)

    def _rich(self, event: Progress, counts: str, eta: str, verdict: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        if self._live is None:
            self._live = Bar(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[counts]}"), TextColumn("eta {task.fields[eta]}"),
                             TimeElapsedColumn(), console=Console(file=sys.stderr), transient=False)
            self._live.start()
            self._task = self._live.add_task("job", total=event.planned, counts=counts, eta=eta)
        self._live.update(self._task, completed=event.done, counts=counts, eta=eta)
        if event.trial is not None and not event.skipped and verdict != "pass":
            self._live.console.print(f"{event.trial.label()}: {verdict}", markup=False, highlight=False)


def _finish(outcome: JobOutcome, as_json: bool) -> None:
    from cto_harness.jobs import format_summary

    for path in outcome.recovered:
        click.echo(f"recovered orphaned trial: {path}", err=True)
    if as_json:
        echo_json(outcome.summary)
    else:
        click.echo(format_summary(outcome.summary, "table"))
        click.echo(f"\njob dir: {outcome.job_dir}  (ran {outcome.ran}, already done {outcome.skipped})")
    if outcome.interrupted:
        click.echo(f"job interrupted; finish it with: cto-harness job resume {outcome.job_dir}", err=True)
    raise Done(outcome.exit_code)  # run_job returned: trials, summary, page and index are closed


def _drive(job_dir: Path, executor: Executor, retry: frozenset[str], as_json: bool) -> None:
    from cto_harness.jobs import JobError, run_job

    failure: list[str] = []
    with _Display() as display, _stop_on_signals(display) as stop:
        try:
            outcome = run_job(job_dir, executor=executor, retry_classes=retry, stop=stop, progress=display)
        except JobError as exc:
            failure = [f"job failed: {exc}"]
        except Exception as exc:
            failure = [f"job failed (coordinator error): {type(exc).__name__}: {exc}",
                       f"finish it with: cto-harness job resume {job_dir}"]
    if failure:
        for line in failure:
            click.echo(line, err=True)
        sys.exit(4)
    _finish(outcome, as_json)


def _executor(spec: JobSpec, kind: str | None, concurrency: int | None, ray_address: str | None) -> Executor:
    from cto_harness.jobs import RayUnavailableError, make_executor

    try:
        return make_executor(kind or spec.executor, concurrency or spec.concurrency, ray_address)
    except RayUnavailableError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("job")
def job_group() -> None:
    """Run agents x fixtures x attempts, resume, report and list jobs.

    Exit status of run/resume: 0 every trial passed, 1 any did not, 2 usage error, 4 the job failed.
    """


def _spec_from_flags(providers: tuple[str, ...], scenario: str | None, fixtures: tuple[str, ...],
                     attempts: int | None, name: str | None) -> dict[str, Any]:
    agents = [{"name": p if scenario is None else f"{p}-{scenario}", "provider": p,
               **({"scenario": scenario} if scenario else {})} for p in providers or ("fake",)]
    return {"name": name or "job", "fixtures": list(fixtures or ("r1-string-slugify",)),
            "attempts": attempts or 1, "agents": agents}


@job_group.command("run")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Job spec TOML (agents, fixtures, attempts, concurrency, executor).")
@click.option("--jobs-dir", default=None, help="Where job dirs go [env CTO_HARNESS_JOBS_DIR; ./harness-jobs].")
@click.option("--job-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Re-run the same spec into this existing job dir (resume semantics).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Overrides the spec.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Trials at once (local).")
@click.option("--ray-address", default=None, help="Ray cluster address [env RAY_ADDRESS; none: a local cluster].")
@click.option("--provider", "providers", multiple=True, help="Without --spec: an agent per provider (repeatable).")
@click.option("--scenario", default=None, help="Without --spec: fake-lane scenario.")
@click.option("--fixture", "fixtures", multiple=True, help="Without --spec: fixture id or path (repeatable).")
@click.option("--attempts", type=click.IntRange(min=1), default=None, help="Without --spec: attempts per pair.")
@click.option("--name", default=None, help="Without --spec: the job name.")
@click.option("--retry-classes", default=None, help="Also re-run scored trials of these failure classes (a,b).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the table.")
def job_run(spec_path: Path | None, jobs_dir: str | None, job_dir: Path | None, executor: str | None,
            concurrency: int | None, ray_address: str | None, providers: tuple[str, ...], scenario: str | None,
            fixtures: tuple[str, ...], attempts: int | None, name: str | None, retry_classes: str | None,
            as_json: bool) -> None:
    """Run a job: every agent on every fixture, ATTEMPTS times, in parallel."""
    from cto_harness.jobs import JobError, SpecError, create_job, load_job, load_spec, parse_spec
    from cto_harness.jobs import jobs_dir as resolve_jobs_dir

    try:
        if spec_path is not None:
            if providers or fixtures or scenario or attempts or name:
                raise click.UsageError("--spec excludes --provider/--fixture/--scenario/--attempts/--name")
            spec = load_spec(spec_path)
        else:
            spec = parse_spec(_spec_from_flags(providers, scenario, fixtures, attempts, name), base=Path.cwd())
    except SpecError as exc:
        raise click.UsageError(str(exc)) from None
    runner = _executor(spec, executor, concurrency, ray_address)
    if job_dir is not None:
        try:
            _, existing = load_job(job_dir)
        except JobError as exc:
            raise click.UsageError(str(exc)) from None
        if existing.model_dump(exclude={"concurrency", "executor"}) != spec.model_dump(
                exclude={"concurrency", "executor"}):
            raise click.UsageError(f"{job_dir}: its job.json holds a different spec; use a new job dir")
        target = job_dir
    else:
        target = create_job(spec, resolve_jobs_dir(jobs_dir))
    click.echo(f"job dir: {target}", err=True)
    _drive(target, runner, _retry_classes(retry_classes), as_json)


@job_group.command("resume")
@click.argument("job_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None)
@click.option("--concurrency", type=click.IntRange(min=1), default=None)
@click.option("--ray-address", default=None)
@click.option("--retry-classes", default=None, help="Also re-run scored trials of these failure classes (a,b).")
@click.option("--json", "as_json", is_flag=True)
def job_resume(job_dir: Path, executor: str | None, concurrency: int | None, ray_address: str | None,
               retry_classes: str | None, as_json: bool) -> None:
    """Finish a job: run what has no scored, verified report; keep every earlier dir."""
    from cto_harness.jobs import JobError, load_job

    try:
        _, spec = load_job(job_dir)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None
    _drive(job_dir, _executor(spec, executor, concurrency, ray_address), _retry_classes(retry_classes), as_json)


@job_group.command("report")
@click.argument("job_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="table", show_default=True)
@click.option("--html", is_flag=True, help="Also print the path of the (re)written report.html.")
def job_report(job_dir: Path, fmt: str, html: bool) -> None:
    """Recompute summary.json and report.html from the run dirs and print the summary."""
    import json

    from cto_harness.jobs import JobError, format_summary, predictions, report_job

    try:
        summary = report_job(job_dir)
    except JobError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "jsonl-predictions":
        for entry in predictions(job_dir, summary):
            click.echo(json.dumps(entry, ensure_ascii=False))
    else:
        click.echo(format_summary(summary, fmt))
    if html:
        click.echo(f"html: {(job_dir / 'report.html').resolve()}", err=True)


@job_group.command("list")
@click.option("--jobs-dir", default=None, help="[env CTO_HARNESS_JOBS_DIR; ./harness-jobs]")
@click.option("--json", "as_json", is_flag=True)
def job_list(jobs_dir: str | None, as_json: bool) -> None:
    """List job dirs with their trial counts and verdicts."""
    from cto_harness.jobs import jobs_dir as resolve_jobs_dir
    from cto_harness.jobs import list_jobs

    jobs = list_jobs(resolve_jobs_dir(jobs_dir))
    if as_json:
        echo_json(jobs)
        return
    for job in jobs:
        verdicts = " ".join(f"{k} {v}" for k, v in job["verdicts"].items()) or "no summary"
        click.echo(f"{job['job_dir']}  {job['trials']} trials  {verdicts}")
    if not jobs:
        click.echo("no jobs")


@click.group("index")
def index_group() -> None:
    """The jobs index (a rebuildable SQLite cache)."""


@index_group.command("rebuild")
@click.option("--jobs-dir", default=None, help="[env CTO_HARNESS_JOBS_DIR; ./harness-jobs]")
@click.option("--json", "as_json", is_flag=True)
def index_rebuild(jobs_dir: str | None, as_json: bool) -> None:
    """Recreate index.sqlite from the run dirs; exit 1 if any report changed since indexed."""
    from cto_harness.jobs import jobs_dir as resolve_jobs_dir
    from cto_harness.jobs import rebuild

    result = rebuild(resolve_jobs_dir(jobs_dir).resolve())
    if as_json:
        echo_json({"index": str(result.path), "trials": result.trials, "changed": result.changed})
    else:
        click.echo(f"indexed {result.trials} trial run dirs into {result.path}")
        for path in result.changed:
            click.echo(f"CHANGED since indexed: {path}/report.json", err=True)
    sys.exit(1 if result.changed else 0)


