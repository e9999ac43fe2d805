"""The Ray executor on a real local Ray cluster (2 CPUs): same summary as the local executor,
archives verified before placement, a tampered archive kept aside and reported as ``error``."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.jobs.helpers import job_cli, only_job_dir, report, summary, write_spec

pytest.importorskip("ray", reason="the `ray` extra is not installed")
pytestmark = pytest.mark.ray

AGENTS = ('name = "fixer"\nprovider = "fake"\nscenario = "fix"',
          'name = "crasher"\nprovider = "fake"\nscenario = "crash"')


def _comparable(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for row in data["rows"]:
        kept = {k: v for k, v in row.items() if k not in ("duration", "trials")}
        kept["trials"] = [{k: v for k, v in t.items() if k != "duration_s"} for t in row["trials"]]
        rows.append(kept)
    return rows


def test_ray_job_equals_the_local_job(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", name="cmp", attempts=2, concurrency=2, agents=AGENTS)
    local = job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "local"), tmp_path=tmp_path)
    assert local.returncode == 1, local.stderr
    ray = job_cli("job", "run", "--spec", str(spec), "--executor", "ray", "--jobs-dir", str(tmp_path / "ray"),
                  tmp_path=tmp_path, RAY_ADDRESS="")
    assert ray.returncode == 1, ray.stdout + ray.stderr
    local_dir, ray_dir = only_job_dir(tmp_path / "local"), only_job_dir(tmp_path / "ray")
    assert _comparable(summary(ray_dir)) == _comparable(summary(local_dir))
    assert summary(ray_dir)["verdicts"] == {"fail": 2, "pass": 2}
    for run_dir in sorted((ray_dir / "trials").glob("*/*/attempt-*")):
        assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0
    assert not list((ray_dir / "trials").glob("*/*/.incoming-*"))
    assert not (ray_dir / "quarantine").exists()


def _flip_patch(data: bytes, manifest: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Change patch.diff inside the archive and list the new digests (archive and manifest agree)."""
    out = io.BytesIO()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=out, mode="w") as sink:
        for member in source.getmembers():
            handle = source.extractfile(member) if member.isfile() else None
            content = handle.read() if handle else None
            if content is not None:
                if member.name.endswith("/patch.diff"):
                    content = content.replace(b"+", b"-", 1)
                files[member.name] = hashlib.sha256(content).hexdigest()
            sink.addfile(member, io.BytesIO(content) if content is not None else None)
    return out.getvalue(), {**manifest, "files": files}


