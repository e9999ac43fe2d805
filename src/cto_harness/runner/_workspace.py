"""The run's workspace: a git-initialised copy of the fixture, and diffs against it.

Two repositories see the workspace. ``workspace/.git`` belongs to the agent (Case
commits there). ``<run>/baseline.git`` belongs to the harness: the patch is computed
against its baseline commit, so an agent that rewrites or deletes its own ``.git`` still
cannot hide or fake a change.

Cost (issue 12). The fixture is hashed once, in-process (``_gitpack``): blobs, trees and
the commit are written by the harness itself (hashlib's SHA-1 on the CPU's SHA extensions,
zlib stored blocks, one pack for small files, a loose object per large one), with the same
ids ``git add`` + ``write-tree`` + ``commit-tree`` give, and no git process starts. A tree
holding something git must interpret (``.gitattributes``, a nested ``.git``, a special
file) goes through ``git add`` instead: compression off, no auto-maintenance, no fsync.
The agent's repository gets a byte copy of the small objects and the commit, and an index
with the copy's stat data; a run's ``workspace/.git`` (``populate_workspace``) reaches each
large loose blob in ``baseline.git/objects`` through a relative alternates file, and the
provider sandbox shows that one directory read-only (never a hardlink: the agent could chmod
a shared inode and rewrite the harness's baseline in place; a link across the bind fails).
A large file whose content digest the fixture copy vouches for is not read at all when an
earlier run kept its loose object (``_blobcache``, under the harness home): the object is
copied in (while the fixture is copied). Copies go through ``copy_file_range``.

The change set hashes only what may have changed. At baseline time the harness records
every workspace entry's ``lstat`` (inode, device, mode, size, mtime and ctime in
nanoseconds) and then the ctime of a fresh marker file. An entry is trusted unchanged
only if its stat is identical now *and* its recorded ctime is older than the marker.
ctime cannot be set from userspace: any write, chmod, rename or ``utime`` moves it to
"now", which is at or after the marker, so an edit whose size and mtime were restored
still differs. Entries with a ctime at or after the marker (written in the same clock
tick as the snapshot) are never trusted: that is git's racy-entry rule. Everything not
trusted is handed to ``git add`` by exact path; the rest keeps its baseline blob.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cto_harness.fixtures import Fixture, StatKey, copy_fd, copy_repo, stat_key, vouched_content
from cto_harness.proc import Captured, git_config_args, run_captured
from cto_harness.proc import git_env as proc_git_env
from cto_harness.runner._blobcache import DIR_NAME as BLOB_CACHE_DIR
from cto_harness.runner._blobcache import BlobCache
from cto_harness.runner._gitpack import index_bytes, init_repo, scan, write_store

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "cto-harness",
    "GIT_AUTHOR_EMAIL": "harness@cto-harness.invalid",
    "GIT_COMMITTER_NAME": "cto-harness",
    "GIT_COMMITTER_EMAIL": "harness@cto-harness.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
JUNK_DIRS = frozenset({"__pycache__", ".pytest_cache"})
JUNK_EXCLUDES = tuple(f":(exclude,glob)**/{name}/**" for name in sorted(JUNK_DIRS))
"""Interpreter caches a test run leaves behind are never part of the agent's change."""
GIT_TIMEOUT_S = 120.0
FAST_CONFIG = (
    "core.compression=0", "core.looseCompression=0", "pack.compression=0",
    "gc.auto=0", "maintenance.auto=false", "core.fsync=none",
)
"""Speed over size for a store that lives as long as one run."""
HARNESS_INDEX = "harness.index"
"""The index ``git add`` wrote for the baseline (in ``baseline.git``; copied to the workspace)."""
STAT_MARKER = "stat-marker"
BASELINE_MESSAGE = "cto-harness baseline"
BASELINE_TIME = 946684800
"""``GIT_AUTHOR_DATE`` / ``GIT_COMMITTER_DATE`` of ``GIT_IDENTITY`` in seconds."""


class WorkspaceError(RuntimeError):
    """A git step on the workspace failed (a harness-side failure)."""


_REPO_CONFIG_ALLOWED = frozenset({
    "[core]", "repositoryformatversion = 0", "filemode = true", "filemode = false", "bare = true",
    "bare = false", "logallrefupdates = true",
})
"""Every line ``git init`` writes; anything else in a repo config the harness uses is refused."""


