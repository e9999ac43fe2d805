"""The local executor: a bounded pool of trial processes on this machine.

Each of the ``concurrency`` slots keeps a zygote (``cto_harness.proc.Zygote``): a process that
imported the run path once and forks a fresh child per trial, so a trial no longer pays an
interpreter start and its imports. The child runs ``cto_harness.jobs._trial.main``, the same
code ``python -m cto_harness.jobs._trial`` runs (``run_trial_process``, used by Ray workers).
``prepare`` (called while the coordinator is still single-threaded) imports the run path here
once and forks the slots' zygotes from this process, so no zygote starts an interpreter and
imports it all again; a zygote started later (a slot whose zygote died) is a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from cto_harness.core import harness_home
from cto_harness.evidence import EventLog, atomic_write_text, claim_run_dir
from cto_harness.jobs._plan import Trial
from cto_harness.jobs._spec import AgentSpec
from cto_harness.proc import ProcessResult, SpawnError, Zygote, ZygoteLost, run_bounded

TRIAL_WALL_LIMIT_S = 6 * 3600.0
"""Safety net around a trial process; a trial's own provider and test timeouts apply inside."""
POLL_S = 0.1
TRIAL_TARGET = "cto_harness.jobs._trial:main"
TRIAL_WARM = "cto_harness.jobs._trial:preload"
JOB_ERROR_FILE = "backend/job-error.txt"


def request_json(provider: str, fixture: str, run_dir: Path, options: dict[str, object],
                 parent_pid: int | None = None) -> str:
    """The trial process's one argument (see ``cto_harness.jobs._trial``)."""
    return json.dumps({"provider": provider, "fixture": fixture, "run_dir": str(run_dir),
                       "options": options, "parent_pid": os.getpid() if parent_pid is None else parent_pid})


@dataclass(frozen=True)
class TrialTask:
    """One trial ready to run: where, as whom, with which environment."""

    trial: Trial
    run_dir: Path
    agent: AgentSpec
    environ: Mapping[str, str]
    log_dir: Path
    """Where the trial process's own stdout/stderr go (outside the run dir, which verify checks)."""

    def options(self) -> dict[str, object]:
        return {"scenario": self.agent.scenario, "model_provider": self.agent.model_provider,
                "model": self.agent.model, "timeout_s": self.agent.timeout}


def run_trial_process(task: TrialTask, on_start: Callable[[int], None] | None = None,
                      *, run_dir: Path | None = None) -> ProcessResult:
    """Run one trial as a child process (through the harness's bounded runner) and wait for it."""
    target = run_dir or task.run_dir
    task.log_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "cto_harness.jobs._trial",
            request_json(task.agent.provider, task.trial.fixture, target, task.options())]
    return run_bounded(
        argv,
        cwd=task.log_dir,
        env=dict(task.environ),
        timeout_s=TRIAL_WALL_LIMIT_S,
        stdout_path=task.log_dir / f"{target.name}.stdout",
        stderr_path=task.log_dir / f"{target.name}.stderr",
        max_output_bytes=1024 * 1024,
        tag=f"cto-harness-trial-{target.name}-{os.getpid()}-{id(task):x}",
        on_start=on_start,
    )


def record_error_trial(task: TrialTask, reason: str) -> None:
    """A harness-side ``error`` trial (no usable run dir came back): a report says why."""
    from cto_harness.runner import recover_run

    run = claim_run_dir(task.run_dir, f"{task.run_dir.name}-{secrets.token_hex(6)}")
    try:
        events = EventLog(run.path / "events.jsonl")
        events.emit("run_started", run_id=run.run_id, fixture=task.trial.fixture_key, provider=task.agent.provider,
                    lane="fake" if task.agent.provider == "fake" else "real", harness_pid=os.getpid())
        events.emit("job_trial_error", reason=reason)
        events.close()
        atomic_write_text(run.path / JOB_ERROR_FILE, reason + "\n")
    finally:
        run.release()
    recover_run(run.path, home=harness_home(task.environ))


def run_trial_in_zygote(zygote: Zygote, task: TrialTask,
                        on_start: Callable[[int], None] | None = None) -> ProcessResult:
    """Run one trial in a fresh child of ``zygote`` and wait for it.

    Raises:
        ZygoteLost: The zygote died under the trial (the trial's tree is gone by then).
        SpawnError: The zygote could not fork.
    """
    task.log_dir.mkdir(parents=True, exist_ok=True)
    name = task.run_dir.name
    return zygote.run(
        [request_json(task.agent.provider, task.trial.fixture, task.run_dir, task.options(), zygote.pid)],
        cwd=task.log_dir,
        env=task.environ,
        timeout_s=TRIAL_WALL_LIMIT_S,
        stdout_path=task.log_dir / f"{name}.stdout",
        stderr_path=task.log_dir / f"{name}.stderr",
        tag=f"cto-harness-trial-{name}-{os.getpid()}-{id(task):x}",
        on_start=on_start,
    )


