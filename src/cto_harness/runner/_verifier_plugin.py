"""The verifier's pytest entry point and result channel; runs inside the grading sandbox.

Started as ``python -I -B _verifier_plugin.py ROOT PYTEST_ARGS...`` with the channel file
named in ``CTO_HARNESS_VERIFIER_CHANNEL``. Isolated mode keeps the graded copy off
``sys.path`` while Python and pytest start (a ``pytest.py`` or ``pluggy/`` there shadows
nothing); ROOT is then appended, so the code under test imports without shadowing anything
installed. Each test phase, each collection error and the session's end are written as JSON
lines to the channel: the harness grades from those records, never from the exit status
alone. Code under test runs in this process and could in principle forge the channel
(docs/security.md); the aim is that the known cheap tricks fail closed.

Held mode (``python -I -B _verifier_plugin.py --held``): Python starts and pytest and its
built-in plugins are imported before the graded copy exists (see ``_held_grader.py``); the
process then waits for one JSON line on stdin, ``{"argv": [ROOT, PYTEST_ARGS...]}``, and
runs exactly as above (stdin becomes /dev/null first). EOF instead of a line: exit 0, nothing run.

This file imports only the standard library and pytest: it must not pull the harness in.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

CHANNEL_ENV = "CTO_HARNESS_VERIFIER_CHANNEL"


class ResultChannel:
    """A pytest plugin object that reports outcomes to the harness's channel."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def emit(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")
        while data:
            data = data[os.write(self._fd, data):]

    def pytest_sessionstart(self) -> None:
        self.emit({"kind": "start", "pid": os.getpid()})

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.emit({"kind": "collect_error", "nodeid": report.nodeid})

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.emit({"kind": "test", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome})

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        self.emit({"kind": "finish", "exitstatus": int(exitstatus), "collected": session.testscollected})


HELD_FLAG = "--held"


def main(argv: list[str]) -> int:
    root, args = argv[0], argv[1:]
    fd = os.open(os.environ.pop(CHANNEL_ENV), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    sys.path.append(root)
    _preload()
    import pytest

    return int(pytest.main(args, plugins=[ResultChannel(fd)]))


def _preload() -> None:
    """Import pytest and its built-in plugins, then freeze them out of garbage collection.

    pytest collects garbage several times at session end (to surface unraisable
    exceptions); each pass traversed every object of pytest itself (~50-90 ms). Frozen,
    only what was created afterwards (the code under test's objects) is traversed.
    """
    import gc
    import importlib

    import _pytest.config

    for name in (*_pytest.config.essential_plugins, *_pytest.config.default_plugins):
        try:
            importlib.import_module(f"_pytest.{name}")
        except ImportError:
            continue
    gc.freeze()


def held() -> int:
    """Import what every pytest session imports, then wait for the go line (module docstring)."""
    _preload()
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0
    argv = [str(arg) for arg in json.loads(line)["argv"]]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [sys.argv[0], *argv]
    return main(argv)


if __name__ == "__main__":
    sys.exit(held() if sys.argv[1:] == [HELD_FLAG] else main(sys.argv[1:]))