def test_a_tampered_archive_is_kept_aside_and_reported_as_error(tmp_path: Path) -> None:
    """Workers share no filesystem with the coordinator: what comes back is checked, then verified."""
    import ray as ray_module

    import cto_harness.jobs._ray as module
    from cto_harness.jobs import LocalExecutor, RayExecutor, create_job, parse_spec, run_job

    run_remote_trial = module.run_remote_trial

    class TamperingExecutor(RayExecutor):
        """Runs the real worker function, then flips a byte in the returned archive and its manifest."""

        def run(self, tasks: list[Any], on_done: Any, stop: threading.Event) -> None:
            original = run_remote_trial

            def tampered(payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
                return _flip_patch(*original(payload))

            module.run_remote_trial = tampered  # type: ignore[assignment]
            try:
                super().run(tasks, on_done, stop)
            finally:
                module.run_remote_trial = original

    spec = parse_spec({"name": "tamper", "fixtures": ["r1-string-slugify"], "attempts": 1,
                       "agents": [{"name": "fixer", "provider": "fake", "scenario": "fix"}]})
    job_dir = create_job(spec, tmp_path / "jobs")
    try:
        outcome = run_job(job_dir, executor=TamperingExecutor(address=None, concurrency=2),
                          environ={"CTO_HARNESS_HOME": str(tmp_path / "home")})
    finally:
        ray_module.shutdown()
    assert outcome.summary["verdicts"] == {"error": 1}
    run_dir = job_dir / "trials/fixer/r1-string-slugify/attempt-1"
    got = report(run_dir)
    assert (got["verdict"], got["failure_class"]) == ("error", "harness-error")
    reason = (run_dir / "backend/job-error.txt").read_text()
    assert "archive was rejected" in reason and "patch.diff: altered" in reason
    kept = list((job_dir / "quarantine/fixer/r1-string-slugify").iterdir())
    assert any(p.name.endswith(".tar.gz") for p in kept) and any(p.is_dir() for p in kept)
    assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0
    # resume (locally) re-runs the error trial beside it
    again = run_job(job_dir, executor=LocalExecutor(1), environ={"CTO_HARNESS_HOME": str(tmp_path / "home")})
    assert again.summary["verdicts"] == {"pass": 1}
    assert json.loads((job_dir / "summary.json").read_text())["rows"][0]["trials"][0]["run_dir"].endswith("retry-1")


def test_a_lost_worker_is_an_error_trial_never_a_silent_rerun(tmp_path: Path) -> None:
    import os
    import signal

    import ray as ray_module

    import cto_harness.jobs._ray as module
    from cto_harness.jobs import RayExecutor, create_job, parse_spec, run_job

    original = module.run_remote_trial

    def dies(payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    spec = parse_spec({"name": "lost", "fixtures": ["r1-string-slugify"], "attempts": 1,
                       "agents": [{"name": "fixer", "provider": "fake", "scenario": "fix"}]})
    job_dir = create_job(spec, tmp_path / "jobs")
    module.run_remote_trial = dies  # type: ignore[assignment]
    try:
        outcome = run_job(job_dir, executor=RayExecutor(address=None, concurrency=2),
                          environ={"CTO_HARNESS_HOME": str(tmp_path / "home")})
    finally:
        module.run_remote_trial = original
        ray_module.shutdown()
    assert outcome.summary["verdicts"] == {"error": 1}
    run_dir = job_dir / "trials/fixer/r1-string-slugify/attempt-1"
    assert "the Ray task failed" in (run_dir / "backend/job-error.txt").read_text()
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["attempt-1"], "the engine must not retry"
    assert report(run_dir)["verdict"] == "error"


@pytest.mark.parametrize("group", [False, True], ids=["coordinator", "whole-group"])
def test_sigint_stops_a_ray_job_cleanly(group: bool, tmp_path: Path) -> None:
    """SIGINT to the coordinator, or to every process of its group (a terminal's Ctrl-C, Ray's own included)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import cli_env
    from tests.jobs.helpers import provider_started, wait_for

    attempts = 3 if group else 2
    spec = write_spec(tmp_path / "job.toml", attempts=attempts, concurrency=1,
                      agents=('name = "sleeper"\nprovider = "fake"\nscenario = "sleep"\ntimeout = 120',))
    scratch = tmp_path / "scratch"
    proc = subprocess.Popen([sys.executable, "-m", "cto_harness", "job", "run", "--spec", str(spec),
                             "--executor", "ray", "--jobs-dir", str(tmp_path / "jobs")],
                            env=cli_env(tmp_path, CTO_HARNESS_JOBS_SCRATCH=str(scratch), RAY_ADDRESS=""),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            process_group=0 if group else None)
    wait_for(lambda: any(provider_started(p) for p in scratch.glob("*/run/attempt-1")), "the worker's provider",
             timeout=180)
    if group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 4, out + err
    if group:
        assert "SIGINT: stopping" in err
    job_dir = only_job_dir(tmp_path / "jobs")
    run_dir = job_dir / "trials/sleeper/r1-string-slugify/attempt-1"
    got = report(run_dir)
    assert (got["verdict"], got["failure_class"]) == ("error", "harness-error")
    assert not (run_dir.parent / "attempt-2").exists(), "no new trial may start after the signal"
    assert summary(job_dir)["verdicts"] == {"error": 1, "missing": attempts - 1}
    assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0
    assert not list(scratch.iterdir()), "the worker cleans its scratch dir"
