"""Run one bounded child as the harness would (own signal handlers, optional subreaper).

Usage: process_driver.py <tag> <workdir> <subreaper 0|1> <helper mode> [helper args...]
Prints the ProcessResult as JSON (plus the pids of the helper's pidfile, if any).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import psutil

from cto_harness.proc import _bounded as _process


def main(tag: str, workdir: str, subreaper: str, *helper_args: str) -> int:
    _process.TERM_GRACE_S = float(os.environ.get("DRIVER_GRACE_S", "0.3"))
    work = Path(workdir)
    if os.environ.get("DRIVER_FORBID_SCAN") == "1":
        def forbidden(*args: object, **kwargs: object) -> None:
            raise AssertionError("scanned the whole process table")

        psutil.process_iter = forbidden  # type: ignore[assignment]
    restore = _process.install_signal_handlers()
    adopted = _process.enable_subreaper() if subreaper == "1" else False
    helper = Path(__file__).with_name("proc_helper.py")
    held = None
    inspected: set[int] = set()
    if os.environ.get("DRIVER_HOLD") == "1":
        # Another live run beside this one (as a held grader is): a root with a child.
        held = _process.hold_bounded([sys.executable, str(helper), "setsid-kids", str(work / "held.pids"), "1"],
                                     cwd=work, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                     tag=f"{tag}-held")
        while not (work / "held.pids").exists():
            os.sched_yield()
        walk = _process._descendants_of_self

        def recording(*args: object) -> list[int]:
            found = walk(*args)  # type: ignore[arg-type]
            inspected.update(found)
            return found

        _process._descendants_of_self = recording  # type: ignore[assignment]
    try:
        result = _process.run_bounded(
            [sys.executable, str(helper), *helper_args],
            cwd=work,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            timeout_s=30,
            stdout_path=work / "stdout.txt",
            stderr_path=work / "stderr.txt",
            tag=tag,
            on_start=lambda pid: (work / "started").write_text(str(pid)),
        )
    finally:
        restore()
    payload = dataclasses.asdict(result)
    payload["subreaper"] = adopted
    if held is not None:
        held_pids = [held.pid, *(int(p) for p in (work / "held.pids").read_text().split())]
        payload["held_pids"] = held_pids
        payload["held_inspected"] = sorted(inspected & set(held_pids))
        payload["held_alive"] = [psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                 for p in held_pids]
        held.discard()
    payload["zombies_left"] = [
        p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE
    ]
    print(json.dumps(payload, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
