"""The plan (one trial per agent x fixture x attempt) and each trial's directories on disk.

A trial's run dirs live at ``trials/<agent>/<fixture>/attempt-<n>[-retry-<m>]``. Nothing is
ever deleted: a re-run gets the next ``-retry-<m>`` beside the old dirs, and the latest dir
(highest m) is the trial's result.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cto_harness.evidence import Report, is_locked, load_report, verify_run
from cto_harness.jobs._spec import JobSpec, fixture_key

TRIALS_DIR = "trials"
SCORED = frozenset({"pass", "fail", "blocked"})
_DIR = re.compile(r"^attempt-(\d+)(?:-retry-(\d+))?$")


@dataclass(frozen=True)
class Trial:
    """One planned trial; its key is (agent, fixture, attempt)."""

    agent: str
    fixture: str
    """The fixture reference as resolved in the spec (id or absolute path)."""
    attempt: int

    @property
    def fixture_key(self) -> str:
        return fixture_key(self.fixture)

    def base(self, job_dir: Path) -> Path:
        return job_dir / TRIALS_DIR / self.agent / self.fixture_key

    def label(self) -> str:
        return f"{self.agent}/{self.fixture_key}/attempt-{self.attempt}"


def plan(spec: JobSpec) -> list[Trial]:
    """Every trial, attempt-major so a partial job already covers every agent and fixture."""
    return [
        Trial(agent.name, fixture, attempt)
        for attempt in range(1, spec.attempts + 1)
        for fixture in spec.fixtures
        for agent in spec.agents
    ]


def dir_name(attempt: int, retry: int) -> str:
    return f"attempt-{attempt}" if retry == 0 else f"attempt-{attempt}-retry-{retry}"


def _attempt_dirs(base: Path) -> dict[int, list[tuple[int, Path]]]:
    """The run dirs under one agent/fixture dir (directories, not symlinks): attempt -> [(retry, path)],
    oldest first."""
    found: dict[int, list[tuple[int, Path]]] = {}
    try:
        entries = os.scandir(base)
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        for entry in entries:
            match = _DIR.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                found.setdefault(int(match.group(1)), []).append((int(match.group(2) or 0), base / entry.name))
    for dirs in found.values():
        dirs.sort()
    return found


def trial_dirs(job_dir: Path, trial: Trial) -> list[tuple[int, Path]]:
    """The trial's run dirs as (retry, path), oldest first."""
    return _attempt_dirs(trial.base(job_dir)).get(trial.attempt, [])


def latest_dir(job_dir: Path, trial: Trial) -> Path | None:
    dirs = trial_dirs(job_dir, trial)
    return dirs[-1][1] if dirs else None


def latest_dirs(job_dir: Path, trials: list[Trial]) -> dict[Trial, Path]:
    """``latest_dir`` of each trial that has a run dir, listing each agent/fixture dir once
    (``latest_dir`` per trial lists it once per attempt: 90 ms for a 200-attempt summary)."""
    listings: dict[Path, dict[int, list[tuple[int, Path]]]] = {}
    latest: dict[Trial, Path] = {}
    for trial in trials:
        base = trial.base(job_dir)
        if base not in listings:
            listings[base] = _attempt_dirs(base)
        dirs = listings[base].get(trial.attempt)
        if dirs:
            latest[trial] = dirs[-1][1]
    return latest


def read_report(run_dir: Path) -> Report | None:
    try:
        return load_report(run_dir)
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Assessment:
    """What resume should do with one trial."""

    trial: Trial
    action: Literal["skip", "run"]
    next_dir: Path
    """Where the trial runs if it runs (a fresh dir; the old ones stay)."""
    why: str
    retry: bool = False
    recovered: Path | None = None
    """An orphaned dir that was finalised (``interrupted``) on the way."""


def assess(job_dir: Path, trial: Trial, *, retry_classes: frozenset[str] = frozenset(),
           lock_wait_s: float = 10.0, home: Path | None = None) -> Assessment:
    """Decide whether ``trial`` needs (another) run.

    A verified report with a scored verdict is done (unless its class is in ``retry_classes``);
    no dir, no report, an ``error`` report or one that fails ``verify`` means run again in a
    new dir. An orphaned dir (no report, no live owner) is finalised first, like a single run's.

    Raises:
        TrialBusy: a live process still owns the latest dir after ``lock_wait_s``.
    """
    from cto_harness.runner import recover_run

    dirs = trial_dirs(job_dir, trial)
    if not dirs:
        return Assessment(trial, "run", trial.base(job_dir) / dir_name(trial.attempt, 0), "not run yet")
    retry, latest = dirs[-1]
    next_dir = trial.base(job_dir) / dir_name(trial.attempt, retry + 1)
    recovered = None
    if not (latest / "report.json").exists():
        deadline = time.monotonic() + lock_wait_s
        while is_locked(latest):
            if time.monotonic() >= deadline:
                raise TrialBusy(f"{latest}: still owned by a live harness process")
            time.sleep(0.05)
        if recover_run(latest, home=home):
            recovered = latest
    report = read_report(latest)
    if report is None:
        return Assessment(trial, "run", next_dir, f"{latest.name}: no readable report", True, recovered)
    if report.verdict not in SCORED:
        return Assessment(trial, "run", next_dir, f"{latest.name}: verdict {report.verdict}", True, recovered)
    checked = verify_run(latest)
    if not checked.ok:
        return Assessment(trial, "run", next_dir, f"{latest.name}: fails verify: {checked.problems[0]}", True,
                          recovered)
    if report.failure_class is not None and report.failure_class in retry_classes:
        return Assessment(trial, "run", next_dir, f"{latest.name}: retrying {report.failure_class}", True,
                          recovered)
    return Assessment(trial, "skip", latest, f"{latest.name}: {report.verdict}", False, recovered)


class TrialBusy(RuntimeError):
    """A trial dir is still owned by a live process (another coordinator or worker)."""
