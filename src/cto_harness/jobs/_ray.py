"""The Ray executor: each trial is a Ray task on a worker that shares no filesystem with us.

A worker runs the trial exactly as the local executor does (a child forked by a zygote that
the worker process keeps for the tasks it runs, see ``cto_harness.proc.Zygote``) in its own
temp dir, then returns the run dir as a tar archive
plus a manifest of file digests. The coordinator checks the archive against the manifest,
unpacks it aside, runs ``verify`` on it and only then moves it into the job dir. Engine
retries are off (``max_retries=0``): a lost worker or an archive that fails verification
becomes a harness-side ``error`` trial (kept as evidence), never a silent re-run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from cto_harness.core import harness_home
from cto_harness.evidence import verify_run
from cto_harness.jobs._archive import ArchiveRejected, pack_run_dir, unpack_archive
from cto_harness.jobs._local import TRIAL_TARGET, TRIAL_WARM, TrialTask, record_error_trial, run_trial_in_zygote
from cto_harness.jobs._plan import Trial
from cto_harness.jobs._spec import AgentSpec
from cto_harness.proc import SpawnError, Zygote, ZygoteLost

QUARANTINE_DIR = "quarantine"
ARCHIVE_SUFFIX = ".tar.gz"
POLL_S = 0.1
SCRATCH_ENV = "CTO_HARNESS_JOBS_SCRATCH"
"""Where a worker makes its per-trial temp dirs (default: the system temp dir)."""


class RayUnavailableError(RuntimeError):
    """Ray is not installed (``pip install 'cto-harness[ray]'``)."""


class _WorkerZygote:
    """The zygote of this Ray worker process (Ray reuses a worker for many tasks)."""

    zygote: Zygote | None = None


def _worker_zygote(environ: dict[str, str]) -> Zygote:
    current = _WorkerZygote.zygote
    if current is not None and current.alive():
        return current
    if current is not None:
        current.close(kill=True)
    # Outside the per-trial scratch dirs (they are removed after each trial); one per worker process.
    home = Path(tempfile.gettempdir()) / f"cto-harness-ray-zygote-{os.getpid()}"
    home.mkdir(parents=True, exist_ok=True)
    _WorkerZygote.zygote = Zygote.start(TRIAL_TARGET, warm=TRIAL_WARM, env=environ, cwd=home,
                                        log_path=home / "zygote.log")
    return _WorkerZygote.zygote


def _ship_environ(task: TrialTask) -> dict[str, str]:
    """Only harness settings travel to a worker; the rest of its environment is its own."""
    return {k: v for k, v in task.environ.items() if k.startswith("CTO_HARNESS_")}


def run_remote_trial(payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Worker side: run one trial in a private temp dir; return (tar archive, manifest)."""
    from cto_harness.runner import recover_run

    environ = dict(os.environ)
    environ.update(payload["environ"])
    base = environ.get(SCRATCH_ENV) or None
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="cto-harness-ray-trial-", dir=base))
    try:
        trial = Trial(**payload["trial"])
        run_dir = scratch / "run" / payload["dir_name"]
        task = TrialTask(trial=trial, run_dir=run_dir, agent=AgentSpec.model_validate(payload["agent"]),
                         environ=environ, log_dir=scratch / "logs")
        exit_code: int | None = None
        # On ray.cancel the trial gets SIGTERM and writes its interrupted report: ship that.
        with contextlib.suppress(KeyboardInterrupt):
            try:
                exit_code = run_trial_in_zygote(_worker_zygote(environ), task).exit_code
            except (ZygoteLost, SpawnError) as exc:
                _WorkerZygote.zygote = None
                if not run_dir.exists():
                    record_error_trial(task, f"the worker's trial zygote failed: {exc}")
        if run_dir.is_dir() and not (run_dir / "report.json").exists():
            recover_run(run_dir, home=harness_home(environ))
        data, files = pack_run_dir(run_dir)
        log = task.log_dir / f"{run_dir.name}.stderr"
        stderr = log.read_bytes()[-2000:].decode("utf-8", "replace") if log.is_file() else ""
        manifest = {"dir_name": run_dir.name, "files": files, "worker": socket.gethostname(),
                    "exit_code": exit_code, "stderr_tail": stderr}
        return data, manifest
    finally:
        _remove_later(scratch)


class _Cleaner:
    """This worker's one thread that removes finished trials' scratch dirs after their archive went back."""

    pool: ThreadPoolExecutor | None = None


def _remove_later(path: Path) -> None:
    """Remove ``path`` off the task's critical path (the pool's thread is joined at interpreter exit)."""
    if _Cleaner.pool is None:
        _Cleaner.pool = ThreadPoolExecutor(1, thread_name_prefix="cto-harness-scratch-rm")
    _Cleaner.pool.submit(shutil.rmtree, path, ignore_errors=True)


