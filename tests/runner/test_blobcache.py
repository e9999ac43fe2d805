"""The per-content cache of large baseline blobs: reused only when it is exactly what the harness wrote."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cto_harness.evidence import collect_artifacts
from cto_harness.fixtures import Fixture
from cto_harness.runner import _gitpack
from cto_harness.runner._blobcache import DIR_NAME, BlobCache
from cto_harness.runner._workspace import (
    ALTERNATES,
    PREFETCH_DIR,
    Baseline,
    Populated,
    compute_changes,
    git_env,
    init_baseline,
    populate_workspace,
    vouched_digests,
)

BIG = _gitpack.KEEP_BYTES * 3 + 7
"""Above KEEP_BYTES: a loose object, and a cache entry."""
CONTENT = random.Random(7).randbytes(BIG)
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()


def _workspace(path: Path) -> dict[str, tuple[os.stat_result, str]]:
    """A fixture copy as ``copy_repo(digests=)`` leaves it: the copy's stat and the SHA-256 of what was written."""
    path.mkdir(parents=True)
    (path / "big.bin").write_bytes(CONTENT)
    (path / "small.py").write_text("x = 1\n")
    return {rel: ((path / rel).lstat(), hashlib.sha256((path / rel).read_bytes()).hexdigest())
            for rel in ("big.bin", "small.py")}


def _fsck(git_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", f"--git-dir={git_dir}", "fsck", "--strict", "--full", "--no-dangling"],
                          env=git_env(), capture_output=True, text=True, check=False)


