"""Child-process behaviours for tests/proc/test_process.py (run as a script)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _write_pids(path: Path, pids: list[int]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(" ".join(map(str, pids)))
    os.replace(tmp, path)


def _linger(term_marks: Path | None = None) -> None:
    """Outlive SIGTERM; with ``term_marks``, leave a file there when it arrives (an explicit signal)."""
    if term_marks is None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: (term_marks / f"term-{os.getpid()}").touch())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1)
    os._exit(0)


def main(mode: str, *args: str) -> int:
    out = sys.stdout.buffer
    if mode == "exit":
        out.write(b"out\n")
        sys.stderr.buffer.write(b"err\n")
        return int(args[0])
    if mode == "bytes":
        data = bytes.fromhex(args[0])
        out.write(data)
        sys.stderr.buffer.write(data[::-1])
        return 0
    if mode == "flood":
        block = b"x" * (1 << 20)
        for _ in range(int(args[0])):
            out.write(block)
        return 0
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if args:
            _write_pids(Path(args[0]), [os.getpid()])
        time.sleep(60)
        return 0
    if mode == "setsid-kids":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kids = []
        for _ in range(int(args[1])):
            pid = os.fork()
            if pid == 0:
                os.setsid()
                _linger(Path(args[2]) if len(args) > 2 else None)
            kids.append(pid)
        _write_pids(Path(args[0]), kids)
        time.sleep(60)
        return 0
    if mode == "daemon":
        pidfile = Path(args[0])
        middle = os.fork()
        if middle == 0:
            os.setsid()
            if os.fork() == 0:
                _write_pids(pidfile, [os.getpid()])
                _linger()
            os._exit(0)
        os.waitpid(middle, 0)
        while not pidfile.exists():
            time.sleep(0.01)
        out.write(b"parent done\n")
        return 0
    if mode == "dying-child":
        # Like a sandbox's pid 1 after its bwrap reported the exit status: the child is
        # already on its way out when we exit (it sees EOF on our pipe), but takes a moment.
        pidfile = Path(args[0])
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(write_end)
            os.read(read_end, 1)
            time.sleep(0.1)
            os._exit(0)
        os.close(read_end)
        _write_pids(pidfile, [child])
        return 0
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.stdout.flush()
    sys.exit(main(*sys.argv[1:]))
