"""The live progress display of `job run` (a Rich bar on a terminal, plain lines otherwise) and Ctrl-C."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import cli_env, tagged_processes
from tests.jobs.helpers import job_cli, only_job_dir, provider_started, report, summary, wait_for, write_spec

FIXER = 'name = "fixer"\nprovider = "fake"\nscenario = "fix"'
IDLE = 'name = "idle"\nprovider = "fake"\nscenario = "noop"'
SLEEPER = 'name = "sleeper"\nprovider = "fake"\nscenario = "sleep"\ntimeout = 120'
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _job(tmp_path: Path, spec: Path, *extra: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cto_harness", "job", "run", "--spec", str(spec),
                             "--jobs-dir", str(tmp_path / "jobs"), *extra], text=True, **kwargs)  # type: ignore[call-overload]


def test_a_terminal_gets_a_live_bar_with_counts_and_eta(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", attempts=2, agents=(FIXER, IDLE))
    master, slave = pty.openpty()
    proc = _job(tmp_path, spec, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                env=cli_env(tmp_path, COLUMNS="160", TERM="xterm"))
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    out, _ = proc.communicate(timeout=600)
    reader.join(30)
    os.close(master)
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1, raw
    assert ANSI.search(raw), "no terminal control sequences: not a live display"
    screen = ANSI.sub("", raw)
    assert "trials" in screen and "4/4" in screen
    assert "pass 2 fail 2 blocked 0 error 0" in screen
    assert "eta" in screen
    assert "idle/r1-string-slugify/attempt-1: fail" in screen, "a trial that did not pass is named above the bar"
    assert "fixer" in out and "pass@1" in out, "the summary table goes to stdout"


def test_not_a_terminal_gets_one_plain_line_per_trial(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "job.toml", attempts=2, concurrency=1, agents=(FIXER,))
    done = job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert lines == [
        "[1/2] pass 1 fail 0 blocked 0 error 0 · eta " + lines[0].split("eta ")[1].split(" ")[0]
        + " · fixer/r1-string-slugify/attempt-1: pass",
        "[2/2] pass 2 fail 0 blocked 0 error 0 · eta - · fixer/r1-string-slugify/attempt-2: pass",
    ]


def test_a_terminal_ctrl_c_to_the_whole_foreground_group_stops_the_job_cleanly(tmp_path: Path) -> None:
    """As a terminal does: SIGINT to every process of the foreground group, not only the coordinator."""
    spec = write_spec(tmp_path / "job.toml", attempts=3, concurrency=2, agents=(SLEEPER,))
    proc = _job(tmp_path, spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(tmp_path),
                process_group=0)
    def both_running() -> list[Path] | None:
        dirs = list((tmp_path / "jobs").glob("*/trials/sleeper/*/attempt-*"))
        return dirs if len(dirs) == 2 and all(provider_started(p) for p in dirs) else None

    running = wait_for(both_running, "both trials' providers", timeout=120)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 4, out + err
    assert "SIGINT: stopping" in err and "job resume" in err
    job_dir = only_job_dir(tmp_path / "jobs")
    for run_dir in running:
        got = report(run_dir)
        assert (got["verdict"], got["failure_class"]) == ("error", "harness-error")
        assert got["backend"]["interrupted"] == "SIGTERM"
        assert not tagged_processes(got["run_id"])
        assert job_cli("verify", str(run_dir), tmp_path=tmp_path).returncode == 0
    data = summary(job_dir)
    assert data["verdicts"] == {"error": 2, "missing": 1} and not data["complete"]
    assert not list(job_dir.glob("trials/sleeper/*/attempt-3")), "no new trial may start after Ctrl-C"
