"""exit_now: what sys.exit guarantees (status, atexit handlers, other threads, flushed output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import atexit, sys, threading
from pathlib import Path
from cto_harness.proc import exit_now
out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
gate = threading.Event()
def late():
    gate.wait()
    (out / "thread").write_text("finished")
threading.Thread(target=late).start()
sys.stdout.write("buffered, no newline")
threading.Timer(0.05, gate.set).start()
exit_now(259)
"""


def test_exit_now_keeps_what_sys_exit_keeps(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 259 & 0xFF, proc.stderr
    assert proc.stdout == "buffered, no newline"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "finished"


IN_PROCESS = """
import sys
from cto_harness.cli import main
try:
    main(["run", "--runs-dir", sys.argv[1]])
except SystemExit as exc:
    print(f"caller resumed after SystemExit({exc.code})")
"""


def test_a_caller_that_passes_args_gets_an_ordinary_system_exit(tmp_path: Path) -> None:
    """Only the console script (main() reading sys.argv) leaves without teardown: a program that
    calls main([...]) itself, or click's test runner, must get its SystemExit back."""
    env = {**os.environ, "CTO_HARNESS_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS, str(tmp_path / "runs")], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "caller resumed after SystemExit(0)"
