"""The verifier's pytest entry point and result channel; runs inside the grading sandbox.

Started as ``python -I -B _verifier_plugin.py ROOT PYTEST_ARGS...`` with the channel file
named in ``CTO_HARNESS_VERIFIER_CHANNEL``. Isolated mode keeps the graded copy off
``sys.path`` while Python and pytest start (a ``pytest.py`` or ``pluggy/`` there shadows
nothing); ROOT is then appended, so the code under test imports without shadowing anything
installed. Each test phase, each collection error and the session's end are written as JSON
lines to the channel: the harness grades from those records, never from the exit status
alone. Code under test runs in this process and could in principle forge the channel
(docs/security.md); the aim is that the known cheap tricks fail closed.

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


def main(argv: list[str]) -> int:
    root, args = argv[0], argv[1:]
    fd = os.open(os.environ.pop(CHANNEL_ENV), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    sys.path.append(root)
    import pytest

    return int(pytest.main(args, plugins=[ResultChannel(fd)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