def git_env() -> dict[str, str]:
    """The harness-side git environment (``proc.git_env``) with the baseline's fixed identity."""
    return {**proc_git_env(), **GIT_IDENTITY}


def check_repo_config(git_dir: Path) -> None:
    """Refuse a repository whose configuration could make git run a command.

    Harness-side git may meet a repo the agent could write (``baseline.git`` when the
    operator turned the sandbox off): its ``config`` may only hold what ``git init``
    wrote (no fsmonitor, filter, diff driver, include, hooksPath, pager...), and no
    ``commondir`` may redirect git to another config.

    Raises:
        WorkspaceError: the repository was tampered with.
    """
    if (git_dir / "commondir").exists() or (git_dir / "commondir").is_symlink():
        raise WorkspaceError(f"refusing to run git: {git_dir}/commondir was added (the agent's git "
                             "configuration never runs)")
    config = git_dir / "config"
    if not config.exists() and not config.is_symlink():
        return
    try:
        if config.is_symlink():
            raise OSError("it is a symlink")
        lines = config.read_bytes()[:65536].decode("utf-8", "replace").splitlines()
    except OSError as exc:
        raise WorkspaceError(f"refusing to run git: {config} unreadable ({exc})") from exc
    extra = [line.strip() for line in lines
             if line.strip() and not line.strip().startswith(("#", ";")) and line.strip() not in _REPO_CONFIG_ALLOWED]
    if extra:
        raise WorkspaceError(f"refusing to run git: {config} was changed ({extra[0][:80]!r}); "
                             "the agent's git configuration never runs")


def git(args: Sequence[str], *, cwd: Path, git_dir: Path | None = None, work_tree: Path | None = None,
        index_file: Path | None = None, config: Sequence[str] = ()) -> Captured:
    env = git_env()
    if index_file is not None:
        env["GIT_INDEX_FILE"] = str(index_file)
    prefix = ["git", "--no-pager"]
    if git_dir is not None:
        prefix.append(f"--git-dir={git_dir}")
    else:
        env["GIT_CEILING_DIRECTORIES"] = str(cwd.parent)  # never a repo above the workspace
    if work_tree is not None:
        prefix.append(f"--work-tree={work_tree}")
    check_repo_config(git_dir if git_dir is not None else cwd / ".git")
    argv = [*prefix, *git_config_args(), *(arg for item in config for arg in ("-c", item)), *args]
    completed = run_captured(argv, cwd=cwd, env=env, timeout_s=GIT_TIMEOUT_S)
    if not completed.ok:
        err = completed.text("stderr").strip().splitlines()
        detail = "timed out" if completed.timed_out else (err[-1] if err else completed.returncode)
        raise WorkspaceError(f"git {' '.join(args[:2])} failed: {detail}")
    return completed


@dataclass(frozen=True)
class StatSnapshot:
    """The workspace as it was when the baseline was taken, for the stat short-cut."""

    entries: dict[str, StatKey]
    """Every file and symlink (posix path relative to the workspace) and its lstat."""
    marker_ctime_ns: int
    """ctime of a file written after ``entries`` were read: trust only older ctimes."""

    def trusted(self, rel: str, st: os.stat_result) -> bool:
        recorded = self.entries.get(rel)
        return recorded is not None and recorded[5] < self.marker_ctime_ns and recorded == stat_key(st)


@dataclass(frozen=True)
class Baseline:
    commit: str
    """The harness's baseline commit in ``baseline.git``."""
    snapshot: StatSnapshot | None = field(default=None, compare=False)
    """None: hash every file when computing the change set."""
    git_objects: dict[str, tuple[StatKey, str]] = field(default_factory=dict, compare=False)
    """Loose objects the harness copied into ``workspace/.git`` (path below it) whose SHA-256 it knows,
    with the copy's lstat; trusted under the snapshot's marker rule (see ``vouched_digests``)."""
    tree_index: bytes | None = field(default=None, compare=False, repr=False)
    """The baseline tree as a stat-less index (what ``git read-tree`` writes), kept in memory
    for the change set; None: ``read-tree`` it."""


