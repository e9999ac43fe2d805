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
import operator
import os
import sys
from typing import Any

CHANNEL_ENV = "CTO_HARNESS_VERIFIER_CHANNEL"


class ResultChannel:
    """A pytest plugin object that reports outcomes to the harness's channel.

    Before each test record and at the session's end it checks that pytest's test-running
    and reporting path (``Guard``) is what it was before the code under test was imported;
    a replaced piece is reported as a ``tampered`` record, which fails the grading.
    """

    def __init__(self, fd: int, guard: Guard | None = None) -> None:
        self._fd = fd
        self._guard = guard
        self._tampered: frozenset[str] = frozenset()

    def emit(self, record: dict[str, Any], _dumps: Any = json.dumps, _write: Any = os.write) -> None:
        # json.dumps and os.write as they were when this file was imported (before any code under test).
        data = (_dumps(record, ensure_ascii=True) + "\n").encode("ascii")
        while data:
            data = data[_write(self._fd, data):]

    def _check(self) -> None:
        changed = frozenset(self._guard.changed()) if self._guard is not None else frozenset()
        if changed - self._tampered:
            self._tampered |= changed
            self.emit({"kind": "tampered", "what": sorted(self._tampered)})

    def pytest_sessionstart(self) -> None:
        self.emit({"kind": "start", "pid": os.getpid()})

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.emit({"kind": "collect_error", "nodeid": report.nodeid})

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call":  # the record a pass is read from (checking each phase costs ~20 us more)
            self._check()
        self.emit({"kind": "test", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome})

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        self._check()
        self.emit({"kind": "finish", "exitstatus": int(exitstatus), "collected": session.testscollected})


class Guard:
    """pytest's test-running and reporting path, as it was before the code under test ran.

    The code under test runs in this process; replacing ``TestReport.__init__``,
    ``Function.runtest`` or ``CallInfo.from_call`` turns every failure into a pass in a few
    lines. Those classes' attributes and the runner's functions are recorded here (after
    pytest's own imports, before collection imports any test) and compared by identity.
    A determined attacker in this process can still forge the channel (docs/security.md);
    this makes the generic tricks fail closed.
    """

    CLASSES = (("_pytest.reports", "BaseReport"), ("_pytest.reports", "TestReport"),
               ("_pytest.reports", "CollectReport"), ("_pytest.runner", "CallInfo"),
               ("_pytest.python", "Function"), ("_pytest.nodes", "Item"),
               ("pluggy._hooks", "HookCaller"), ("pluggy._hooks", "HookImpl"))
    """Not ``_pytest.nodes.Node``: pytest's own legacypath plugin adds ``Node.fspath`` at start-up."""
    NAMES = (("_pytest.runner", "TestReport"), ("_pytest.runner", "CallInfo"), ("_pytest.runner", "call_and_report"),
             ("_pytest.runner", "runtestprotocol"), ("_pytest.runner", "call_runtest_hook"),
             ("_pytest.runner", "check_interactive_exception"), ("_pytest.runner", "pytest_runtest_makereport"),
             ("_pytest.reports", "TestReport"), ("_pytest.python", "Function"),
             ("_pytest.python", "pytest_pyfunc_call"))

    def __init__(self, channel_class: type) -> None:
        import importlib

        self._classes: dict[str, tuple[type, dict[str, Any]]] = {}
        self._sizes: dict[str, int] = {}
        """Each class's number of attributes, plain data included (an added method changes it)."""
        self._names: dict[str, tuple[Any, str, Any]] = {}
        for module_name, name in self.CLASSES:
            try:
                cls = getattr(importlib.import_module(module_name), name)
            except (ImportError, AttributeError):
                continue
            self._classes[f"{module_name}.{name}"] = (cls, _code(cls))
        self._classes["ResultChannel"] = (channel_class, _code(channel_class))
        self._sizes = {label: len(vars(cls)) for label, (cls, _) in self._classes.items()}
        for module_name, name in self.NAMES:
            module = sys.modules.get(module_name)
            if module is not None and hasattr(module, name):
                self._names[f"{module_name}.{name}"] = (module, name, getattr(module, name))

    def intact(self) -> bool:
        """The cheap check: the recorded objects, by identity (never ``==``: a replacement could
        claim to equal anything)."""
        for label, (cls, before) in self._classes.items():
            now = vars(cls)  # a live view of the class's attributes
            if len(now) != self._sizes[label] or not all(map(operator.is_, before.values(), map(now.get, before))):
                return False
        return all(getattr(module, name, _MISSING) is before for module, name, before in self._names.values())

    def changed(self) -> list[str]:
        """Every recorded piece that is no longer the same object or is gone, and every added
        method or descriptor (pytest itself adds plain flags to its classes as it runs)."""
        if self.intact():
            return []
        found = []
        for label, (cls, before) in self._classes.items():
            now = vars(cls)
            here = [f"{label}.{key}" for key in before.keys() | now.keys()
                    if (key in before and before[key] is not now.get(key, _MISSING))
                    or (key not in before and (callable(now[key]) or hasattr(type(now[key]), "__get__")))]
            if not here:
                self._sizes[label] = len(now)  # only plain data was added (pytest's own flags)
            found += here
        for label, (module, name, before) in self._names.items():
            if getattr(module, name, _MISSING) is not before:
                found.append(label)
        return found


_MISSING = object()


def _code(cls: type) -> dict[str, Any]:
    """A class's own methods and descriptors (what runs), not its plain data."""
    return {key: value for key, value in vars(cls).items() if callable(value) or hasattr(type(value), "__get__")}


HELD_FLAG = "--held"


def main(argv: list[str]) -> int:
    root, args = argv[0], argv[1:]
    fd = os.open(os.environ.pop(CHANNEL_ENV), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    sys.path.append(root)
    _preload()
    import pytest

    return int(pytest.main(args, plugins=[ResultChannel(fd, Guard(ResultChannel))]))


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
