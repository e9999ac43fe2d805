"""The isolated verifier on its own: what it applies, what it refuses, where the expected set comes from."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import cli_env, run_cli

from cto_harness.fixtures import Fixture, load_fixture, resolve_fixture
from cto_harness.proc import Sandbox, choose_sandbox
from cto_harness.runner._verifier import dropped_change, verify_change

FIX = 'import re\n\n\ndef slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n'
SANDBOXES = [Sandbox("none", "test"), choose_sandbox(os.environ)]


def _tag(tmp_path: Path) -> str:
    """A run tag of its own: the harness kills processes by tag prefix, so never a short shared one."""
    return f"verifier-test-{tmp_path.name}-{os.getpid()}"


def _r1() -> Fixture:
    return load_fixture(resolve_fixture("r1-string-slugify"), builtin=True)


def _patch_of(fixture: Fixture, tmp_path: Path, edit: Callable[[Path], None]) -> bytes:
    repo = tmp_path / "patch-repo"
    shutil.copytree(fixture.repo_dir, repo)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True).stdout

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "base")
    edit(repo)
    git("add", "-A", "-f")
    return git("diff", "--cached", "--binary", "--no-renames", "--full-index", "HEAD")


def _fix(repo: Path) -> None:
    (repo / "strings.py").write_text(FIX)


@pytest.mark.parametrize("rel", ["tests/test_strings.py", "pytest.ini", "tests/__init__.py", "tests/helper.py",
                                 "conftest.py", "sub/conftest.py", "tests/.pytest.ini", "a/tox.ini", "setup.cfg",
                                 "pyproject.toml", "x.pth", "sitecustomize.py", "usercustomize.py",
                                 "test_new.py", "pkg/thing_test.py", "tests"])
def test_dropped(rel: str) -> None:
    assert dropped_change(rel, _r1())


@pytest.mark.parametrize("rel", ["strings.py", "evil_reports.py", "pkg/__init__.py", "testing.py", "latest_test.txt"])
def test_applied(rel: str) -> None:
    assert not dropped_change(rel, _r1())


def test_code_beside_its_tests_is_applied_but_new_files_there_are_not() -> None:
    fixture = _r1().model_copy(update={"grading_tests": ["pkg/test_x.py"], "files": ["pkg/test_x.py", "pkg/x.py"]})
    assert not dropped_change("pkg/x.py", fixture)
    assert dropped_change("pkg/strings.py", fixture) and dropped_change("pkg/__init__.py", fixture)


@pytest.mark.parametrize("sandbox", SANDBOXES, ids=lambda s: s.kind)
def test_fix_passes_and_dropped_changes_stay_out(sandbox: Sandbox, tmp_path: Path) -> None:
    def edit(repo: Path) -> None:
        _fix(repo)
        (repo / "tests" / "test_strings.py").write_text("def test_nothing():\n    pass\n")
        (repo / "conftest.py").write_text("raise SystemExit(0)\n")

    fixture = _r1()
    check = verify_change(fixture, _patch_of(fixture, tmp_path, edit), tmp_path / "grading", sandbox,
                          tmp_path / "home", tag=_tag(tmp_path))
    assert check.passed, check.problems
    assert check.dropped == ["conftest.py", "tests/test_strings.py"]
    assert (len(check.expected), len(check.passed_ids), check.missing) == (12, 12, [])
    assert not (tmp_path / "grading" / "tree").exists(), "the graded copy is removed after grading"


def test_symlink_out_of_the_copy_is_refused(tmp_path: Path) -> None:
    fixture = _r1()
    outside = tmp_path / "outside.py"
    outside.write_text(FIX)

    def edit(repo: Path) -> None:
        (repo / "strings.py").unlink()
        (repo / "strings.py").symlink_to(outside)

    check = verify_change(fixture, _patch_of(fixture, tmp_path, edit), tmp_path / "grading", SANDBOXES[-1],
                          tmp_path / "home", tag=_tag(tmp_path))
    assert not check.passed and check.result is None
    assert "leads out of the graded copy" in check.problems[0]


def test_patch_that_does_not_apply_is_refused(tmp_path: Path) -> None:
    fixture = _r1()
    patch = _patch_of(fixture, tmp_path, _fix).replace(b"Turn a title", b"Turn no title")
    check = verify_change(fixture, patch, tmp_path / "grading", SANDBOXES[-1], tmp_path / "home", tag=_tag(tmp_path))
    assert not check.passed and check.result is None
    assert "does not apply" in check.problems[0]


def r1_with_test_timeout(tmp_path: Path, seconds: int) -> Fixture:
    """A copy of r1 whose tests may take ``seconds``."""
    root = tmp_path / f"r1-timeout-{seconds}"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root)
    manifest = root / "fixture.toml"
    manifest.write_text(manifest.read_text().replace("timeout_seconds = 120", f"timeout_seconds = {seconds}"))
    return load_fixture(root)


def test_hanging_code_under_test_times_out(tmp_path: Path) -> None:
    fixture = r1_with_test_timeout(tmp_path, 3)
    patch = _patch_of(fixture, tmp_path, lambda repo: (repo / "strings.py").write_text(
        "import time\ntime.sleep(600)\n" + FIX))
    check = verify_change(fixture, patch, tmp_path / "grading", SANDBOXES[-1], tmp_path / "home", tag=_tag(tmp_path))
    assert check.result is not None and check.result.timed_out
    assert not check.passed and "timed out" in check.problems[0]


def test_expected_tests_are_derived_from_the_reference_once(tmp_path: Path, runs_dir: Path) -> None:
    root = tmp_path / "derived"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root)
    manifest = root / "fixture.toml"
    manifest.write_text(re.sub(r"expected = \[.*?\]\n", "", manifest.read_text(), flags=re.S))
    fixture = load_fixture(root)
    assert fixture.expected_tests is None
    env = cli_env(tmp_path)
    first = run_cli("run", "--fixture", str(root), "--runs-dir", str(runs_dir), env=env)
    assert first.report is not None and first.run_dir is not None
    assert (first.report["verdict"], first.report["tests"]["expected_source"]) == ("pass", "reference")
    assert first.report["tests"]["expected"] == 12
    cache = tmp_path / "home" / "verifier" / "expected" / f"{fixture.digest}.json"
    assert cache.is_file() and (first.run_dir / "grading" / "reference").is_dir()
    second = run_cli("run", "--fixture", str(root), "--runs-dir", str(runs_dir), "--scenario", "noop", env=env)
    assert second.report is not None and second.run_dir is not None
    assert (second.report["verdict"], second.report["tests"]["expected"]) == ("fail", 12)
    assert not (second.run_dir / "grading" / "reference").exists(), "the cached expected set is reused"


def test_reference_that_does_not_pass_fails_closed(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root)
    manifest = root / "fixture.toml"
    manifest.write_text(re.sub(r"expected = \[.*?\]\n", "", manifest.read_text(), flags=re.S))
    (root / "solution.patch").write_text("")
    fixture = load_fixture(root)
    check = verify_change(fixture, _patch_of(fixture, tmp_path, _fix), tmp_path / "grading", SANDBOXES[-1],
                          tmp_path / "home", tag=_tag(tmp_path))
    assert not check.passed and check.expected_source is None
    assert "cannot derive the expected tests" in check.problems[0]
    assert not (tmp_path / "home" / "verifier" / "expected").exists()


@pytest.mark.parametrize("declared", [False, True])
def test_plugin_autoload_is_off_unless_the_manifest_declares_the_plugin(declared: bool, tmp_path: Path) -> None:
    root = tmp_path / "needs-plugin"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root)
    manifest = root / "fixture.toml"
    text = manifest.read_text().replace('"-q", "-p", "no:cacheprovider", "tests"]',
                                        '"-q", "--hypothesis-show-statistics", "tests"]')
    if declared:
        text = text.replace("timeout_seconds = 120\n",
                            'timeout_seconds = 120\nplugins = ["_hypothesis_pytestplugin"]\n')
    manifest.write_text(text)
    fixture = load_fixture(root)
    check = verify_change(fixture, _patch_of(fixture, tmp_path, _fix), tmp_path / "grading", SANDBOXES[-1],
                          tmp_path / "home", tag=_tag(tmp_path))
    assert check.passed is declared, check.problems


def r1_with_data_dir(tmp_path: Path) -> Fixture:
    """A copy of r1 with a ``data/`` dir of 150 files: large enough to be shared, not copied."""
    root = tmp_path / "big"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    data = root / "repo" / "data"
    data.mkdir()
    for i in range(150):
        (data / f"f{i:03d}.txt").write_text(f"datum {i}\n")
    return load_fixture(root)


@pytest.mark.parametrize("sandbox", SANDBOXES, ids=lambda s: s.kind)
def test_large_untouched_subtrees_are_shared_read_only(sandbox: Sandbox, tmp_path: Path) -> None:
    """Sandboxed, a big untouched dir is the fixture's own, bound read-only: graded code reads it, never writes it."""
    fixture = r1_with_data_dir(tmp_path)
    data = fixture.repo_dir / "data"
    code = FIX + (
        "\nimport os\n_here = os.path.dirname(os.path.abspath(__file__))\n"
        "assert open(os.path.join(_here, 'data', 'f001.txt')).read() == 'datum 1\\n'\n"
        "try:\n    open(os.path.join(_here, 'data', 'f000.txt'), 'w').write('pwned\\n')\nexcept OSError:\n    pass\n"
        "try:\n    os.unlink(os.path.join(_here, 'data', 'f002.txt'))\nexcept OSError:\n    pass\n")
    patch = _patch_of(fixture, tmp_path, lambda repo: (repo / "strings.py").write_text(code))
    check = verify_change(fixture, patch, tmp_path / "grading", sandbox, tmp_path / "home", tag=_tag(tmp_path))
    assert check.passed, check.problems
    assert (data / "f000.txt").read_text() == "datum 0\n" and (data / "f002.txt").exists()


