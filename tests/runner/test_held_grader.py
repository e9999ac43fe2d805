"""The held grader: a grading sandbox started early grades exactly as the cold path, or is not used."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest
from tests.conftest import cli_env, run_cli
from tests.runner.test_verifier import FIX, _fix, _patch_of, _r1, _tag, r1_with_data_dir, r1_with_test_timeout

from cto_harness.fixtures import Fixture, load_fixture, resolve_fixture
from cto_harness.proc import choose_sandbox
from cto_harness.runner import HeldGrader, hold_grader
from cto_harness.runner._held_grader import FOREIGN_SCRATCH_MAX_AGE_S, _host_key
from cto_harness.runner._verifier import fit_grader, verify_change

SANDBOX = choose_sandbox(os.environ)
pytestmark = pytest.mark.skipif(not SANDBOX.confined, reason="a grader is held only inside bubblewrap")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CTO_HARNESS_HOME": str(tmp_path / "home")}


def _held(tmp_path: Path, fixture: Fixture) -> HeldGrader:
    grader = fit_grader(None, fixture, _env(tmp_path), tag=_tag(tmp_path) + "-held")
    assert grader is not None and grader.held is not None
    return grader


def _grade(tmp_path: Path, fixture: Fixture, patch: bytes, grader: HeldGrader | None, name: str) -> dict[str, object]:
    check = verify_change(fixture, patch, tmp_path / name, SANDBOX, tmp_path / "home", tag=_tag(tmp_path),
                          held=grader)
    assert check.result is not None, check.problems
    return {"passed": check.passed, "problems": check.problems, "counts": check.counts,
            "passed_ids": check.passed_ids, "dropped": check.dropped, "pid": check.result.pid}


def _break(repo: Path) -> None:
    (repo / "strings.py").write_text("def slugify(text):\n    return text\n")


def _fix_and_edit_tests(repo: Path) -> None:
    _fix(repo)
    (repo / "tests" / "test_strings.py").write_text("def test_nothing():\n    pass\n")


@pytest.mark.parametrize("edit", [_fix, _break, _fix_and_edit_tests], ids=["fix", "broken", "edits-tests"])
def test_held_grading_is_the_cold_grading(edit: object, tmp_path: Path) -> None:
    fixture = _r1()
    patch = _patch_of(fixture, tmp_path, edit)  # type: ignore[arg-type]
    grader = _held(tmp_path, fixture)
    held_pid = grader.held.pid if grader.held else None
    try:
        held = _grade(tmp_path, fixture, patch, grader, "held")
    finally:
        grader.close()
    cold = _grade(tmp_path, fixture, patch, None, "cold")
    assert held.pop("pid") == held_pid, "the held sandbox graded"
    assert cold.pop("pid") != held_pid
    assert held == cold
    assert not (tmp_path / "home" / "scratch").exists() or not os.listdir(tmp_path / "home" / "scratch")


def test_the_deadline_counts_from_release(tmp_path: Path) -> None:
    fixture = r1_with_test_timeout(tmp_path, 5)
    patch = _patch_of(fixture, tmp_path, _fix)
    grader = _held(tmp_path, fixture)
    try:
        time.sleep(5.5)  # longer than the whole test timeout: held time is not grading time
        held = _grade(tmp_path, fixture, patch, grader, "held")
    finally:
        grader.close()
    assert held["passed"], held["problems"]


def test_a_written_scratch_tree_is_not_graded(tmp_path: Path) -> None:
    """Whatever reached the held tree before grading (only the harness can) makes the verifier go cold."""
    fixture = _r1()
    grader = _held(tmp_path, fixture)
    held_pid = grader.held.pid if grader.held else None
    (grader.tree / "conftest.py").write_text(
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n")
    try:
        held = _grade(tmp_path, fixture, _patch_of(fixture, tmp_path, _break), grader, "held")
    finally:
        grader.close()
    assert held["pid"] != held_pid
    assert not held["passed"]


def test_a_dead_held_grader_is_not_used(tmp_path: Path) -> None:
    fixture = _r1()
    grader = _held(tmp_path, fixture)
    assert grader.held is not None
    held_pid = grader.held.pid
    os.kill(held_pid, signal.SIGKILL)
    psutil.Process(held_pid).wait(10) if psutil.pid_exists(held_pid) else None
    try:
        held = _grade(tmp_path, fixture, _patch_of(fixture, tmp_path, _fix), grader, "held")
    finally:
        grader.close()
    assert held["pid"] != held_pid and held["passed"], held["problems"]


@pytest.mark.parametrize("touch_shared", [False, True])
def test_shared_subtrees_are_bound_when_held(touch_shared: bool, tmp_path: Path) -> None:
    """Held, a big untouched dir is bound read-only as in the cold path; a patch inside it goes cold."""
    fixture = r1_with_data_dir(tmp_path)
    code = FIX + (
        "\nimport os\n_here = os.path.dirname(os.path.abspath(__file__))\n"
        "assert open(os.path.join(_here, 'data', 'f001.txt')).read() == 'datum 1\\n'\n"
        "try:\n    open(os.path.join(_here, 'data', 'f000.txt'), 'w').write('pwned\\n')\nexcept OSError:\n    pass\n")

    def edit(repo: Path) -> None:
        (repo / "strings.py").write_text(code)
        if touch_shared:
            (repo / "data" / "f149.txt").write_text("changed\n")

    patch = _patch_of(fixture, tmp_path, edit)
    grader = _held(tmp_path, fixture)
    assert [rel for _, rel in grader.shared] == ["data"]
    held_pid = grader.held.pid if grader.held else None
    try:
        held = _grade(tmp_path, fixture, patch, grader, "held")
    finally:
        grader.close()
    assert held["passed"], held["problems"]
    assert (held["pid"] == held_pid) is not touch_shared
    assert (fixture.repo_dir / "data" / "f000.txt").read_text() == "datum 0\n"


def test_close_kills_the_sandbox_and_removes_the_scratch(tmp_path: Path) -> None:
    grader = hold_grader(_env(tmp_path), tag=_tag(tmp_path))
    assert grader is not None and grader.held is not None
    root = psutil.Process(grader.held.pid)
    deadline = time.monotonic() + 30
    while not any("--held" in " ".join(p.cmdline()) for p in root.children(recursive=True)):
        assert time.monotonic() < deadline, "the held interpreter never started"
        time.sleep(0.01)
    tree = [root, *root.children(recursive=True)]
    grader.close()
    assert not grader.scratch.exists()
    for proc in tree:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, proc


def test_runs_leave_no_scratch_and_no_held_process(tmp_path: Path, runs_dir: Path) -> None:
    env = cli_env(tmp_path)
    ok = run_cli("run", "--runs-dir", str(runs_dir), env=env)
    assert ok.report is not None and ok.report["verdict"] == "pass"
    bad = run_cli("run", "--runs-dir", str(runs_dir), "--scenario", "bogus", env=env)
    assert bad.returncode == 2
    scratch = tmp_path / "home" / "scratch"
    assert not scratch.exists() or not os.listdir(scratch)
    mine = [p for p in psutil.process_iter(["cmdline"]) if str(scratch) in " ".join(p.info["cmdline"] or [])]
    assert not [p for p in mine if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_stale_scratch_dir_of_a_dead_harness_is_swept(tmp_path: Path) -> None:
    """Of this pid namespace: when its pid is gone; of another (a shared home): only when a week old."""
    dead = psutil.Popen(["true"])
    dead.wait()
    scratch = tmp_path / "home" / "scratch"
    mine = _host_key()
    stale, alive = scratch / f"grading-{mine}-{dead.pid}-000000000000", scratch / f"grading-{mine}-{os.getpid()}-0"
    other = "0" * 12  # another host's (or container's) key
    foreign, old_foreign = scratch / f"grading-{other}-{dead.pid}-0", scratch / f"grading-{other}-{dead.pid}-1"
    for directory in (stale, alive, foreign, old_foreign):
        (directory / "tree").mkdir(parents=True)
    week_ago = time.time() - FOREIGN_SCRATCH_MAX_AGE_S - 60
    os.utime(old_foreign, (week_ago, week_ago))
    grader = hold_grader(_env(tmp_path), tag=_tag(tmp_path))
    assert grader is not None
    grader.close()
    assert not stale.exists() and not old_foreign.exists()
    assert alive.exists() and foreign.exists()


@pytest.mark.parametrize("touch_big", [False, True])
def test_an_early_grader_copies_a_few_big_files_instead_of_restarting(touch_big: bool, tmp_path: Path) -> None:
    """Started before the fixture was known (the CLI's), it is kept for one big shareable file, which is copied."""
    root = tmp_path / "one-big-file"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "repo" / "big.bin").write_bytes(b"x" * (9 * 1024 * 1024))
    fixture = load_fixture(root)
    early = hold_grader(_env(tmp_path), tag=_tag(tmp_path) + "-early")
    assert early is not None and early.held is not None
    early_pid = early.held.pid
    grader = fit_grader(early, fixture, _env(tmp_path), tag=_tag(tmp_path) + "-held")
    assert grader is early and not grader.shared

    def edit(repo: Path) -> None:
        _fix(repo)
        if touch_big:
            (repo / "big.bin").write_bytes(b"y" * 10)

    try:
        held = _grade(tmp_path, fixture, _patch_of(fixture, tmp_path, edit), grader, "held")
    finally:
        grader.close()
    assert held["passed"] and held["pid"] == early_pid, held["problems"]
    assert (fixture.repo_dir / "big.bin").stat().st_size == 9 * 1024 * 1024


