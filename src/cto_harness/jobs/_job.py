"""A job dir and its coordinator: plan, assess (resume), execute, summarise.

``<jobs-dir>/<UTC stamp>-<name>/`` holds ``job.json`` (the resolved spec, the planned trials,
the harness version), ``trials/…`` (each trial's normal run dir), ``logs/`` (the trial
processes' own output), ``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cto_harness import __version__
from cto_harness.core import harness_home
from cto_harness.evidence import Report, atomic_write_json
from cto_harness.jobs._local import LocalExecutor, TrialTask
from cto_harness.jobs._plan import Assessment, Trial, TrialBusy, assess, plan, read_report
from cto_harness.jobs._spec import JobSpec
from cto_harness.jobs._summary import summarize, write_summary

JOB_FILE = "job.json"
JOB_SCHEMA = "cto-harness.job/1"
LOCK_FILE = ".job.lock"
DEFAULT_JOBS_DIR = "harness-jobs"


class JobError(RuntimeError):
    """The job itself failed (not a trial): exit 4."""


def jobs_dir(value: str | Path | None, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(value or env.get("CTO_HARNESS_JOBS_DIR") or DEFAULT_JOBS_DIR)


def create_job(spec: JobSpec, root: Path, *, now: datetime | None = None) -> Path:
    """Make ``<root>/<UTC stamp>-<name>/`` with its ``job.json``."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        path = root / (f"{stamp}-{spec.name}" if n == 0 else f"{stamp}-{spec.name}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        write_job_file(path, spec, created_at=(now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"))
        return path.resolve()
    raise JobError(f"no free job directory name under {root}")


def write_job_file(job_dir: Path, spec: JobSpec, *, created_at: str) -> None:
    atomic_write_json(job_dir / JOB_FILE, {
        "schema_version": JOB_SCHEMA,
        "name": spec.name,
        "created_at": created_at,
        "harness_version": __version__,
        "spec": spec.model_dump(mode="json"),
        "trials": [{"agent": t.agent, "fixture": t.fixture, "attempt": t.attempt} for t in plan(spec)],
    })


def load_job(job_dir: Path) -> tuple[dict[str, Any], JobSpec]:
    """Read ``job.json``.

    Raises:
        JobError: missing or unreadable.
    """
    try:
        job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
        return job, JobSpec.model_validate(job["spec"])
    except (OSError, ValueError, KeyError) as exc:
        raise JobError(f"{job_dir}: not a job dir ({JOB_FILE}: {exc})") from exc


@contextmanager
def job_lock(job_dir: Path) -> Iterator[None]:
    """One coordinator per job dir at a time."""
    with open(job_dir / LOCK_FILE, "wb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobError(f"{job_dir}: another coordinator is running this job") from None
        yield


class Executor(Protocol):
    name: str

    def prepare(self, tasks: list[TrialTask]) -> None:
        """Called before anything else of the job runs (the progress display, threads)."""

    def run(self, tasks: list[TrialTask], on_done: Callable[[TrialTask], None], stop: threading.Event) -> None: ...


@dataclass(frozen=True)
class Progress:
    """A progress event for the display: a trial finished (or was skipped as already done).

    The first event of a run has ``trial`` None: the plan is known, nothing has run yet.
    """

    planned: int
    done: int
    trial: Trial | None
    report: Report | None
    skipped: bool = False


@dataclass
class JobOutcome:
    job_dir: Path
    summary: dict[str, Any]
    interrupted: bool
    ran: int
    skipped: int
    recovered: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every trial passed, 1 any did not, 4 the job did not complete (interrupted)."""
        if self.interrupted or not self.summary["complete"]:
            return 4
        return 0 if set(self.summary["verdicts"]) == {"pass"} else 1


def make_executor(kind: str, concurrency: int, ray_address: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(concurrency)
    if kind == "ray":
        import importlib.util

        from cto_harness.jobs._ray import RayExecutor, RayUnavailableError

        if importlib.util.find_spec("ray") is None:
            raise RayUnavailableError("the ray executor needs Ray: pip install 'cto-harness[ray]'")
        return RayExecutor(address=ray_address, concurrency=concurrency)
    raise JobError(f"unknown executor {kind!r}; valid: local, ray")


def run_job(
    job_dir: Path,
    *,
    executor: Executor | None = None,
    retry_classes: frozenset[str] = frozenset(),
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    environ: dict[str, str] | None = None,
) -> JobOutcome:
    """Run (or resume) the job in ``job_dir`` until every planned trial has a scored report.

    Raises:
        JobError: not a job dir, another coordinator owns it, or a trial dir is busy.
    """
    from cto_harness.jobs._index import TrialIndex

    job_dir = job_dir.resolve()
    job, spec = load_job(job_dir)
    stop = stop or threading.Event()
    base_env = dict(os.environ if environ is None else environ)
    agents = {agent.name: agent for agent in spec.agents}
    with job_lock(job_dir):
        trials = plan(spec)
        assessments: list[Assessment] = []
        try:
            assessments = [assess(job_dir, t, retry_classes=retry_classes, home=harness_home(base_env))
                           for t in trials]
        except TrialBusy as exc:
            raise JobError(str(exc)) from exc
        recovered = [a.recovered for a in assessments if a.recovered is not None]
        todo = [a for a in assessments if a.action == "run"]
        done_count = len(trials) - len(todo)
        tasks = [
            TrialTask(
                trial=a.trial,
                run_dir=a.next_dir,
                agent=agents[a.trial.agent],
                environ=agents[a.trial.agent].environ(base_env),
                log_dir=job_dir / "logs" / a.trial.agent / a.trial.fixture_key,
            )
            for a in todo
        ]
        runner = executor or make_executor(spec.executor, spec.concurrency)
        runner.prepare(tasks)  # while this process is single-threaded: the local executor forks its zygotes
        if progress is not None:
            progress(Progress(len(trials), 0, None, None))
            for i, a in enumerate(a for a in assessments if a.action == "skip"):
                progress(Progress(len(trials), i + 1, a.trial, read_report(a.next_dir), skipped=True))
        finished = 0

        def on_done(task: TrialTask) -> None:
            nonlocal finished
            from cto_harness.runner import recover_run

            if task.run_dir.is_dir() and not (task.run_dir / "report.json").exists():
                recover_run(task.run_dir, home=harness_home(task.environ))
                recovered.append(task.run_dir)
            report = read_report(task.run_dir)
            finished += 1
            if report is not None:
                index.record(task.trial, task.run_dir, report)
            if progress is not None:
                progress(Progress(len(trials), done_count + finished, task.trial, report))

        index = TrialIndex(job_dir)
        try:
            runner.run(tasks, on_done, stop)
        finally:
            index.close()
            summary = summarize(job_dir, job)
            write_summary(job_dir, summary)
            _write_html(job_dir, summary)
    return JobOutcome(job_dir=job_dir, summary=summary, interrupted=stop.is_set(), ran=finished,
                      skipped=len(trials) - len(todo), recovered=recovered)


def _write_html(job_dir: Path, summary: dict[str, Any]) -> None:
    from cto_harness.jobs._html import write_html

    write_html(job_dir, summary)


def report_job(job_dir: Path) -> dict[str, Any]:
    """Recompute and rewrite ``summary.json`` (and ``report.html``) from the run dirs."""
    job, _ = load_job(job_dir)
    summary = summarize(job_dir, job)
    write_summary(job_dir, summary)
    _write_html(job_dir, summary)
    return summary


def list_jobs(root: Path) -> list[dict[str, Any]]:
    """Every job dir under ``root`` with its name, trial count and verdict totals."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for path in sorted(root.iterdir()):
        if not (path / JOB_FILE).is_file():
            continue
        try:
            job, _ = load_job(path)
        except JobError:
            continue
        summary_path = path / "summary.json"
        verdicts: dict[str, int] = {}
        if summary_path.is_file():
            try:
                verdicts = json.loads(summary_path.read_text(encoding="utf-8")).get("verdicts", {})
            except ValueError:
                verdicts = {}
        out.append({"job_dir": str(path), "name": job["name"], "created_at": job.get("created_at"),
                    "trials": len(job["trials"]), "verdicts": verdicts})
    return out