def init_baseline(workspace: Path, baseline_git: Path, *,
                  copied: Mapping[str, tuple[os.stat_result, str]] | None = None,
                  cache_dir: Path | None = None) -> Baseline:
    """Commit the fixture copy once in ``baseline_git`` and give the workspace the same repository.

    ``copied`` (from ``copy_repo(digests=)``) and ``cache_dir`` (``<harness home>/cache``)
    let a large file's loose object come from an earlier run of the same content
    (``_blobcache``) instead of being hashed and written again.
    """
    workspace, baseline_git = workspace.absolute(), baseline_git.absolute()
    if baseline_git.exists() or (workspace / ".git").exists():
        return _git_baseline(workspace, baseline_git)
    init_repo(baseline_git, bare=True)
    cache = BlobCache(cache_dir / BLOB_CACHE_DIR, copied) if cache_dir is not None and copied else None
    return _baseline(workspace, baseline_git, cache)


@dataclass(frozen=True)
class Populated:
    """What ``populate_workspace`` made."""

    files: list[str]
    """The fixture files copied (``copy_repo``)."""
    copied: dict[str, tuple[os.stat_result, str]]
    """``copy_repo(digests=)``: the copies whose content digest is vouched for."""
    baseline: Baseline
    copy_s: float
    baseline_s: float


PREFETCH_DIR = "prefetch"
"""In ``baseline.git`` while the workspace is copied: cached objects on their way into the store."""
ALTERNATES = "objects/info/alternates"


def populate_workspace(fixture: Fixture, workspace: Path, baseline_git: Path, cache_dir: Path | None) -> Populated:
    """Copy the fixture into ``workspace`` and take the baseline; the agent's repository borrows large objects.

    ``workspace/.git`` holds a copy of the small objects and the commit, and reaches each
    large loose blob (above ``KEEP_BYTES``) in ``baseline.git/objects`` through a relative
    ``objects/info/alternates``: the provider sandbox shows that directory read-only
    (``provider_policy``), so the agent can read those objects but not change them, and a
    50 MB file is written twice (workspace, store), not three times. With the blob cache
    (``cache_dir``), a large file the fixture digest vouches for is not read at all: its
    cached object is copied into the store while the fixture is copied (two cores).

    Raises:
        FixtureError: from ``copy_repo`` (nothing of the baseline is left behind).
    """
    workspace, baseline_git = workspace.absolute(), baseline_git.absolute()
    t0 = time.monotonic()
    vouched = vouched_content(fixture)
    copied: dict[str, tuple[os.stat_result, str]] = {}
    cache: BlobCache | None = None
    init_repo(baseline_git, bare=True)
    try:
        if cache_dir is not None and vouched:
            cache = BlobCache(cache_dir / BLOB_CACHE_DIR, copied)
            cache.prefetch(vouched, baseline_git / PREFETCH_DIR)
        files = copy_repo(fixture, workspace, digests=copied)
    except BaseException:
        if cache is not None:
            cache.discard_prefetched()
        shutil.rmtree(baseline_git, ignore_errors=True)
        raise
    t1 = time.monotonic()
    try:
        baseline = _baseline(workspace, baseline_git, cache if copied else None, borrow=True)
    finally:
        if cache is not None:
            cache.discard_prefetched()
    return Populated(files=files, copied=copied, baseline=baseline, copy_s=t1 - t0, baseline_s=time.monotonic() - t1)


def _baseline(workspace: Path, baseline_git: Path, cache: BlobCache | None, *, borrow: bool = False) -> Baseline:
    """The in-process baseline into the fresh ``baseline_git`` (the git one when ``scan`` declines).

    ``borrow``: large loose blobs stay in ``baseline_git`` only (``workspace/.git`` reaches
    them through its alternates); else ``workspace/.git`` gets a copy of every object.
    """
    dot_git = workspace / ".git"
    init_repo(dot_git, bare=False)
    if cache is not None and not borrow:
        cache.mirror = dot_git / "objects"
    files = scan(workspace, baseline_git / "objects", cache)
    if files is None:
        if cache is not None:
            cache.discard_prefetched()
        shutil.rmtree(baseline_git)
        shutil.rmtree(dot_git)
        return _git_baseline(workspace, baseline_git)
    commit = write_store(baseline_git / "objects", files, GIT_IDENTITY, BASELINE_MESSAGE, BASELINE_TIME)
    _write_ref(baseline_git, commit)
    placed: Collection[str] = cache.mirrored if cache is not None else {}
    if borrow:
        placed = {f"objects/{e.oid[:1].hex()}/{e.oid[1:].hex()}" for e in files if e.data is None}
        if placed:
            target = os.path.relpath(baseline_git / "objects", dot_git / "objects")
            (dot_git / ALTERNATES).write_text(target + "\n")
    copies = _copy_objects(baseline_git, dot_git, skip=placed)
    if cache is not None and not borrow:
        copies.update(cache.mirrored)
    _write_ref(dot_git, commit)
    work_index, tree_index = index_bytes(files)
    (dot_git / "index").write_bytes(work_index)
    if cache is not None:
        cache.keep(files, baseline_git / "objects")
    entries = {entry.rel: stat_key(entry.st) for entry in files}
    git_objects: dict[str, tuple[StatKey, str]] = {}
    for entry in files:
        name = f"objects/{entry.oid[:1].hex()}/{entry.oid[1:].hex()}"
        if entry.object_sha256 is not None and name in copies:
            git_objects[name] = (stat_key(copies[name]), entry.object_sha256)
    newest = max((key[5] for key in (*entries.values(), *(k for k, _ in git_objects.values()))), default=0)
    return Baseline(commit=commit, snapshot=_seal(entries, workspace, baseline_git / STAT_MARKER, newest),
                    git_objects=git_objects, tree_index=tree_index)


