"""Targets a zygote forks in tests/proc/test_zygote.py (imported by the zygote, run in its children)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

WARMED_BY: int | None = None
"""Set by ``warm`` in the zygote: a child that sees it was forked, not started afresh."""
HELD_FD: int | None = None
"""An fd the zygote opened (inheritable) before forking: a clean child must not have it."""


def warm() -> None:
    global WARMED_BY, HELD_FD
    WARMED_BY = os.getpid()
    HELD_FD = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(HELD_FD, True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a dirty handler the child must not inherit
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})


def warm_with_thread() -> None:
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()


def _handler_name(sig: signal.Signals) -> str:
    handler = signal.getsignal(sig)
    if handler is signal.default_int_handler:
        return "default_int_handler"
    return getattr(handler, "name", str(handler))


def _ready(path: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, path)


def main(args: list[str]) -> int:
    mode = args[0]
    if mode == "state":
        print(json.dumps({
            "pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgrp(),
            "cwd": os.getcwd(), "env": dict(os.environ), "warmed_by": WARMED_BY, "argv": sys.argv,
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
            "held_fd_open": HELD_FD is not None and os.path.exists(f"/proc/self/fd/{HELD_FD}")
            and os.readlink(f"/proc/self/fd/{HELD_FD}") == os.devnull,
            "handlers": {sig.name: _handler_name(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE)},
            "blocked": sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
            "threads": threading.active_count(),
        }))
        print("to stderr", file=sys.stderr)
        return int(args[1])
    if mode == "raise":
        raise RuntimeError("boom in the child")
    if mode == "exit":
        sys.exit(int(args[1]))
    if mode == "kill-self":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "term-report":
        # Like a trial: SIGTERM makes it write its "interrupted" record and exit.
        marks = Path(args[2])

        def on_term(signum: int, frame: object) -> None:
            (marks / f"interrupted-{os.getpid()}").write_text("SIGTERM")
            os._exit(4)

        signal.signal(signal.SIGTERM, on_term)
        _ready(args[1])
        while True:
            time.sleep(1)
    if mode == "hang-tree":
        # A grandchild that ignores SIGTERM and left our process group; then hang.
        grandchild = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                                       "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"],
                                      start_new_session=True)
        _ready(args[1])
        Path(args[1] + ".grandchild").write_text(str(grandchild.pid))
        while True:
            time.sleep(1)
    if mode == "leave-behind":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(600)"], start_new_session=True)
        Path(args[1]).write_text(str(grandchild.pid))
        return 0
    raise SystemExit(f"unknown mode {mode}")
