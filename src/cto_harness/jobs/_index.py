"""``<jobs-dir>/index.sqlite``: a rebuildable cache of every trial run dir (SQLite, WAL).

Nothing depends on it being present or current: summaries are computed from the run dirs.
``rebuild`` recreates it from disk and flags every report whose sha256 changed since it
was indexed.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cto_harness.evidence import Report
from cto_harness.jobs._plan import TRIALS_DIR, Trial, read_report

INDEX_FILE = "index.sqlite"
_DIR = re.compile(r"^attempt-(\d+)(?:-retry-(\d+))?$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    run_dir TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    agent TEXT NOT NULL,
    fixture TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    retry INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    failure_class TEXT,
    duration_s REAL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    calls INTEGER,
    report_sha256 TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
)
"""


def index_path(jobs_root: Path) -> Path:
    return jobs_root / INDEX_FILE


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, check_same_thread=False)  # TrialIndex serialises its use
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # no fsync per commit: a power cut may lose the last rows of a cache
    conn.execute(_SCHEMA)
    return conn


def _row(job: str, agent: str, fixture: str, run_dir: Path, report: Report) -> tuple[object, ...]:
    match = _DIR.match(run_dir.name)
    attempt, retry = (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)
    usage = report.usage.best
    sha = hashlib.sha256((run_dir / "report.json").read_bytes()).hexdigest()
    return (str(run_dir), job, agent, fixture, attempt, retry, report.verdict, report.failure_class,
            report.duration_s, usage.input_tokens if usage else None, usage.output_tokens if usage else None,
            usage.cost_usd if usage else None, usage.calls if usage else None, sha, report.started_at,
            report.finished_at)


_INSERT = "INSERT OR REPLACE INTO trials VALUES (" + ",".join("?" * 16) + ")"


class TrialIndex:
    """A coordinator's connection to the index, kept over its job (one per trial cost ~0.7 ms of CPU).

    A broken or locked index is ignored (it is a cache); the next ``record`` tries a new connection.
    """

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def record(self, trial: Trial, run_dir: Path, report: Report) -> None:
        """Add one finished trial (from any thread)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = _connect(index_path(self.job_dir.parent))
                with self._conn:
                    self._conn.execute(_INSERT, _row(self.job_dir.name, trial.agent, trial.fixture_key, run_dir,
                                                     report))
            except (sqlite3.Error, OSError):
                self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> TrialIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_trial(job_dir: Path, trial: Trial, run_dir: Path, report: Report) -> None:
    """Add one finished trial to the index; a broken or locked index is ignored (it is a cache)."""
    with TrialIndex(job_dir) as index:
        index.record(trial, run_dir, report)


@dataclass
class RebuildResult:
    path: Path
    trials: int = 0
    changed: list[str] = field(default_factory=list)
    """Run dirs whose report.json sha256 differs from the one indexed before the rebuild."""


def _previous(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        conn = sqlite3.connect(path, timeout=10.0)
        try:
            return dict(conn.execute("SELECT run_dir, report_sha256 FROM trials").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def rebuild(jobs_root: Path) -> RebuildResult:
    """Recreate the index from every job dir's run dirs under ``jobs_root``."""
    path = index_path(jobs_root)
    previous = _previous(path)
    rows = []
    for job_dir in sorted(p for p in jobs_root.iterdir() if (p / "job.json").is_file()) if jobs_root.is_dir() else []:
        for run_dir in sorted((job_dir / TRIALS_DIR).glob("*/*/attempt-*")):
            report = read_report(run_dir) if _DIR.match(run_dir.name) else None
            if report is not None:
                rows.append(_row(job_dir.name, run_dir.parent.parent.name, run_dir.parent.name, run_dir.resolve(),
                                 report))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    jobs_root.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    try:
        with conn:
            conn.executemany(_INSERT, rows)
    finally:
        conn.close()
    changed = sorted(str(row[0]) for row in rows if str(row[0]) in previous and previous[str(row[0])] != row[13])
    return RebuildResult(path=path, trials=len(rows), changed=changed)


def query(jobs_root: Path, sql: str = "SELECT * FROM trials ORDER BY run_dir") -> list[sqlite3.Row]:
    conn = sqlite3.connect(index_path(jobs_root))
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()
