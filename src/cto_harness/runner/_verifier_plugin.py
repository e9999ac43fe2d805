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
import types
from typing import Any

CHANNEL_ENV = "CTO_HARNESS_VERIFIER_CHANNEL"


class ResultChannel:
    """A pytest plugin object that reports outcomes to the harness's channel.

    Before each call record and at the session's end it checks that pytest's test-running
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

    def pytest_collection(self, session: Any) -> None:
        """Collection imports the code under test: record the plugins and hooks just before."""
        if self._guard is not None:
            self._guard.watch(session.config.pluginmanager)

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

    RUN_HOOKS = ("pytest_runtest_protocol", "pytest_runtest_setup", "pytest_runtest_call",
                 "pytest_runtest_teardown", "pytest_runtest_makereport", "pytest_runtest_logreport",
                 "pytest_pyfunc_call", "pytest_report_teststatus", "pytest_collectreport",
                 "pytest_make_collect_report", "pytest_sessionfinish")
    """The hooks whose implementations decide or carry a test's outcome."""

    def __init__(self, channel_class: type, root: str = "") -> None:
        import importlib

        self._root = os.path.join(os.path.realpath(root), "") if root else ""
        self._pm: Any = None
        self._plugins: dict[int, Any] = {}
        """By id: the objects are kept here, so no id is reused while the guard lives."""
        self._inner: Any = None
        self._hooks: list[tuple[str, Any, Any, dict[int, tuple[Any, Any]]]] = []
        """Per run hook: its caller, the caller's runner, and each implementation (by id) with its function."""
        self._classes: dict[str, tuple[type, dict[str, Any]]] = {}
        self._names: dict[str, tuple[Any, str, Any]] = {}
        for module_name, name in self.CLASSES:
            try:
                cls = getattr(importlib.import_module(module_name), name)
            except (ImportError, AttributeError):
                continue
            self._classes[f"{module_name}.{name}"] = (cls, _code(cls))
        self._classes["ResultChannel"] = (channel_class, _code(channel_class))
        self._sizes = {label: len(vars(cls)) for label, (cls, _) in self._classes.items()}
        """Each class's number of attributes, plain data included (an added method changes it)."""
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

    def watch(self, pm: Any) -> None:
        """At collection start: the registered plugins, pluggy's hook runner, the run hooks' implementations.

        From then on a plugin may only be added by pytest loading a ``conftest.py`` of the graded
        copy (every change to one is dropped, so each is the fixture's own).
        """
        self._pm = pm
        self._plugins = {id(plugin): plugin for plugin in pm.get_plugins()}
        self._inner = vars(pm).get("_inner_hookexec")
        for name in self.RUN_HOOKS:
            caller = getattr(pm.hook, name, None)
            if caller is not None:
                self._hooks.append((name, caller, caller._hookexec,
                                    {id(impl): (impl, impl.function) for impl in caller.get_hookimpls()}))

    def _known_plugin(self, plugin: Any) -> bool:
        if id(plugin) in self._plugins:
            return True
        path = getattr(plugin, "__file__", None)
        if not (isinstance(plugin, types.ModuleType) and isinstance(path, str) and self._root
                and os.path.basename(path) == "conftest.py" and os.path.realpath(path).startswith(self._root)
                and os.path.isfile(path)):
            return False
        functions = [value for key, value in vars(plugin).items() if key.startswith("pytest_") and callable(value)]
        return all(getattr(getattr(f, "__code__", None), "co_filename", None) == path for f in functions)

    def _plugins_changed(self) -> list[str]:
        pm = self._pm
        if pm is None:
            return []
        found = []
        if vars(pm).get("_inner_hookexec") is not self._inner:
            found.append("pluggy PluginManager._inner_hookexec")
        found += [f"plugin {pm.get_name(p)!s:.80}" for p in pm.get_plugins() if not self._known_plugin(p)]
        for name, caller_then, hookexec, impls in self._hooks:
            caller: Any = getattr(pm.hook, name, None)
            if caller is not caller_then or caller._hookexec is not hookexec:
                found.append(f"hook {name}")
                continue
            for impl in caller.get_hookimpls():
                known, before = impls.get(id(impl), (None, _MISSING))
                if (impl.function is not before) if known is impl else not self._known_plugin(impl.plugin):
                    found.append(f"hook {name} implementation {impl.plugin_name!s:.80}")
        return found

    def changed(self) -> list[str]:
        """Every recorded piece that is no longer the same object or is gone, and every added
        method or descriptor (pytest itself adds plain flags to its classes as it runs)."""
        plugins = self._plugins_changed()
        if self.intact():
            return plugins
        found = plugins
        for label, (cls, before) in self._classes.items():
            now = vars(cls)
            here = [f"{label}.{key}" for key in before.keys() | now.keys()
                    if (key in before and before[key] is not now.get(key, _MISSING))
                    or (key not in before and _runs(now[key]))]
            if not here:
                self._sizes[label] = len(now)  # only plain data was added (pytest's own flags)
            found += here
        for label, (module, name, before) in self._names.items():
            if getattr(module, name, _MISSING) is not before:
                found.append(label)
        return found


_MISSING = object()


def _runs(value: Any) -> bool:
    """A method or a descriptor (something that runs), not plain data."""
    return callable(value) or hasattr(type(value), "__get__")


def _code(cls: type) -> dict[str, Any]:
    """A class's own methods and descriptors, not its plain data."""
    return {key: value for key, value in vars(cls).items() if _runs(value)}


HELD_FLAG = "--held"


def main(argv: list[str]) -> int:
    root, args = argv[0], argv[1:]
    fd = os.open(os.environ.pop(CHANNEL_ENV), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    sys.path.append(root)
    _preload()
    import pytest

    return int(pytest.main(args, plugins=[ResultChannel(fd, Guard(ResultChannel, root))]))


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
