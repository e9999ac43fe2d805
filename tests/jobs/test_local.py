"""The local executor end to end: real trial processes, real fake-lane providers, real git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from tests.conftest import cli_env, tagged_processes
from tests.jobs.helpers import job_cli, only_job_dir, provider_started, report, summary, wait_for, write_spec

from cto_harness.proc import _zygote

FIXER = 'name = "fixer"\nprovider = "fake"\nscenario = "fix"'
IDLE = 'name = "idle"\nprovider = "fake"\nscenario = "noop"'


def _interval(run_dir: Path) -> tuple[datetime, datetime]:
    r = report(run_dir)
    return (datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")),
            datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00")))


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_mixed_job_runs_in_parallel_and_summarises(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", name="mixed", attempts=2, concurrency=2, agents=(FIXER, IDLE))
    result = job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"), tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    job_dir = only_job_dir(tmp_path / "jobs")
    assert job_dir.name.endswith("-mixed")
    job = json.loads((job_dir / "job.json").read_text())
    assert job["harness_version"] and len(job["trials"]) == 4 and job["spec"]["attempts"] == 2

    data = summary(job_dir)
    rows = {row["agent"]: row for row in data["rows"]}
    assert rows["fixer"]["passes"] == 2 and rows["fixer"]["pass_at_k"] == {"1": 1.0, "2": 1.0}
    assert rows["idle"]["passes"] == 0 and rows["idle"]["failure_classes"] == {"no-changes": 2}
    assert rows["idle"]["pass_hat_k"] == {"1": 0.0, "2": 0.0}
    assert data["complete"] and data["verdicts"] == {"fail": 2, "pass": 2}
    assert {a["agent"]: a["pass_rate"] for a in data["agents"]} == {"fixer": 1.0, "idle": 0.0}
    assert "fixer  r1-string-slugify" in result.stdout

    run_dirs = sorted((job_dir / "trials").glob("*/*/attempt-*"))
    assert [p.relative_to(job_dir / "trials").as_posix() for p in run_dirs] == [
        "fixer/r1-string-slugify/attempt-1", "fixer/r1-string-slugify/attempt-2",
        "idle/r1-string-slugify/attempt-1", "idle/r1-string-slugify/attempt-2"]
    for run_dir in run_dirs:
        assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0
        assert not tagged_processes(report(run_dir)["run_id"])
    run_ids = {report(p)["run_id"] for p in run_dirs}
    assert len(run_ids) == 4, "run ids (the process tags) must be unique across trials"
    overlap = _max_overlap([_interval(p) for p in run_dirs])
    assert overlap == 2, f"4 trials at concurrency 2 overlapped {overlap} at most"


def test_concurrency_one_runs_trials_one_at_a_time(tmp_path: Path) -> None:
    result = job_cli("job", "run", "--provider", "fake", "--fixture", "r1-string-slugify", "--attempts", "3",
                     "--concurrency", "1", "--jobs-dir", str(tmp_path / "jobs"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    job_dir = only_job_dir(tmp_path / "jobs")
    run_dirs = sorted((job_dir / "trials").glob("*/*/attempt-*"))
    assert len(run_dirs) == 3
    assert _max_overlap([_interval(p) for p in run_dirs]) == 1
    assert summary(job_dir)["rows"][0]["pass_at_k"] == {"1": 1.0, "2": 1.0, "3": 1.0}


def test_report_formats_and_predictions(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", agents=(FIXER, IDLE))
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"),
                   tmp_path=tmp_path).returncode == 1
    job_dir = only_job_dir(tmp_path / "jobs")
    md = job_cli("job", "report", str(job_dir), "--format", "md", tmp_path=tmp_path)
    assert md.returncode == 0 and md.stdout.startswith("| agent | fixture |")
    csv_out = job_cli("job", "report", str(job_dir), "--format", "csv", tmp_path=tmp_path).stdout
    assert csv_out.splitlines()[1].startswith("fixer,r1-string-slugify,1/1,100%")
    as_json = json.loads(job_cli("job", "report", str(job_dir), "--format", "json", tmp_path=tmp_path).stdout)
    assert as_json == summary(job_dir)
    lines = job_cli("job", "report", str(job_dir), "--format", "jsonl-predictions", tmp_path=tmp_path).stdout
    predictions = [json.loads(line) for line in lines.splitlines()]
    assert [(p["instance_id"], p["model_name_or_path"]) for p in predictions] == [
        ("r1-string-slugify", "fixer"), ("r1-string-slugify", "idle")]
    assert predictions[0]["model_patch"].startswith("diff --git") and predictions[1]["model_patch"] == ""
    listed = job_cli("job", "list", "--jobs-dir", str(tmp_path / "jobs"), "--json", tmp_path=tmp_path)
    assert json.loads(listed.stdout)[0]["verdicts"] == {"fail": 1, "pass": 1}


def _start_job(tmp_path: Path, spec: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cto_harness", "job", "run", "--spec", str(spec),
                             "--jobs-dir", str(tmp_path / "jobs")], env=cli_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SLEEPER = 'name = "sleeper"\nprovider = "fake"\nscenario = "sleep"\ntimeout = {t}'


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_job_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    spec = write_spec(tmp_path / "job.toml", attempts=2, concurrency=1, agents=(SLEEPER.format(t=120),))
    proc = _start_job(tmp_path, spec)
    running = wait_for(lambda: next((p for p in (tmp_path / "jobs").glob("*/trials/*/*/attempt-1")
                                     if provider_started(p)), None), "the first trial's provider")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, out + err
    assert "job resume" in err
    got = report(running)
    assert (got["verdict"], got["failure_class"]) == ("error", "harness-error")
    assert got["backend"]["interrupted"] == "SIGTERM"
    job_dir = running.parents[3]
    data = summary(job_dir)
    assert not data["complete"] and data["verdicts"] == {"error": 1, "missing": 1}
    assert not (running.parent / "attempt-2").exists(), "no new trial may start after the signal"
    assert not tagged_processes(got["run_id"])
    assert job_cli("verify", str(running), tmp_path=tmp_path).returncode == 0


def test_sigkilled_coordinator_then_resume_finishes_without_rerunning_scored_trials(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", concurrency=2, agents=(FIXER, SLEEPER.format(t=20)))
    proc = _start_job(tmp_path, spec)
    jobs = tmp_path / "jobs"
    fixer = wait_for(lambda: next(iter(jobs.glob("*/trials/fixer/*/attempt-1/report.json")), None), "fixer's report")
    sleeper = wait_for(lambda: next((p for p in jobs.glob("*/trials/sleeper/*/attempt-1") if provider_started(p)),
                                    None), "the sleeper's provider")
    proc.kill()
    proc.communicate()
    job_dir = sleeper.parents[3]
    fixer_before = fixer.read_bytes()

    resumed = job_cli("job", "resume", str(job_dir), tmp_path=tmp_path)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert fixer.read_bytes() == fixer_before
    assert sorted(p.name for p in fixer.parents[1].iterdir()) == ["attempt-1"], "a scored trial ran twice"
    assert sorted(p.name for p in sleeper.parent.iterdir()) == ["attempt-1", "attempt-1-retry-1"]
    first = report(sleeper)
    assert (first["verdict"], first["failure_class"]) == ("error", "harness-error")
    assert "interrupted" in first["reasons"][0] or first["backend"]["interrupted"] == "SIGTERM"
    retried = report(sleeper.parent / "attempt-1-retry-1")
    assert (retried["verdict"], retried["failure_class"]) == ("fail", "provider-timeout")
    data = summary(job_dir)
    assert data["complete"] and data["verdicts"] == {"fail": 1, "pass": 1}
    row = next(r for r in data["rows"] if r["agent"] == "sleeper")
    assert row["trials"][0]["run_dir"].endswith("attempt-1-retry-1")
    for run_dir in (fixer.parent, sleeper, sleeper.parent / "attempt-1-retry-1"):
        assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0
        assert not tagged_processes(report(run_dir)["run_id"])
    assert job_cli("job", "resume", str(job_dir), tmp_path=tmp_path).returncode == 1
    assert sorted(p.name for p in sleeper.parent.iterdir()) == ["attempt-1", "attempt-1-retry-1"]


def test_resume_reruns_unverifiable_and_retry_class_trials_beside_the_old_ones(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", agents=(FIXER, IDLE))
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"),
                   tmp_path=tmp_path).returncode == 1
    job_dir = only_job_dir(tmp_path / "jobs")
    fixer = job_dir / "trials/fixer/r1-string-slugify"
    (fixer / "attempt-1/patch.diff").write_text("tampered\n")
    result = job_cli("job", "resume", str(job_dir), "--retry-classes", "no-changes", tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in fixer.iterdir()) == ["attempt-1", "attempt-1-retry-1"]
    idle = job_dir / "trials/idle/r1-string-slugify"
    assert sorted(p.name for p in idle.iterdir()) == ["attempt-1", "attempt-1-retry-1"]
    assert (fixer / "attempt-1/patch.diff").read_text() == "tampered\n", "old dirs are kept as they were"
    data = summary(job_dir)
    assert data["verdicts"] == {"fail": 1, "pass": 1}
    again = job_cli("job", "resume", str(job_dir), tmp_path=tmp_path)
    assert again.returncode == 1 and "ran 0, already done 2" in again.stdout


def test_a_second_coordinator_on_the_same_job_is_refused(tmp_path: Path) -> None:
    import fcntl

    spec = write_spec(tmp_path / "job.toml")
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"),
                   tmp_path=tmp_path).returncode == 0
    job_dir = only_job_dir(tmp_path / "jobs")
    with open(job_dir / ".job.lock", "wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = job_cli("job", "resume", str(job_dir), tmp_path=tmp_path)
    assert result.returncode == 4 and "another coordinator" in result.stderr


def test_rerun_into_the_same_job_dir_needs_the_same_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml")
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"),
                   tmp_path=tmp_path).returncode == 0
    job_dir = only_job_dir(tmp_path / "jobs")
    same = job_cli("job", "run", "--spec", str(spec), "--job-dir", str(job_dir), "--concurrency", "1",
                   tmp_path=tmp_path)
    assert same.returncode == 0 and "ran 0, already done 1" in same.stdout
    other = write_spec(tmp_path / "other.toml", attempts=2)
    different = job_cli("job", "run", "--spec", str(other), "--job-dir", str(job_dir), tmp_path=tmp_path)
    assert different.returncode == 2 and "different spec" in different.stderr


def test_agent_env_reaches_the_trial(tmp_path: Path) -> None:
    agent = FIXER + '\nenv = { CTO_HARNESS_FAKE_TIMEOUT_SECONDS = "77" }'
    spec = write_spec(tmp_path / "job.toml", agents=(agent,))
    assert job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"),
                   tmp_path=tmp_path).returncode == 0
    run_dir = next((tmp_path / "jobs").glob("*/trials/fixer/*/attempt-1"))
    assert report(run_dir)["backend"]["timeout_s"] == 77
    assert os.environ.get("CTO_HARNESS_FAKE_TIMEOUT_SECONDS") is None


def _zygotes_of(pid: int) -> list[psutil.Process]:
    return [child for child in psutil.Process(pid).children() if child.name() == _zygote.ZYGOTE_NAME]


def test_the_slots_zygotes_are_forked_from_the_coordinator_and_trials_stay_stage2_runs(tmp_path: Path) -> None:
    from cto_harness.jobs import LocalExecutor, create_job, parse_spec, run_job

    spec = parse_spec({"name": "forked", "fixtures": ["r1-string-slugify"], "attempts": 3, "concurrency": 2,
                       "agents": [{"name": "fixer", "provider": "fake", "scenario": "fix"}]})
    job_dir = create_job(spec, tmp_path / "jobs")
    executor = LocalExecutor(2)
    outcome = run_job(job_dir, executor=executor, environ=cli_env(tmp_path))
    assert (executor.zygotes_forked, executor.zygotes_started) == (2, 2)
    assert outcome.summary["verdicts"] == {"pass": 3}
    for run_dir in sorted((job_dir / "trials" / "fixer" / "r1-string-slugify").iterdir()):
        assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0


def test_a_killed_zygote_makes_its_trial_an_error_and_the_job_goes_on(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", concurrency=1, agents=(SLEEPER.format(t=120), FIXER))
    proc = _start_job(tmp_path, spec)
    sleeper = wait_for(lambda: next((p for p in (tmp_path / "jobs").glob("*/trials/sleeper/*/attempt-1")
                                     if provider_started(p)), None), "the sleeper's provider")
    zygotes = _zygotes_of(proc.pid)
    assert len(zygotes) == 1, zygotes
    zygotes[0].kill()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, out + err
    got = report(sleeper)
    assert (got["verdict"], got["failure_class"]) == ("error", "harness-error")
    assert got["backend"]["interrupted"] == "SIGTERM"
    assert not tagged_processes(got["run_id"])
    fixer = only_job_dir(tmp_path / "jobs") / "trials" / "fixer" / "r1-string-slugify" / "attempt-1"
    assert report(fixer)["verdict"] == "pass", "the next trial must run in a new zygote"
    assert summary(fixer.parents[3])["verdicts"] == {"error": 1, "pass": 1}
    assert job_cli("verify", str(sleeper), tmp_path=tmp_path).returncode == 0