def _loose_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the large files ``scan`` reads and writes itself (a cache miss)."""
    calls: list[int] = []
    real = _gitpack._store_loose

    def counting(fd: int, size: int, *args: object) -> bytes | None:
        calls.append(size)
        return real(fd, size, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_gitpack, "_store_loose", counting)
    return calls


def _run(tmp_path: Path, name: str) -> tuple[Path, Baseline, dict[str, tuple[os.stat_result, str]]]:
    workspace = tmp_path / name / "workspace"
    copied = _workspace(workspace)
    baseline = init_baseline(workspace, tmp_path / name / "baseline.git", copied=copied, cache_dir=tmp_path / "cache")
    return workspace, baseline, copied


def _object_path(baseline: Baseline) -> str:
    (name,) = baseline.git_objects
    return name


def test_a_second_run_of_the_same_content_copies_the_cached_object(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _loose_writes(monkeypatch)
    _, first, _ = _run(tmp_path, "one")
    assert reads == [BIG]
    entry = tmp_path / "cache" / DIR_NAME / f"{CONTENT_SHA}.obj"
    assert entry.is_file()
    workspace, second, copied = _run(tmp_path, "two")
    assert reads == [BIG], "the second run read the big file again"
    known = vouched_digests(second, copied)
    assert known is not None  # the copy the agent gets is vouched for by the stat taken when it was written
    assert known(b"workspace/.git/" + _object_path(second).encode(),
                 (workspace / ".git" / _object_path(second)).lstat()) == second.git_objects[_object_path(second)][1]
    assert second.commit == first.commit
    for git_dir in (tmp_path / "two" / "baseline.git", workspace / ".git"):
        assert _fsck(git_dir).returncode == 0, _fsck(git_dir).stderr
    copy = workspace / ".git" / _object_path(second)
    assert copy.lstat().st_ino != entry.lstat().st_ino and entry.lstat().st_nlink == 1  # a copy, never a link
    assert second.git_objects[_object_path(second)][1] == hashlib.sha256(copy.read_bytes()).hexdigest()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=workspace, env=git_env(), capture_output=True,
                            text=True, check=True)
    assert status.stdout == ""


def _poison_object(path: Path) -> None:
    """Change bytes in the middle (the stored-block header and size stay right), restoring size and mtime."""
    before = path.lstat()
    path.chmod(0o644)
    with open(path, "r+b") as handle:
        handle.seek(BIG // 2)
        middle = handle.read(16)
        handle.seek(BIG // 2)
        handle.write(bytes(b ^ 0xFF for b in middle))
    path.chmod(stat.S_IMODE(before.st_mode))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _garbage_record(path: Path) -> None:
    path.write_text("{not json")


def _record_of_other_size(path: Path) -> None:
    data = json.loads(path.read_text())
    data["size"] += 1
    path.write_text(json.dumps(data))


def _object_swapped(path: Path) -> None:
    """Another file with the same bytes but one, put in its place: another inode."""
    data = bytearray(path.read_bytes())
    data[BIG // 2] ^= 0xFF
    scratch = path.with_name("swap.tmp")
    scratch.write_bytes(bytes(data))
    os.replace(scratch, path)


@pytest.mark.parametrize("poison", [_poison_object, _garbage_record, _record_of_other_size, _object_swapped])
def test_a_tampered_or_corrupt_entry_is_not_trusted_and_is_rebuilt(poison: object, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _loose_writes(monkeypatch)
    _, first, _ = _run(tmp_path, "one")
    cache = tmp_path / "cache" / DIR_NAME
    target = cache / (f"{CONTENT_SHA}.json" if "record" in poison.__name__ else f"{CONTENT_SHA}.obj")  # type: ignore[attr-defined]
    poison(target)  # type: ignore[operator]
    workspace, second, _ = _run(tmp_path, "two")
    assert reads == [BIG, BIG], "a tampered entry was used"
    assert second.commit == first.commit
    assert _fsck(tmp_path / "two" / "baseline.git").returncode == 0
    copy = workspace / ".git" / _object_path(second)
    assert second.git_objects[_object_path(second)][1] == hashlib.sha256(copy.read_bytes()).hexdigest()
    _, third, _ = _run(tmp_path, "three")  # the entry was replaced by a good one
    assert reads == [BIG, BIG]
    assert _fsck(tmp_path / "three" / "baseline.git").returncode == 0 and third.commit == first.commit


def test_the_agent_writing_its_object_copy_changes_neither_the_cache_nor_the_report(
        tmp_path: Path) -> None:
    workspace, baseline, copied = _run(tmp_path, "one")
    known = vouched_digests(baseline, copied)
    assert known is not None
    name = _object_path(baseline)
    copy = workspace / ".git" / name
    recorded = baseline.git_objects[name][1]
    assert known(b"workspace/.git/" + name.encode(), copy.lstat()) == recorded
    run_dir = tmp_path / "one"
    assert collect_artifacts(run_dir, known=known).artifacts == collect_artifacts(run_dir).artifacts
    _poison_object(copy)  # the agent owns workspace/.git: same size, mtime restored
    assert known(b"workspace/.git/" + name.encode(), copy.lstat()) is None
    assert collect_artifacts(run_dir, known=known).artifacts == collect_artifacts(run_dir).artifacts
    entry = tmp_path / "cache" / DIR_NAME / f"{CONTENT_SHA}.obj"
    record = json.loads((tmp_path / "cache" / DIR_NAME / f"{CONTENT_SHA}.json").read_text())
    assert hashlib.sha256(entry.read_bytes()).hexdigest() == record["object_sha256"] == recorded
    _, again, _ = _run(tmp_path, "two")
    assert _fsck(tmp_path / "two" / "baseline.git").returncode == 0 and again.commit == baseline.commit


def test_without_a_vouched_content_digest_nothing_is_cached(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    copied = _workspace(workspace)
    (workspace / "big.bin").write_bytes(CONTENT[::-1])  # changed after the copy: its stat no longer vouches
    init_baseline(workspace, tmp_path / "baseline.git", copied=copied, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / DIR_NAME).exists() or not os.listdir(tmp_path / "cache" / DIR_NAME)


def test_files_written_just_before_the_baseline_are_trusted_at_once(tmp_path: Path) -> None:
    """The marker is rewritten until its ctime passes the newest recorded one (no racy entries left)."""
    workspace = tmp_path / "workspace"
    copied = _workspace(workspace)
    baseline = init_baseline(workspace, tmp_path / "baseline.git", copied=copied)
    assert baseline.snapshot is not None
    for rel in ("big.bin", "small.py"):
        assert baseline.snapshot.trusted(rel, (workspace / rel).lstat())


def test_the_cache_is_bounded_oldest_entry_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cto_harness.runner import _blobcache

    monkeypatch.setattr(_blobcache, "MAX_CACHE_BYTES", BIG * 2)  # room for one object, not two
    _run(tmp_path, "one")
    cache = tmp_path / "cache" / DIR_NAME
    first = {p.name for p in cache.iterdir()}
    assert first == {f"{CONTENT_SHA}.json", f"{CONTENT_SHA}.obj"}
    other = tmp_path / "other" / "workspace"
    other.mkdir(parents=True)
    (other / "big.bin").write_bytes(CONTENT[::-1])
    copied = {"big.bin": ((other / "big.bin").lstat(), hashlib.sha256(CONTENT[::-1]).hexdigest())}
    stale = cache / f"{'0' * 64}.obj.1.dead.tmp"  # left by a harness that died while adding an entry
    stale.write_bytes(b"x")
    os.utime(stale, ns=(0, 0))
    init_baseline(other, tmp_path / "other" / "baseline.git", copied=copied, cache_dir=tmp_path / "cache")
    sha = copied["big.bin"][1]
    assert {p.name for p in cache.iterdir()} == {f"{sha}.json", f"{sha}.obj"}


def _fixture_with_big_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fixture:
    from cto_harness.fixtures import _fixture, load_fixture, resolve_fixture

    monkeypatch.setattr(_fixture, "VOUCH_MARGIN_NS", 0)  # the files were written just now
    root = tmp_path / "fx"
    shutil.copytree(resolve_fixture("r1-string-slugify"), root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "repo" / "big.bin").write_bytes(CONTENT)
    return load_fixture(root)


def _populate(fixture: Fixture, tmp_path: Path, name: str) -> tuple[Path, Path, Populated]:
    run_dir = tmp_path / name
    run_dir.mkdir()
    ready = populate_workspace(fixture, run_dir / "workspace", run_dir / "baseline.git", tmp_path / "cache")
    return run_dir / "workspace", run_dir / "baseline.git", ready


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), capture_output=True, check=False)


def test_a_populated_workspace_borrows_large_objects_and_the_store_gets_the_cached_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _loose_writes(monkeypatch)
    fixture = _fixture_with_big_file(tmp_path, monkeypatch)
    _, _, first = _populate(fixture, tmp_path, "one")
    assert reads == [BIG]
    workspace, baseline_git, second = _populate(fixture, tmp_path, "two")
    assert reads == [BIG], "the second run read the big file again"
    assert second.baseline.commit == first.baseline.commit
    assert not (baseline_git / PREFETCH_DIR).exists()
    big_oid = _git(workspace, "rev-parse", "HEAD:big.bin").stdout.decode().strip()
    name = f"objects/{big_oid[:2]}/{big_oid[2:]}"
    assert (baseline_git / name).is_file() and not (workspace / ".git" / name).exists()  # borrowed, not copied
    assert (workspace / ".git" / ALTERNATES).read_text() == "../../../baseline.git/objects\n"
    assert _git(workspace, "cat-file", "blob", "HEAD:big.bin").stdout == CONTENT
    assert _git(workspace, "status", "--porcelain").stdout == b""
    assert second.baseline.git_objects == {}
    for git_dir in (baseline_git, workspace / ".git"):
        assert _fsck(git_dir).returncode == 0, _fsck(git_dir).stderr
    assert compute_changes(workspace, baseline_git, second.baseline).files == []


def test_a_prefetched_object_changed_before_it_is_used_is_not_used(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The prefetch dir is the harness's; still, a copy whose stat moved since it was written is dropped."""
    from cto_harness.runner import _workspace

    fixture = _fixture_with_big_file(tmp_path, monkeypatch)
    _populate(fixture, tmp_path, "one")
    caches: list[BlobCache] = []
    real_prefetch, real_copy = BlobCache.prefetch, _workspace.copy_repo

    def prefetch(self: BlobCache, *args: object) -> None:
        caches.append(self)
        real_prefetch(self, *args)  # type: ignore[arg-type]

    def copy_then_poison(*args: object, **kwargs: object) -> list[str]:
        out = real_copy(*args, **kwargs)  # type: ignore[arg-type]
        fetching = caches[0]._prefetcher
        assert fetching is not None
        fetching.join()
        _poison_object(tmp_path / "two" / "baseline.git" / PREFETCH_DIR / f"{CONTENT_SHA}.obj")
        return out

    monkeypatch.setattr(BlobCache, "prefetch", prefetch)
    monkeypatch.setattr(_workspace, "copy_repo", copy_then_poison)
    workspace, baseline_git, _ = _populate(fixture, tmp_path, "two")
    assert _fsck(baseline_git).returncode == 0, _fsck(baseline_git).stderr
    assert _git(workspace, "cat-file", "blob", "HEAD:big.bin").stdout == CONTENT