def place_archive(task: TrialTask, job_dir: Path, data: bytes, manifest: dict[str, Any]) -> str | None:
    """Check, unpack and verify an archive, then move its run dir into place; on failure keep it aside and say why."""
    staging = task.run_dir.parent / f".incoming-{task.run_dir.name}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    files, dir_name = manifest.get("files"), manifest.get("dir_name")
    try:
        if not isinstance(files, dict):
            raise ArchiveRejected("manifest has no file list")
        if dir_name != task.run_dir.name:
            raise ArchiveRejected(f"the archive holds run dir {dir_name!r}, not {task.run_dir.name!r}")
        unpacked = unpack_archive(data, files, dir_name, staging)
    except ArchiveRejected as exc:
        problem = str(exc)
    else:
        checked = verify_run(unpacked)
        if checked.ok:
            os.rename(unpacked, task.run_dir)
            os.rmdir(staging)
            return None
        problem = f"run dir fails verify: {checked.problems[0]}"
    name = staging.name.removeprefix(".incoming-")
    aside = job_dir / QUARANTINE_DIR / task.trial.agent / task.trial.fixture_key / name
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, aside)
    (aside.parent / f"{aside.name}{ARCHIVE_SUFFIX}").write_bytes(data)
    return f"{problem}; the archive is kept at {aside.relative_to(job_dir)}"


class RayExecutor:
    """Runs trials as Ray tasks (``max_retries=0``), at most ``concurrency`` in flight."""

    name = "ray"

    def __init__(self, address: str | None = None, concurrency: int = 2) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.concurrency = max(1, concurrency)
        self.startup_s: float | None = None

    def prepare(self, tasks: list[TrialTask]) -> None:
        """Nothing to do before the job: the cluster starts in ``run``."""

    def run(self, tasks: list[TrialTask], on_done: Callable[[TrialTask], None], stop: threading.Event) -> None:
        try:
            ray: Any = importlib.import_module("ray")
        except ImportError as exc:
            raise RayUnavailableError("the ray executor needs Ray: pip install 'cto-harness[ray]'") from exc
        if not tasks:
            return
        job_dir = tasks[0].run_dir.parents[3]
        started = time.monotonic()
        main = threading.current_thread() is threading.main_thread()
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
        owned = not ray.is_initialized()
        if owned:
            local = {} if self.address else {"num_cpus": self.concurrency, "include_dashboard": False}
            ray.init(address=self.address, log_to_driver=False, configure_logging=False, **local)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)  # ray.init installs its own SIGTERM handler: ours stop the job cleanly
        self.startup_s = time.monotonic() - started
        remote = ray.remote(num_cpus=1, max_retries=0)(run_remote_trial)
        try:
            self._drive(ray, remote, tasks, on_done, stop, job_dir)
        finally:
            if owned:
                ray.shutdown()

    def _drive(self, ray: Any, remote: Any, tasks: list[TrialTask], on_done: Callable[[TrialTask], None],
               stop: threading.Event, job_dir: Path) -> None:
        """Keep ``concurrency`` tasks in flight; check and place what comes back in a thread of its own.

        A returned trial's slot is refilled before its archive is checked, so a worker never
        waits for the coordinator's verification; ``on_done`` still runs in this thread.
        """
        queue = list(reversed(tasks))
        flight: dict[Any, TrialTask] = {}
        placing: dict[Future[None], TrialTask] = {}
        cancelled = False
        with ThreadPoolExecutor(1, thread_name_prefix="cto-harness-place") as placer:
            while queue or flight or placing:
                while queue and len(flight) < self.concurrency and not stop.is_set():
                    task = queue.pop()
                    flight[remote.remote(_payload(task))] = task
                if stop.is_set():
                    queue.clear()
                    if not cancelled:
                        for ref in flight:
                            ray.cancel(ref, force=False)
                        cancelled = True
                for future in [f for f in placing if f.done()]:
                    future.result()
                    on_done(placing.pop(future))
                if flight:
                    done, _ = ray.wait(list(flight), num_returns=1, timeout=POLL_S)
                    for ref in done:
                        task = flight.pop(ref)
                        placing[placer.submit(self._place, ray, ref, task, stop, job_dir)] = task
                elif placing:
                    wait(placing, timeout=POLL_S, return_when=FIRST_COMPLETED)

    @staticmethod
    def _place(ray: Any, ref: Any, task: TrialTask, stop: threading.Event, job_dir: Path) -> None:
        try:
            data, manifest = ray.get(ref)
        except Exception as exc:
            why = "cancelled (job stopped)" if stop.is_set() else "the Ray task failed (worker lost?)"
            record_error_trial(task, f"{why}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            return
        problem = place_archive(task, job_dir, data, manifest)
        if problem is not None:
            record_error_trial(task, f"the worker's archive was rejected: {problem}")


def _payload(task: TrialTask) -> dict[str, Any]:
    return {"trial": {"agent": task.trial.agent, "fixture": task.trial.fixture, "attempt": task.trial.attempt},
            "dir_name": task.run_dir.name, "agent": task.agent.model_dump(mode="json"),
            "environ": _ship_environ(task)}