def test_every_config_file_name_pytest_knows_is_dropped_and_ordered_as_pytest_orders_it() -> None:
    """A pytest that learns a new config file name must not let an agent's copy of it be applied."""
    from _pytest.config.findpaths import CONFIG_LOADERS_BY_NAME

    from cto_harness.runner._verifier import CONFIG_MARKERS, DROPPED_NAMES

    assert list(CONFIG_MARKERS) == list(CONFIG_LOADERS_BY_NAME)
    assert set(CONFIG_LOADERS_BY_NAME) <= DROPPED_NAMES


@pytest.mark.parametrize("sandbox", SANDBOXES[-1:], ids=lambda s: s.kind)
def test_a_fixtures_own_conftest_hooks_are_not_taken_for_tampering(sandbox: Sandbox, tmp_path: Path) -> None:
    """The plugin's guard allows what pytest loads from the fixture's own conftest files (root and below)."""
    source = tmp_path / "fixture"
    shutil.copytree(resolve_fixture("r1-string-slugify"), source)
    hook = ("import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\n"
            "def pytest_runtest_makereport(item, call):\n    yield\n\n\n"
            "@pytest.fixture\ndef greeting():\n    return 'hi'\n")
    (source / "repo" / "conftest.py").write_text(hook)
    (source / "repo" / "tests" / "conftest.py").write_text(hook.replace("greeting", "farewell"))
    # Loaded while collecting (not at start-up): after the guard recorded the plugins.
    (source / "repo" / "tests" / "sub").mkdir()
    (source / "repo" / "tests" / "sub" / "conftest.py").write_text(hook.replace("greeting", "hello"))
    (source / "repo" / "tests" / "sub" / "test_sub.py").write_text("def test_hello(hello):\n    assert hello\n")
    fixture = load_fixture(source)
    check = verify_change(fixture, _patch_of(fixture, tmp_path, _fix), tmp_path / "grading", sandbox,
                          tmp_path / "home", tag=_tag(tmp_path))
    assert check.passed, check.problems
    assert (len(check.passed_ids), check.missing) == (13, [])  # the 12 expected and tests/sub's own