def _git_baseline(workspace: Path, baseline_git: Path) -> Baseline:
    """The same baseline through ``git add`` (a tree ``_gitpack`` leaves to git)."""
    git(["init", "-q", "--bare", "-b", "main", str(baseline_git)], cwd=workspace)
    git(["init", "-q", "-b", "main"], cwd=workspace, config=FAST_CONFIG[3:5])
    index = baseline_git / HARNESS_INDEX

    def run(*args: str, config: Sequence[str] = FAST_CONFIG) -> str:
        completed = git(args, cwd=workspace, git_dir=baseline_git, work_tree=workspace, index_file=index,
                        config=config)
        return completed.stdout.decode().strip()

    # bigFileThreshold=1 streams every blob of this add into one pack (bulk check-in)
    # instead of one loose file per blob; it is set for this command only (it also marks
    # files as binary for diff).
    run("add", "-A", "-f", config=(*FAST_CONFIG, "core.bigFileThreshold=1"))
    tree = run("write-tree")
    commit = run("commit-tree", "-m", BASELINE_MESSAGE, tree)
    _write_ref(baseline_git, commit)
    _clone_into_workspace(workspace, baseline_git, commit)
    return Baseline(commit=commit, snapshot=take_snapshot(workspace, baseline_git / STAT_MARKER))


def _write_ref(git_dir: Path, commit: str) -> None:
    ref = git_dir / "refs" / "heads" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit + "\n")


def _clone_into_workspace(workspace: Path, baseline_git: Path, commit: str) -> None:
    """``workspace/.git``: a plain repository holding a copy of the baseline's objects and index."""
    dot_git = workspace / ".git"
    _copy_objects(baseline_git, dot_git)
    _write_ref(dot_git, commit)
    # copy2 keeps the index's mtime, so git's racy-entry check in the workspace stays sound.
    shutil.copy2(baseline_git / HARNESS_INDEX, dot_git / "index")


def _copy_objects(baseline_git: Path, dot_git: Path, skip: Collection[str] = ()) -> dict[str, os.stat_result]:
    """A read-only byte copy of every object of ``baseline_git`` (never a link: see the module doc).

    Returns each copy's stat after writing, by its posix path below ``dot_git``; paths in
    ``skip`` are already there (copied from the blob cache).
    """
    source = baseline_git / "objects"
    copies: dict[str, os.stat_result] = {}
    for dirpath, _, filenames in os.walk(source):
        rel = Path(dirpath).relative_to(source)
        if rel.parts[:1] == ("info",):
            continue
        target_dir = dot_git / "objects" / rel
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            if (Path("objects") / rel / name).as_posix() in skip:
                continue
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                out = os.open(target_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o444)
                try:
                    size = os.fstat(fd).st_size
                    if copy_fd(fd, out, size) != size:
                        raise WorkspaceError(f"{dirpath}/{name}: changed while it was copied")
                    copies[(Path("objects") / rel / name).as_posix()] = os.fstat(out)
                finally:
                    os.close(out)
            finally:
                os.close(fd)
    return copies


def take_snapshot(workspace: Path, marker: Path) -> StatSnapshot | None:
    """Record the workspace's lstat data, then the marker's ctime (see the module doc)."""
    entries: dict[str, StatKey] = {}
    for rel, st in _walk(workspace, ()):
        if st is not None and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            entries[rel] = stat_key(st)
    return _seal(entries, workspace, marker)


MARKER_WAIT_S = 0.05
"""How long ``_seal`` waits for the filesystem clock to pass the newest recorded ctime."""