def _logs_dir(tasks: list[TrialTask]) -> Path:
    return tasks[0].run_dir.parents[3] / "logs"  # <job>/trials/<agent>/<fixture>/<attempt>


class LocalExecutor:
    """Runs up to ``concurrency`` trials at once, one zygote per slot; ``stop`` ends the job cleanly."""

    name = "local"

    def __init__(self, concurrency: int, *, zygotes: bool = True) -> None:
        self.concurrency = max(1, concurrency)
        self.zygotes = zygotes
        """False: a fresh ``python -m cto_harness.jobs._trial`` process per trial (slower; the bench's baseline)."""
        self.zygotes_started = 0
        self.zygotes_forked = 0
        """How many of them ``prepare`` forked from this process (the others are fresh interpreters)."""
        self._prepared: list[Zygote] = []

    def prepare(self, tasks: list[TrialTask]) -> None:
        """Fork the slots' zygotes from this process now, if it is single-threaded (else ``run``
        starts fresh ones); a zygote that cannot be forked is left to ``run`` to start."""
        if not (self.zygotes and tasks) or threading.active_count() != 1:
            return
        from cto_harness.jobs._trial import preload

        preload()  # once here, shared by every fork, instead of once per zygote
        logs = _logs_dir(tasks)
        logs.mkdir(parents=True, exist_ok=True)
        for _ in range(min(self.concurrency, len(tasks)) - len(self._prepared)):
            self.zygotes_started += 1
            try:
                zygote = Zygote.start(TRIAL_TARGET, warm=TRIAL_WARM, env=tasks[0].environ, cwd=logs,
                                      log_path=logs / f"zygote-{self.zygotes_started}.log", fork=True)
            except SpawnError:
                break
            self._prepared.append(zygote)
            self.zygotes_forked += zygote.forked

    def run(self, tasks: list[TrialTask], on_done: Callable[[TrialTask], None], stop: threading.Event) -> None:
        """Run ``tasks``; call ``on_done`` in this thread as each finishes.

        When ``stop`` is set no new trial starts and every running one gets SIGTERM, so it
        writes its ``interrupted`` report and exits. A zygote that dies or cannot start makes
        its trial an ``error`` trial (never a hang); the slot starts a new zygote for the next.
        """
        made: list[Zygote] = self._prepared
        self._prepared = []
        if not tasks:
            for zygote in made:
                zygote.close()
            return
        logs = _logs_dir(tasks)
        free: queue.SimpleQueue[Zygote | None] = queue.SimpleQueue()
        for n in range(self.concurrency):
            free.put(made[n] if n < len(made) else None)
        running: dict[int, Callable[[], bool]] = {}
        lock = threading.Lock()

        def zygote_for(task: TrialTask, current: Zygote | None) -> Zygote:
            if current is not None and current.alive():
                return current
            if current is not None:
                current.close(kill=True)
            logs.mkdir(parents=True, exist_ok=True)
            with lock:
                self.zygotes_started += 1
                n = self.zygotes_started
            zygote = Zygote.start(TRIAL_TARGET, warm=TRIAL_WARM, env=task.environ, cwd=logs,
                                  log_path=logs / f"zygote-{n}.log")
            with lock:
                made.append(zygote)
            return zygote

        def work(task: TrialTask) -> bool:
            if stop.is_set():
                return False
            key = id(task)
            if not self.zygotes:
                return run_process(task, key)
            zygote = free.get()
            try:
                zygote = zygote_for(task, zygote)
                with lock:
                    running[key] = zygote.terminate
                run_trial_in_zygote(zygote, task)
            except (ZygoteLost, SpawnError) as exc:
                zygote = None
                if not task.run_dir.exists():
                    record_error_trial(task, f"the trial worker failed: {exc}")
            finally:
                with lock:
                    running.pop(key, None)
                free.put(zygote)
            return True

        def run_process(task: TrialTask, key: int) -> bool:
            def started(pid: int) -> None:
                def terminate() -> bool:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                    return True

                with lock:
                    running[key] = terminate

            try:
                run_trial_process(task, started)
            finally:
                with lock:
                    running.pop(key, None)
            return True

        signalled: set[int] = set()

        def forward() -> None:
            with lock:
                pending = [(key, terminate) for key, terminate in running.items() if key not in signalled]
            for key, terminate in pending:
                if terminate():
                    signalled.add(key)

        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="cto-harness-trial") as pool:
                futures: dict[Future[bool], TrialTask] = {pool.submit(work, task): task for task in tasks}
                pending = set(futures)
                try:
                    while pending:
                        done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                        if stop.is_set():
                            forward()
                        for future in done:
                            if future.result():
                                on_done(futures[future])
                except BaseException:
                    stop.set()  # the coordinator failed: start nothing new, let running trials report
                    forward()
                    raise
        finally:
            for zygote in made:
                zygote.close()
