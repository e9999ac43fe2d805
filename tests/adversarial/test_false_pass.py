"""A hostile agent cannot turn "no fix" into a pass: each cheap trick fails closed in the verifier.

Every attack runs through the ``command`` provider: the agent is a script that edits the
workspace (never fixing ``slugify``) so that the old grading, which ran the test command in
the workspace and trusted its exit status, reported ``pass``. Each test asserts the verdict
is not ``pass`` and that the report exists and verifies; ``test_honest_fix_still_passes``
keeps the verifier honest the other way.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.conftest import cli_env, hostile_agent_env, run_cli

PRELUDE = textwrap.dedent(
    """\
    import os, pathlib, subprocess, sys
    ws = pathlib.Path(sys.argv[1])
    def write(rel, text):
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    def prepend(rel, text):
        path = ws / rel
        path.write_text(text + path.read_text())
    """
)
FIX = 'import re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n'
REWRITE_PLUGIN = textwrap.dedent(
    """\
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome = "passed"
        report.longrepr = None
    """
)
GIT = "git -c user.name=a -c user.email=a@b -c init.defaultBranch=main"
FORCE_PASSED = textwrap.dedent(
    """\
    import _pytest.reports
    _init = _pytest.reports.TestReport.__init__
    def _passed(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        self.outcome, self.longrepr = "passed", None
    _pytest.reports.TestReport.__init__ = _passed
    """
)

REGISTER_PLUGIN = textwrap.dedent(
    """\
    import sys, pytest
    class _P:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(self, item, call):
            outcome = yield
            report = outcome.get_result()
            report.outcome, report.longrepr = "passed", None
    frame = sys._getframe()
    while frame is not None:
        found = [v.config for v in frame.f_locals.values() if hasattr(getattr(v, "config", None), "pluginmanager")]
        config = found[0] if found else None
        if config is not None:
            config.pluginmanager.register(_P())
            break
        frame = frame.f_back
    """
)
SWAP_HOOKEXEC = textwrap.dedent(
    """\
    import gc
    from _pytest.config import PytestPluginManager
    for pm in [o for o in gc.get_objects() if isinstance(o, PytestPluginManager)]:
        inner = pm._inner_hookexec
        def _forged(name, impls, kwargs, firstresult, inner=inner):
            result = inner(name, impls, kwargs, firstresult)
            if name == "pytest_runtest_makereport" and result is not None:
                result.outcome, result.longrepr = "passed", None
            return result
        pm._inner_hookexec = _forged
    """
)
ATTACKS = {
    "exit_zero_at_import": 'prepend("strings.py", "import os\\nos._exit(0)\\n")',
    "exit_zero_from_tests_init": 'write("tests/__init__.py", "import os\\nos._exit(0)\\n")',
    "shadow_pytest_module": 'write("pytest.py", "import os\\nos._exit(0)\\n")',
    "shadow_pluggy_package": 'write("pluggy/__init__.py", "import os\\nos._exit(0)\\n")',
    "atexit_exit_zero_after_failures": 'prepend("strings.py", "import atexit, os\\natexit.register(os._exit, 0)\\n")',
    "new_test_file_exits_zero": 'write("tests/test_aaa.py", "import os\\nos._exit(0)\\n")',
    "dot_pytest_ini_collect_only": 'write("tests/.pytest.ini", "[pytest]\\naddopts = --co\\n")',
    "dot_pytest_ini_rewrite_plugin": (
        f'write("evil_reports.py", {REWRITE_PLUGIN!r})\n'
        'write("tests/.pytest.ini", "[pytest]\\naddopts = -p evil_reports\\npythonpath = ..\\n")'
    ),
    # The grading sandbox waits, started before the agent, in <harness home>/scratch: the home
    # is hidden from the agent (and the verifier checks the held tree is untouched anyway).
    "plant_plugin_in_held_grader": (
        "import glob\n"
        'trees = glob.glob(str(ws.parents[2] / "home" / "scratch" / "*" / "tree"))\n'
        'write("found.txt", repr(trees))\n'
        'for tree in trees:\n'
        f'    pathlib.Path(tree, "conftest.py").write_text({REWRITE_PLUGIN!r})'
    ),
    # pytest 9 prefers pytest.toml (and .pytest.toml) to the fixture's pytest.ini in the same directory.
    "pytest_toml_rewrite_plugin": (
        f'write("evil_reports.py", {REWRITE_PLUGIN!r})\n'
        'write("pytest.toml", "[pytest]\\naddopts = [\\"-p\\", \\"evil_reports\\"]\\n")'
    ),
    "dot_pytest_toml_rewrite_plugin": (
        f'write("evil_reports.py", {REWRITE_PLUGIN!r})\n'
        'write(".pytest.toml", "[pytest]\\naddopts = [\\"-p\\", \\"evil_reports\\"]\\n")'
    ),
    # The code under test runs in pytest's process: at import it can rewrite pytest itself.
    "code_under_test_forces_reports_passed": f'prepend("strings.py", {FORCE_PASSED!r})',
    "code_under_test_skips_every_test_body": (
        'prepend("strings.py", "import _pytest.python\\n_pytest.python.Function.runtest = lambda self: None\\n")'
    ),
    "code_under_test_swaps_the_runners_report_class": (
        'prepend("strings.py", "import _pytest.runner, _pytest.reports\\n'
        'class R(_pytest.reports.TestReport):\\n'
        '    def __init__(self, *a, **k):\\n'
        '        super().__init__(*a, **k)\\n'
        '        self.outcome = \\"passed\\"\\n'
        '_pytest.runner.TestReport = R\\n")'
    ),
    "code_under_test_registers_a_report_plugin": f'prepend("strings.py", {REGISTER_PLUGIN!r})',
    "code_under_test_swaps_pluggys_hook_runner": f'prepend("strings.py", {SWAP_HOOKEXEC!r})',
    "fix_hidden_in_nested_repo": (
        f'write("vendored/fixed.py", {FIX!r})\n'
        f'subprocess.run("cd vendored && {GIT} init -q && {GIT} add -A && {GIT} commit -qm fix", shell=True, '
        'cwd=ws, check=True)\n'
        'write("strings.py", "from vendored.fixed import slugify\\n")'
    ),
}


def _agent_env(tmp_path: Path, body: str) -> dict[str, str]:
    return hostile_agent_env(tmp_path, f"{PRELUDE}{body}")


def _run(tmp_path: Path, runs_dir: Path, body: str) -> dict[str, object]:
    result = run_cli("run", "--provider", "command", "--runs-dir", str(runs_dir), env=_agent_env(tmp_path, body))
    assert result.report is not None and result.run_dir is not None, result.stdout + result.stderr
    assert result.report["backend"]["exit_code"] == 0, result.report["reasons"]
    verified = run_cli("verify", str(result.run_dir), env=cli_env(tmp_path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return result.report


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_cheap_trick_does_not_pass(attack: str, tmp_path: Path, runs_dir: Path) -> None:
    report = _run(tmp_path, runs_dir, ATTACKS[attack])
    assert report["verdict"] != "pass", report["reasons"]
    assert (report["verdict"], report["failure_class"]) == ("fail", "tests-failed"), report["reasons"]
    tests = report["tests"]
    assert tests["passed"] is False
    assert tests["expected"] == (None if attack == "fix_hidden_in_nested_repo" else 12)
    if attack.startswith("code_under_test_"):
        assert any("replaced pytest's test-running or reporting code" in r for r in report["reasons"]), \
            report["reasons"]


def test_a_compiled_module_beside_the_source_is_not_applied(tmp_path: Path, runs_dir: Path) -> None:
    """A binary file (here a would-be extension module that Python imports before strings.py) is dropped."""
    elf = 'b"\\x7fELF\\x02\\x01\\x01" + bytes(64)'
    report = _run(tmp_path, runs_dir, 'prepend("strings.py", "# fixed, see the build\\n")\n'
                  f'(ws / "strings.cpython-311-x86_64-linux-gnu.so").write_bytes({elf})')
    assert (report["verdict"], report["failure_class"]) == ("fail", "tests-failed"), report["reasons"]
    assert report["tests"]["dropped_changes"] == ["strings.cpython-311-x86_64-linux-gnu.so"]  # type: ignore[index]
    assert report["tests"]["ran"] is True  # type: ignore[index]


def test_an_honest_fix_with_a_stray_binary_file_still_passes(tmp_path: Path, runs_dir: Path) -> None:
    report = _run(tmp_path, runs_dir, f'write("strings.py", {FIX!r})\n'
                  '(ws / ".coverage").write_bytes(b"SQLite format 3\\x00" + bytes(100))')
    assert (report["verdict"], report["failure_class"]) == ("pass", None), report["reasons"]
    assert report["tests"]["dropped_changes"] == [".coverage"]  # type: ignore[index]


def test_test_config_and_test_changes_are_listed_as_dropped(tmp_path: Path, runs_dir: Path) -> None:
    body = "\n".join([ATTACKS["dot_pytest_ini_collect_only"], ATTACKS["exit_zero_from_tests_init"],
                      ATTACKS["new_test_file_exits_zero"], 'write("conftest.py", "")', 'write("lib.pth", "")',
                      'write("sitecustomize.py", "")', f'write("strings.py", {FIX!r})'])
    report = _run(tmp_path, runs_dir, body)
    dropped = ["conftest.py", "lib.pth", "sitecustomize.py", "tests/.pytest.ini", "tests/__init__.py",
               "tests/test_aaa.py"]
    assert report["tests"]["dropped_changes"] == dropped
    assert report["tests"]["tampered_files"] == dropped
    assert report["verdict"] == "pass", "the fix itself is graded; only the dropped files are left out"


def test_nested_repo_fails_closed_with_a_reason(tmp_path: Path, runs_dir: Path) -> None:
    report = _run(tmp_path, runs_dir, ATTACKS["fix_hidden_in_nested_repo"])
    assert any("gitlink" in reason for reason in report["reasons"]), report["reasons"]  # type: ignore[union-attr]
    assert report["tests"]["ran"] is False  # type: ignore[index]


def test_honest_fix_still_passes(tmp_path: Path, runs_dir: Path) -> None:
    report = _run(tmp_path, runs_dir, f'write("strings.py", {FIX!r})')
    assert (report["verdict"], report["failure_class"]) == ("pass", None), report["reasons"]
    assert report["tests"] == {**report["tests"], "expected": 12, "passed_ids": 12, "missing": [],  # type: ignore[dict-item]
                               "dropped_changes": [], "expected_source": "manifest"}


def test_fake_lane_still_passes(tmp_path: Path, runs_dir: Path) -> None:
    result = run_cli("run", "--runs-dir", str(runs_dir), env=cli_env(tmp_path))
    assert result.report is not None
    assert (result.report["verdict"], result.report["tests"]["passed_ids"]) == ("pass", 12)