def _seal(entries: dict[str, StatKey], workspace: Path, marker: Path, newest_ns: int | None = None
          ) -> StatSnapshot | None:
    """Write the marker after ``entries`` were read: only ctimes older than its own are trusted.

    Files written in the same clock tick as the marker would not be trusted (racy), so the
    marker is written again until its ctime passes ``newest_ns`` (default: the newest in
    ``entries``), for at most ``MARKER_WAIT_S``. A rewrite after an ``fstat`` gets a
    fine-grained ctime on kernels with multigrain timestamps; elsewhere it waits for the tick.
    """
    newest = max((key[5] for key in entries.values()), default=0) if newest_ns is None else newest_ns
    deadline = time.monotonic() + MARKER_WAIT_S
    with open(marker, "wb", buffering=0) as handle:
        handle.write(b"entries with a ctime before this file's may be trusted by their stat\n")
        marker_st = os.fstat(handle.fileno())
        while marker_st.st_ctime_ns <= newest and time.monotonic() < deadline:
            handle.write(b".")
            marker_st = os.fstat(handle.fileno())
            if marker_st.st_ctime_ns <= newest:
                time.sleep(0.001)
    if marker_st.st_dev != os.stat(workspace).st_dev:
        return None  # another filesystem (and maybe another clock): hash everything
    return StatSnapshot(entries=entries, marker_ctime_ns=marker_st.st_ctime_ns)


def _excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    return any(rel == d or rel.startswith(d + "/") for d in exclude)


def _walk(workspace: Path, exclude: tuple[str, ...],
          dirs: set[str] | None = None) -> Iterable[tuple[str, os.stat_result | None]]:
    """(path, lstat) of every entry git would look at; ``None`` marks a directory to hand to git whole.

    Skips ``.git`` at the top, interpreter caches and ``exclude``. A directory holding a
    ``.git`` (a nested repository) or one we cannot list is yielded as ``None`` so that
    ``git add`` treats it exactly as it would in a full scan.
    """
    stack = [""]
    while stack:
        prefix = stack.pop()
        directory = os.path.join(workspace, prefix) if prefix else str(workspace)
        try:
            with os.scandir(directory) as it:
                children = list(it)
        except OSError:
            yield prefix.rstrip("/") or ".", None
            continue
        if prefix and any(child.name == ".git" for child in children):
            yield prefix.rstrip("/"), None
            continue
        for child in children:
            name = child.name
            if (not prefix and name == ".git") or (name in JUNK_DIRS and child.is_dir(follow_symlinks=False)):
                continue
            rel = prefix + name
            if _excluded(rel, exclude):
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except OSError:
                yield rel, None
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel + "/")
                if dirs is not None:
                    dirs.add(rel)
            else:
                yield rel, st


def vouched_digests(baseline: Baseline, copied: Mapping[str, tuple[os.stat_result, str]]
                    ) -> Callable[[bytes, os.stat_result], str | None] | None:
    """SHA-256 of run dir files by their lstat, for copies the harness made and the agent left untouched.

    Paths are relative to the run dir: ``workspace/<file>`` and ``workspace/.git/objects/<id>``.
    ``copied`` comes from ``copy_repo(..., digests=)`` (the copy's stat right after writing
    and the fixture digest's hash of the bytes written). A file counts only while the stat
    snapshot trusts it and the snapshot recorded exactly the copy's stat. A loose object in
    ``workspace/.git`` counts under the same rule: the stat recorded after the harness wrote
    it, older than the marker, and unchanged.
    """
    snapshot = baseline.snapshot
    if snapshot is None or not (copied or baseline.git_objects):
        return None
    table = {os.fsencode(rel): sha for rel, (st, sha) in copied.items()
             if snapshot.entries.get(rel) == stat_key(st)}
    objects = {os.fsencode(rel): value for rel, value in baseline.git_objects.items()}
    marker = snapshot.marker_ctime_ns

    def known(path: bytes, st: os.stat_result) -> str | None:
        if path.startswith(b"workspace/.git/"):
            recorded = objects.get(path[len(b"workspace/.git/"):])
            if recorded is not None and recorded[0][5] < marker and recorded[0] == stat_key(st):
                return recorded[1]
            return None
        if not path.startswith(b"workspace/"):
            return None
        rel = path[len(b"workspace/"):]
        sha = table.get(rel)
        return sha if sha is not None and snapshot.trusted(os.fsdecode(rel), st) else None

    return known