def test_an_early_grader_is_replaced_for_a_many_file_subtree(tmp_path: Path) -> None:
    fixture = r1_with_data_dir(tmp_path)
    early = hold_grader(_env(tmp_path), tag=_tag(tmp_path) + "-early")
    assert early is not None
    grader = fit_grader(early, fixture, _env(tmp_path), tag=_tag(tmp_path) + "-held")
    try:
        assert grader is not None and grader is not early and [rel for _, rel in grader.shared] == ["data"]
        assert early.held is None and not early.scratch.exists(), "the early one was closed"
    finally:
        if grader is not None:
            grader.close()


BIG_TEST = '''

def test_big_file_is_what_the_fixture_holds():
    import pathlib
    data = pathlib.Path(__file__).resolve().parent.parent.joinpath("big.bin").read_bytes()
    assert data == pathlib.Path(__file__).resolve().parent.parent.joinpath("big.txt").read_bytes() * 1024
'''


@pytest.mark.parametrize("meanwhile", ["nothing", "fixture-rewritten", "staged-copy-rewritten", "patch-touches-it"])
def test_a_big_file_staged_while_the_agent_runs_is_used_only_while_it_is_the_fixture_s(
        meanwhile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stage_held_copy`` copies the big file early; the graded tree gets it only if nothing changed since."""
    from cto_harness.fixtures import _fixture
    from cto_harness.runner import _verifier

    monkeypatch.setattr(_fixture, "VOUCH_MARGIN_NS", 0)  # the files were written just now
    root = tmp_path / "one-big-file"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "repo" / "big.txt").write_bytes(b"x" * 9 * 1024)
    (root / "repo" / "big.bin").write_bytes(b"x" * 9 * 1024 * 1024)
    with open(root / "repo" / "tests" / "test_strings.py", "a") as handle:
        handle.write(BIG_TEST)
    fixture = load_fixture(root)
    early = hold_grader(_env(tmp_path), tag=_tag(tmp_path) + "-early")
    grader = fit_grader(early, fixture, _env(tmp_path), tag=_tag(tmp_path) + "-held")
    assert grader is early and grader is not None and not grader.shared
    used: list[bool] = []
    real = _verifier._use_staged
    monkeypatch.setattr(_verifier, "_use_staged", lambda *args: used.append(real(*args)) or used[-1])

    def edit(repo: Path) -> None:
        _fix(repo)
        if meanwhile == "patch-touches-it":
            (repo / "big.bin").write_bytes(b"y" * 9 * 1024 * 1024)
            (repo / "big.txt").write_bytes(b"y" * 9 * 1024)

    patch = _patch_of(fixture, tmp_path, edit)
    try:
        _verifier.stage_held_copy(grader, fixture)
        _verifier._STAGING[grader.scratch].thread.join()
        if meanwhile == "fixture-rewritten":  # same size, and the small file too: the stat tells
            (root / "repo" / "big.bin").write_bytes(b"z" * 9 * 1024 * 1024)
            (root / "repo" / "big.txt").write_bytes(b"z" * 9 * 1024)
        elif meanwhile == "staged-copy-rewritten":
            staged = grader.scratch / _verifier.STAGED_DIR / "big.bin"
            staged.chmod(0o644)
            staged.write_bytes(b"w" * 9 * 1024 * 1024)
        held = _grade(tmp_path, fixture, patch, grader, "held")
    finally:
        grader.close()
    assert used == [meanwhile == "nothing"]
    assert "tests/test_strings.py::test_big_file_is_what_the_fixture_holds" in held["passed_ids"], held


def test_the_cli_s_early_grader_binds_what_the_fixture_shares_and_is_kept(tmp_path: Path) -> None:
    """``early_shared`` (asked before the fixture is loaded) names the subtrees; a grader started with them fits."""
    from cto_harness._share import early_shared

    root = tmp_path / "one-big-file"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "repo" / "big.bin").write_bytes(b"x" * (9 * 1024 * 1024))
    early = hold_grader(_env(tmp_path), shared=early_shared(str(root)), tag=_tag(tmp_path) + "-early")
    assert early is not None and early.held is not None and [rel for _, rel in early.shared] == ["big.bin"]
    early_pid = early.held.pid
    fixture = load_fixture(root)
    grader = fit_grader(early, fixture, _env(tmp_path), tag=_tag(tmp_path) + "-held")
    try:
        assert grader is early, "the early grader was replaced"
        held = _grade(tmp_path, fixture, _patch_of(fixture, tmp_path, _fix), grader, "held")
    finally:
        grader.close()
    assert held["passed"] and held["pid"] == early_pid, held["problems"]


@pytest.mark.parametrize("tree", ["big-file", "data-dir", "linked", "cache-dirs", "builtin"])
def test_early_shared_is_what_the_loaded_fixture_shares(tree: str, tmp_path: Path) -> None:
    from cto_harness._share import early_shared
    from cto_harness.fixtures import shareable_subtrees

    root = tmp_path / tree
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    repo = root / "repo"
    if tree == "big-file":
        (repo / "assets").mkdir()
        (repo / "assets" / "big.bin").write_bytes(b"x" * (8 * 1024 * 1024))
    elif tree in ("data-dir", "linked", "cache-dirs"):
        for i in range(120):
            (repo / "data" / f"d{i // 50}").mkdir(parents=True, exist_ok=True)
            (repo / "data" / f"d{i // 50}" / f"f{i}.txt").write_text(f"{i}\n")
        if tree == "linked":
            (repo / "data" / "d0" / "link").symlink_to("f0.txt")
        if tree == "cache-dirs":
            (repo / "data" / "d1" / "__pycache__").mkdir()
            for i in range(200):
                (repo / "data" / "d1" / "__pycache__" / f"c{i}.pyc").write_bytes(b"")
    spec = "r1-string-slugify" if tree == "builtin" else str(root)
    fixture = load_fixture(resolve_fixture(spec), builtin=tree == "builtin")
    expected = [(fixture.repo_dir, rel) for rel in shareable_subtrees(fixture)]
    assert early_shared(spec) == expected
    assert (expected != []) == (tree in ("big-file", "data-dir", "cache-dirs"))  # a link blocks sharing
