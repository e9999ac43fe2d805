"""The baseline (built once) and the change set (stat short-cut that a hostile agent cannot fool)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cto_harness.runner import _workspace as _workspace_module
from cto_harness.runner._workspace import (
    Baseline,
    StatSnapshot,
    WorkspaceError,
    changed_candidates,
    compute_changes,
    git_env,
    init_baseline,
)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=True, capture_output=True,
                          text=True).stdout


def _populate(workspace: Path) -> None:
    workspace.mkdir()
    (workspace / "a.py").write_text("def f():\n    return 1\n")
    (workspace / "b.txt").write_text("bravo\n")
    (workspace / "pkg" / "sub").mkdir(parents=True)
    (workspace / "pkg" / "m.py").write_text("x = 1\n")
    (workspace / "pkg" / "sub" / "deep.txt").write_text("deep\n")
    (workspace / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (workspace / "tool.sh").chmod(0o755)
    (workspace / "link").symlink_to("b.txt")
    (workspace / "empty").write_bytes(b"")


def _wait_for_clock_tick(directory: Path) -> None:
    """Wait until files written now get a later ctime than everything written so far.

    The filesystem clock is coarse (one tick is a few ms): an explicit signal, not a fixed sleep.
    """
    probe = directory / ".tick-probe"
    probe.write_bytes(b"")
    first = probe.stat().st_ctime_ns
    while True:
        probe.write_bytes(b"x")
        if probe.stat().st_ctime_ns > first:
            probe.unlink()
            return


@pytest.fixture
def ws(tmp_path: Path) -> tuple[Path, Path, Baseline]:
    workspace = tmp_path / "workspace"
    _populate(workspace)
    _wait_for_clock_tick(tmp_path)  # so the stat short-cut trusts the copy (not racy)
    baseline_git = tmp_path / "baseline.git"
    baseline = init_baseline(workspace, baseline_git)
    return workspace, baseline_git, baseline


def _full(workspace: Path, baseline_git: Path, baseline: Baseline) -> tuple[list[str], bytes]:
    """The reference: hash everything (no stat short-cut), as before issue 12."""
    changes = compute_changes(workspace, baseline_git, baseline.commit)
    return changes.files, changes.patch


def _fast(workspace: Path, baseline_git: Path, baseline: Baseline) -> tuple[list[str], bytes]:
    changes = compute_changes(workspace, baseline_git, baseline)
    return changes.files, changes.patch


def _by_hand(workspace: Path, baseline_git: Path, baseline: Baseline) -> tuple[list[str], bytes]:
    """Independent of compute_changes: read-tree, add everything, then names and patch in two diffs."""
    index = baseline_git / "by-hand.index"
    index.unlink(missing_ok=True)
    env = {**git_env(), "GIT_INDEX_FILE": str(index)}

    def run(*args: str) -> bytes:
        done = subprocess.run(["git", f"--git-dir={baseline_git}", f"--work-tree={workspace}", *args], cwd=workspace,
                              env=env, capture_output=True, check=False)
        if done.returncode != 0:
            raise WorkspaceError("git adding files failed: " + done.stderr.decode().strip().splitlines()[-1])
        return done.stdout

    run("read-tree", baseline.commit)
    run("add", "-A", "-f", "--", ".", *_workspace_module.JUNK_EXCLUDES)
    names = run("diff", "--cached", "--no-ext-diff", "--no-textconv", "--name-only", "-z", "--no-renames",
                baseline.commit)
    patch = run("diff", "--cached", "--no-ext-diff", "--no-textconv", "--binary", "--no-renames", "--full-index",
                baseline.commit) if names else b""
    return sorted(n.decode("utf-8", "surrogateescape") for n in names.split(b"\0") if n), patch


def test_workspace_repository_is_complete_and_clean(ws: tuple[Path, Path, Baseline]) -> None:
    workspace, baseline_git, baseline = ws
    assert _git("rev-parse", "HEAD", cwd=workspace).strip() == baseline.commit
    assert _git("status", "--porcelain", "--untracked-files=all", cwd=workspace) == ""
    _git("fsck", "--strict", "--no-dangling", cwd=workspace)
    _git("--git-dir", str(baseline_git), "fsck", "--strict", "--no-dangling", cwd=workspace)
    assert not (workspace / ".git" / "objects" / "info" / "alternates").exists()
    tracked = _git("ls-files", cwd=workspace).split()
    assert tracked == ["a.py", "b.txt", "empty", "link", "pkg/m.py", "pkg/sub/deep.txt", "tool.sh"]
    # Built once: blobs live in one pack, not one loose file each, and no maintenance ran.
    loose = [p for p in (baseline_git / "objects").glob("??/*")]
    assert len(list((baseline_git / "objects" / "pack").glob("*.pack"))) == 1
    assert len(loose) < 8  # trees, the commit and the empty blob


def test_nothing_changed_means_nothing_hashed(ws: tuple[Path, Path, Baseline]) -> None:
    workspace, baseline_git, baseline = ws
    assert baseline.snapshot is not None
    assert changed_candidates(workspace, baseline.snapshot) == []
    assert _fast(workspace, baseline_git, baseline) == ([], b"")


def _edit(w: Path) -> None:
    (w / "a.py").write_text("def f():\n    return 2\n")


def _add(w: Path) -> None:
    (w / "pkg" / "new.py").write_text("new\n")


def _delete(w: Path) -> None:
    (w / "pkg" / "sub" / "deep.txt").unlink()


def _delete_dir(w: Path) -> None:
    shutil.rmtree(w / "pkg")


def _dir_to_symlink(w: Path) -> None:
    shutil.rmtree(w / "pkg" / "sub")
    (w / "pkg" / "sub").symlink_to("../b.txt")


def _file_to_dir(w: Path) -> None:
    (w / "b.txt").unlink()
    (w / "b.txt").mkdir()
    (w / "b.txt" / "inner").write_text("inner\n")


def _chmod(w: Path) -> None:
    (w / "a.py").chmod(0o755)


def _retarget_link(w: Path) -> None:
    (w / "link").unlink()
    (w / "link").symlink_to("a.py")


def _commit_in_own_repo(w: Path) -> None:
    (w / "b.txt").write_text("committed\n")
    _git("add", "-A", cwd=w)
    _git("commit", "-q", "-m", "agent", cwd=w)


def _rewrite_own_git(w: Path) -> None:
    """Edit, commit, then destroy the agent's repository: the harness's baseline is elsewhere."""
    _commit_in_own_repo(w)
    shutil.rmtree(w / ".git")
    _git("init", "-q", cwd=w)
    _git("add", "-A", cwd=w)
    _git("commit", "-q", "-m", "history rewritten", cwd=w)


def _nested_repo(w: Path) -> None:
    (w / "vendored").mkdir()
    (w / "vendored" / "lib.py").write_text("lib\n")
    _git("init", "-q", cwd=w / "vendored")


def _nested_repo_with_commit(w: Path) -> None:
    _nested_repo(w)
    _git("add", "-A", cwd=w / "vendored")
    _git("commit", "-q", "-m", "vendored", cwd=w / "vendored")


def _junk(w: Path) -> None:
    (w / "pkg" / "__pycache__").mkdir()
    (w / "pkg" / "__pycache__" / "m.cpython.pyc").write_bytes(b"\0junk")


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "edit": _edit, "add": _add, "delete": _delete, "delete-dir": _delete_dir,
    "dir-to-symlink": _dir_to_symlink, "file-to-dir": _file_to_dir, "chmod": _chmod,
    "retarget-link": _retarget_link, "commit-in-own-repo": _commit_in_own_repo,
    "rewrite-own-git": _rewrite_own_git, "nested-repo": _nested_repo,
    "nested-repo-with-commit": _nested_repo_with_commit, "junk-only": _junk,
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_fast_change_set_equals_the_full_rehash(mutation: str, ws: tuple[Path, Path, Baseline]) -> None:
    workspace, baseline_git, baseline = ws
    MUTATIONS[mutation](workspace)
    fast = _outcome(_fast, workspace, baseline_git, baseline)
    assert fast == _outcome(_full, workspace, baseline_git, baseline)
    by_hand = _outcome(_by_hand, workspace, baseline_git, baseline)
    if mutation == "nested-repo":  # git refuses a repository without a commit, in both ways
        assert isinstance(fast, str) and "adding files failed" in fast
        assert isinstance(by_hand, str)
    else:
        assert fast == by_hand
        assert isinstance(fast, tuple) and (fast[0] == []) == (mutation == "junk-only")


def _outcome(compute: Callable[[Path, Path, Baseline], tuple[list[str], bytes]], workspace: Path,
             baseline_git: Path, baseline: Baseline) -> tuple[list[str], bytes] | str:
    try:
        return compute(workspace, baseline_git, baseline)
    except WorkspaceError as exc:
        return str(exc)


def test_an_edit_with_size_and_mtime_restored_is_caught(ws: tuple[Path, Path, Baseline]) -> None:
    """ctime cannot be set from userspace: restoring size, mtime and atime does not hide an edit."""
    workspace, baseline_git, baseline = ws
    target = workspace / "b.txt"
    before = target.stat()
    assert baseline.snapshot is not None and baseline.snapshot.trusted("b.txt", before)
    target.write_text("BRAVO\n")  # same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    files, patch = _fast(workspace, baseline_git, baseline)
    assert files == ["b.txt"] and b"+BRAVO" in patch


def test_a_replaced_file_with_forged_stat_is_caught(ws: tuple[Path, Path, Baseline]) -> None:
    workspace, baseline_git, baseline = ws
    target = workspace / "a.py"
    before = target.stat()
    forged = workspace / "forged"
    forged.write_text("def f():\n    return 9\n")
    os.utime(forged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(forged, target)
    assert _fast(workspace, baseline_git, baseline)[0] == ["a.py"]


def test_entries_written_in_the_snapshot_tick_are_never_trusted(tmp_path: Path) -> None:
    """git's racy-entry rule: a ctime at or after the marker proves nothing."""
    target = tmp_path / "f"
    target.write_text("x\n")
    st = target.stat()
    key = (st.st_ino, st.st_dev, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert StatSnapshot({"f": key}, marker_ctime_ns=st.st_ctime_ns + 1).trusted("f", st)
    assert not StatSnapshot({"f": key}, marker_ctime_ns=st.st_ctime_ns).trusted("f", st)
    assert changed_candidates(tmp_path, StatSnapshot({"f": key}, marker_ctime_ns=st.st_ctime_ns)) == ["f"]


def test_excluded_state_dirs_are_not_changes(ws: tuple[Path, Path, Baseline]) -> None:
    workspace, baseline_git, baseline = ws
    (workspace / ".agent-state").mkdir()
    (workspace / ".agent-state" / "log").write_text("state\n")
    changes = compute_changes(workspace, baseline_git, baseline, exclude_dirs=[".agent-state"])
    assert changes.files == [] and changes.patch == b""


def _tricky_tree(workspace: Path) -> None:
    """Names whose order differs between paths and trees, modes, links, duplicates, a big file."""
    _populate(workspace)
    (workspace / "a-b").write_text("dash\n")
    (workspace / "a").mkdir()
    (workspace / "a" / "x").write_text("in a\n")
    (workspace / "a.b").write_text("dot\n")
    (workspace / "a0").write_text("zero\n")
    (workspace / "dup1").write_text("same\n")
    (workspace / "dup2").write_text("same\n")
    (workspace / "twin1").mkdir()
    (workspace / "twin1" / "f").write_text("twin\n")
    (workspace / "twin2").mkdir()
    (workspace / "twin2" / "f").write_text("twin\n")
    (workspace / "empty-dir").mkdir()
    (workspace / "pkg" / "sub" / "link-up").symlink_to("../m.py")
    (workspace / "naïve name ü.txt").write_text("utf-8\n")
    (workspace / "big.bin").write_bytes(bytes(range(256)) * 4096 + b"tail")  # above KEEP_BYTES
    (workspace / "mid.bin").write_bytes(bytes(range(7, 256)) * 400)  # in the pack, more than one stored block


@pytest.mark.parametrize("threaded", [False, True])
def test_the_in_process_baseline_is_the_one_git_builds(threaded: bool, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Same commit id as ``git add -A -f`` + write-tree + commit-tree, and a store git fully accepts."""
    from cto_harness.runner import _gitpack

    if threaded:  # the big blob's SHA-1 and Adler-32 in the helper thread, as for a file of 4 MiB and more
        monkeypatch.setattr(_gitpack, "THREAD_BYTES", 1)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for workspace in (ours, theirs):
        _tricky_tree(workspace)
    baseline = init_baseline(ours, tmp_path / "ours.git")
    reference = _workspace_module._git_baseline(theirs, tmp_path / "theirs.git")
    assert baseline.commit == reference.commit
    _git("--git-dir", str(tmp_path / "ours.git"), "fsck", "--strict", "--full", "--no-dangling", cwd=tmp_path)
    _git("fsck", "--strict", "--full", "--no-dangling", cwd=ours)
    _git("update-index", "--really-refresh", cwd=ours)  # every index entry is correct, not only its stat
    assert _git("status", "--porcelain", "--untracked-files=all", cwd=ours) == ""
    assert baseline.snapshot is not None and set(baseline.snapshot.entries) == set(
        _git("ls-files", "-z", cwd=ours).rstrip("\0").split("\0"))
    _git("commit", "-q", "--allow-empty", "-m", "the agent can commit on top", cwd=ours)


def test_the_change_sets_index_is_the_one_read_tree_writes(tmp_path: Path) -> None:
    """Kept in memory instead of spawning ``git read-tree``: same entries, and no stat data git could trust."""
    workspace = tmp_path / "workspace"
    _tricky_tree(workspace)
    baseline = init_baseline(workspace, tmp_path / "baseline.git")
    assert baseline.tree_index is not None
    ours, theirs = tmp_path / "ours.index", tmp_path / "theirs.index"
    ours.write_bytes(baseline.tree_index)
    env = {**git_env(), "GIT_INDEX_FILE": str(theirs)}
    subprocess.run(["git", f"--git-dir={tmp_path / 'baseline.git'}", "read-tree", baseline.commit], env=env,
                   check=True)

    def listing(index: Path) -> str:
        return subprocess.run(["git", f"--git-dir={tmp_path / 'baseline.git'}", "ls-files", "--stage", "--debug"],
                              env={**git_env(), "GIT_INDEX_FILE": str(index)}, check=True, capture_output=True,
                              text=True).stdout

    assert listing(ours) == listing(theirs)
    assert "ctime: 0:0" in listing(ours) and "size: 0" in listing(ours)


@pytest.mark.parametrize("planted", [".gitattributes", "sub/.git"])
def test_trees_git_must_interpret_take_the_git_path(planted: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "workspace"
    _populate(workspace)
    target = workspace / planted
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("* text=auto\n" if planted == ".gitattributes" else "gitdir: /nowhere\n")
    used: list[Path] = []
    real = _workspace_module._git_baseline
    monkeypatch.setattr(_workspace_module, "_git_baseline", lambda w, b: used.append(w) or real(w, b))
    with contextlib.suppress(WorkspaceError):  # git may refuse the planted .git; git decided, not _gitpack
        init_baseline(workspace, tmp_path / "baseline.git")
    assert used == [workspace]


def test_vouched_digests_reuse_the_fixture_digest_only_for_untouched_copies(tmp_path: Path) -> None:
    """The report hashes a workspace file again unless the copy kept the stat it had when copied."""
    import hashlib

    from cto_harness.fixtures import copy_repo, load_fixture, resolve_fixture
    from cto_harness.runner._workspace import vouched_digests

    fixture = load_fixture(resolve_fixture("r1-string-slugify"), builtin=True)  # installed long ago
    workspace = tmp_path / "workspace"
    copied: dict[str, tuple[os.stat_result, str]] = {}
    copy_repo(fixture, workspace, digests=copied)
    assert set(copied) == set(fixture.files)
    _wait_for_clock_tick(tmp_path)
    known = vouched_digests(init_baseline(workspace, tmp_path / "baseline.git"), copied)
    assert known is not None
    for rel in fixture.files:
        content = (workspace / rel).read_bytes()
        assert known(b"workspace/" + rel.encode(), (workspace / rel).lstat()) == hashlib.sha256(content).hexdigest()
    target = workspace / "strings.py"
    before = target.stat()
    target.write_bytes(target.read_bytes().replace(b"def", b"DEF", 1))  # same size, mtime restored
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert known(b"workspace/strings.py", target.lstat()) is None


def test_a_freshly_written_fixture_is_not_vouched_for(tmp_path: Path) -> None:
    """A file changed less than the margin before the digest read it could change again unseen: hash it."""
    from cto_harness.fixtures import copy_repo, load_fixture, resolve_fixture

    root = tmp_path / "fresh"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    copied: dict[str, tuple[os.stat_result, str]] = {}
    copy_repo(load_fixture(root), tmp_path / "workspace", digests=copied)
    assert copied == {}


@pytest.mark.parametrize("out", [b":100644 100644 a b M\0x", b":100644 100644 a b M\0x\0diff", b"diff --git a/x b/x\n"])
def test_a_malformed_diff_output_is_an_error(out: bytes) -> None:
    from cto_harness.runner._workspace import split_patch_with_raw

    with pytest.raises(WorkspaceError):
        split_patch_with_raw(out)


@pytest.mark.parametrize("size", [0, 1, 40_000, 0xFFFF, 0x10000, 200_000])
def test_pack_entries_are_whole_zlib_streams(size: int) -> None:
    import zlib

    from cto_harness.runner import _gitpack

    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    stream = _gitpack._zlib_stored(data)
    assert zlib.decompress(stream) == data
    if size < 0xFFFB:  # zlib's own stored blocks stop at 65531 bytes; one block either way below that
        assert stream == zlib.compress(data, 0)
