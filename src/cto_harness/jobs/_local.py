"""The local executor: a bounded pool of trial child processes on this machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from cto_harness.jobs._plan import Trial
from cto_harness.jobs._spec import AgentSpec
from cto_harness.proc import ProcessResult, run_bounded

TRIAL_WALL_LIMIT_S = 6 * 3600.0
"""Safety net around a trial process; a trial's own provider and test timeouts apply inside."""
POLL_S = 0.1


def request_json(provider: str, fixture: str, run_dir: Path, options: dict[str, object]) -> str:
    """The trial process's one argument (see ``cto_harness.jobs._trial``)."""
    return json.dumps({"provider": provider, "fixture": fixture, "run_dir": str(run_dir),
                       "options": options, "parent_pid": os.getpid()})


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


class LocalExecutor:
    """Runs up to ``concurrency`` trial processes at once; ``stop`` ends the job cleanly."""

    name = "local"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)

    def run(self, tasks: list[TrialTask], on_done: Callable[[TrialTask], None], stop: threading.Event) -> None:
        """Run ``tasks``; call ``on_done`` in this thread as each finishes.

        When ``stop`` is set no new trial starts and every running one gets SIGTERM, so it
        writes its ``interrupted`` report and exits.
        """
        running: dict[int, int] = {}
        lock = threading.Lock()

        def work(task: TrialTask) -> bool:
            if stop.is_set():
                return False
            key = id(task)

            def started(pid: int) -> None:
                with lock:
                    running[key] = pid

            try:
                run_trial_process(task, started)
            finally:
                with lock:
                    running.pop(key, None)
            return True

        signalled: set[int] = set()

        def forward() -> None:
            with lock:
                pids = [pid for pid in running.values() if pid not in signalled]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                signalled.add(pid)

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
