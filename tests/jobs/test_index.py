"""index.sqlite: filled as trials finish, a cache nothing depends on, rebuilt from the run dirs."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from tests.jobs.helpers import job_cli, only_job_dir, write_spec

from cto_harness.jobs import Trial, query
from cto_harness.jobs._index import TrialIndex
from cto_harness.jobs._plan import read_report

AGENTS = ('name = "fixer"\nprovider = "fake"\nscenario = "fix"', 'name = "idle"\nprovider = "fake"\nscenario = "noop"')


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    spec = write_spec(tmp_path / "job.toml", agents=AGENTS)
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"),
                   tmp_path=tmp_path).returncode == 1
    return tmp_path / "jobs"


def test_trials_are_indexed_as_they_finish_in_wal_mode(jobs: Path) -> None:
    rows = query(jobs)
    assert [(r["agent"], r["fixture"], r["attempt"], r["verdict"], r["failure_class"]) for r in rows] == [
        ("fixer", "r1-string-slugify", 1, "pass", None), ("idle", "r1-string-slugify", 1, "fail", "no-changes")]
    assert all(len(r["report_sha256"]) == 64 and r["duration_s"] > 0 and r["started_at"] for r in rows)
    conn = sqlite3.connect(jobs / "index.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_rebuild_recreates_the_index_and_flags_changed_reports(jobs: Path, tmp_path: Path) -> None:
    job_dir = only_job_dir(jobs)
    report_path = job_dir / "trials/idle/r1-string-slugify/attempt-1/report.json"
    data = json.loads(report_path.read_text())
    data["verdict"] = "pass"
    report_path.write_text(json.dumps(data, indent=2) + "\n")
    result = job_cli("index", "rebuild", "--jobs-dir", str(jobs), "--json", tmp_path=tmp_path)
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["trials"] == 2 and out["changed"] == [str(report_path.parent)]
    assert {r["agent"]: r["verdict"] for r in query(jobs)} == {"fixer": "pass", "idle": "pass"}
    again = job_cli("index", "rebuild", "--jobs-dir", str(jobs), tmp_path=tmp_path)
    assert again.returncode == 0 and "indexed 2 trial run dirs" in again.stdout


def test_nothing_depends_on_the_index(jobs: Path, tmp_path: Path) -> None:
    job_dir = only_job_dir(jobs)
    (jobs / "index.sqlite").write_bytes(b"this is not a database")
    for suffix in ("-wal", "-shm"):
        Path(f"{jobs / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
    report = job_cli("job", "report", str(job_dir), "--format", "json", tmp_path=tmp_path)
    assert report.returncode == 0 and json.loads(report.stdout)["verdicts"] == {"fail": 1, "pass": 1}
    spec = write_spec(tmp_path / "second.toml", name="second")
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(jobs), tmp_path=tmp_path).returncode == 0
    rebuilt = job_cli("index", "rebuild", "--jobs-dir", str(jobs), "--json", tmp_path=tmp_path)
    assert rebuilt.returncode == 0 and json.loads(rebuilt.stdout)["trials"] == 3


def test_one_connection_records_every_trial_of_a_job_from_any_thread(jobs: Path) -> None:
    """The coordinator keeps one connection for its job; Ray's coordinator records from another thread."""
    job_dir = only_job_dir(jobs)
    (jobs / "index.sqlite").unlink()
    runs = sorted((job_dir / "trials").glob("*/*/attempt-1"))
    trials = [Trial(agent=run.parents[1].name, fixture=run.parent.name, attempt=1) for run in runs]
    with TrialIndex(job_dir) as index:
        index.record(trials[0], runs[0], read_report(runs[0]))
        other = threading.Thread(target=index.record, args=(trials[1], runs[1], read_report(runs[1])))
        other.start()
        other.join()
    assert sorted(r["agent"] for r in query(jobs)) == ["fixer", "idle"]