@dataclass(frozen=True)
class Changes:
    files: list[str]
    patch: bytes


def changed_candidates(workspace: Path, snapshot: StatSnapshot, exclude: Sequence[str] = ()) -> list[str]:
    """Paths that may differ from the baseline: everything the stat snapshot cannot vouch for."""
    exclude_t = tuple(d.strip("/") for d in exclude if d.strip("/"))
    candidates: list[str] = []
    whole_dirs: list[str] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for rel, st in _walk(workspace, exclude_t, dirs):
        seen.add(rel)
        if st is None:
            whole_dirs.append(rel)
            candidates.append(rel)
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            if not snapshot.trusted(rel, st):
                candidates.append(rel)
        elif rel in snapshot.entries:
            candidates.append(rel)  # a baseline file turned into a fifo/socket/device: git decides
    if "." in whole_dirs:
        return ["."]
    for rel in snapshot.entries:
        if rel in seen or _excluded(rel, exclude_t) or any(part in JUNK_DIRS for part in rel.split("/")[:-1]):
            continue
        if any(rel.startswith(d + "/") for d in whole_dirs):
            continue
        # Deleted. If a directory on its path is gone or became a file or symlink, name that
        # directory instead: git refuses a pathspec beyond a symlink.
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            ancestor = "/".join(parts[:depth])
            if ancestor not in dirs:
                rel = ancestor
                break
        candidates.append(rel)
    return sorted(set(candidates))


def compute_changes(workspace: Path, baseline_git: Path, baseline: Baseline | str,
                    exclude_dirs: Sequence[str] = ()) -> Changes:
    """Everything the agent changed against the baseline: edits, new files, its own commits."""
    commit = baseline if isinstance(baseline, str) else baseline.commit
    snapshot = None if isinstance(baseline, str) else baseline.snapshot
    tree_index = None if isinstance(baseline, str) else baseline.tree_index
    excludes = [*JUNK_EXCLUDES, *(f":(exclude){d}" for d in exclude_dirs)]
    if snapshot is None:
        pathspecs = ["."]
    else:
        pathspecs = [f":(literal){rel}" for rel in changed_candidates(workspace, snapshot, exclude_dirs)]
        if not pathspecs:
            return Changes(files=[], patch=b"")
    with tempfile.TemporaryDirectory(prefix="harness-diff-", dir=baseline_git) as scratch:
        index = Path(scratch) / "index"
        spec_file = Path(scratch) / "pathspecs"
        spec_file.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in [*pathspecs, *excludes]))

        def run(*args: str) -> bytes:
            return git(args, cwd=workspace, git_dir=baseline_git, work_tree=workspace, index_file=index,
                       config=FAST_CONFIG).stdout

        if tree_index is not None:
            index.write_bytes(tree_index)  # from memory: nothing the agent could reach
        else:
            run("read-tree", commit)
        run("add", "-A", "-f", f"--pathspec-from-file={spec_file}", "--pathspec-file-nul")
        out = run("diff", "--cached", "--no-ext-diff", "--no-textconv", "--binary", "--no-renames",
                  "--full-index", "-z", "--patch-with-raw", commit)
    names, patch = split_patch_with_raw(out)
    files = sorted(name.decode("utf-8", "surrogateescape") for name in names)
    return Changes(files=files, patch=patch)


def split_patch_with_raw(out: bytes) -> tuple[list[bytes], bytes]:
    """The paths and the patch of one ``git diff -z --patch-with-raw`` (no renames, so one path per record).

    The raw part is ``:<modes> <ids> <status>\\0<path>\\0`` per changed path, then one NUL,
    then the patch exactly as ``git diff`` without ``-z --patch-with-raw`` prints it.

    Raises:
        WorkspaceError: the output is not in that shape.
    """
    names: list[bytes] = []
    pos = 0
    try:
        while out[pos:pos + 1] == b":":
            meta_end = out.index(b"\0", pos)
            path_end = out.index(b"\0", meta_end + 1)
            names.append(out[meta_end + 1:path_end])
            pos = path_end + 1
    except ValueError:
        raise WorkspaceError("git diff: truncated raw record") from None
    if not names:
        if out:
            raise WorkspaceError("git diff: a patch without raw records")
        return [], b""
    if out[pos:pos + 1] != b"\0":
        raise WorkspaceError("git diff: no separator between the raw records and the patch")
    return names, out[pos + 1:]
