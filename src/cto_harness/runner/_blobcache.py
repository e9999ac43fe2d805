"""Large baseline blobs kept between runs, by the SHA-256 of their content.

A fixture's big file costs a run, besides copying it, a SHA-1 and an Adler-32 of every
byte (the loose object's id and zlib trailer) and, in the report, a SHA-256 of the object
copied into ``workspace/.git``. Yet the content's SHA-256 is known without reading it: the
fixture digest's, for a workspace copy the stat vouches for (``copy_repo(digests=)``). So
the loose object file, its id and its own SHA-256 are kept under
``<harness home>/cache/baseline-blobs-v<FORMAT>/`` and the next run of the same content
gets a byte copy (``copy_file_range``; never a link: a shared inode would let whoever can
write one run's copy write into every later run's baseline), made while the fixture is
copied into the workspace (``prefetch``).

Trust. The cache lives in the harness home, beside the signing key, hidden from every
sandbox; it is only ever written from a loose object the harness itself wrote and hashed
before any agent started. An entry is used only if its record parses and names exactly
this content and size, the object file's lstat (inode, device, mode, size, mtime and
ctime in ns) is the one recorded right after the harness wrote it (ctime cannot be set
from userspace: a write, chmod, rename or ``utime`` moves it, so an object changed since
is never used), the stat holds from before to after the copy, and the copy starts with
the zlib stored-block header of a blob of this size. Anything else is a miss: the object
is rebuilt from the workspace file and the entry replaced. A wrong object that got past
all this would still only fail ``verify``: ``git fsck`` of ``baseline.git`` checks every
object's id, and ``verify`` re-hashes the agent's ``workspace/.git``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from cto_harness.fixtures import StatKey, copy_fd, stat_key
from cto_harness.runner._gitpack import KEEP_BYTES, TreeFile, loose_prefix, settle

FORMAT = 1
DIR_NAME = f"baseline-blobs-v{FORMAT}"
MAX_CACHE_BYTES = 1 << 30
"""Objects beyond this total are evicted, oldest record first."""
STALE_SCRATCH_NS = 3600 * 10**9
"""A scratch file this old was left by a harness that died while adding an entry."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_OID = re.compile(r"[0-9a-f]{40}")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class BlobCache:
    """The ``scan`` side (``_gitpack.LooseSource``) of the cache, for one run's workspace."""

    def __init__(self, directory: Path, copied: Mapping[str, tuple[os.stat_result, str]],
                 mirror: Path | None = None) -> None:
        """``copied``: workspace file -> (the copy's stat right after writing, SHA-256 of what was written).

        ``mirror``: a second objects directory (``workspace/.git/objects``) that gets its own
        copy of each reused object, made at the same time; ``mirrored`` lists them. (A
        workspace whose repository borrows the store's large objects has none.)
        """
        self.directory = directory
        self._copied = copied
        self.mirror = mirror
        self.mirrored: dict[str, os.stat_result] = {}
        """``objects/<id>`` path below the mirror's repository -> the copy's stat after writing."""
        self._prefetched: dict[str, tuple[Path, os.stat_result, tuple[str, str, int, StatKey]]] = {}
        self._prefetch_dir: Path | None = None
        self._prefetcher: threading.Thread | None = None

    def content_sha256(self, rel: str, st: os.stat_result) -> str | None:
        """The content's SHA-256 when the workspace file still has the stat it had when copied."""
        known = self._copied.get(rel)
        return known[1] if known is not None and stat_key(known[0]) == stat_key(st) else None

    def wants(self, rel: str, st: os.stat_result) -> bool:
        return self.content_sha256(rel, st) is not None

    def prefetch(self, vouched: Mapping[str, tuple[StatKey, str]], scratch: Path) -> None:
        """Start copying the entries of these large contents into ``scratch`` (a new dir only the harness reaches).

        ``vouched``: fixture file -> (lstat, content SHA-256), as the fixture digest read it.
        Run while the fixture itself is copied into the workspace (the second core); ``place``
        then moves a prefetched copy into the store instead of copying the entry again, if
        the workspace copy turns out to have that content.
        """
        jobs: dict[str, tuple[str, str, int, StatKey]] = {}
        sizes: dict[str, int] = {}
        for key, sha in vouched.values():
            if key[3] > KEEP_BYTES and sha not in jobs and (record := _read_record(self.directory, sha, key[3])):
                jobs[sha], sizes[sha] = record, key[3]
        if not jobs:
            return
        scratch.mkdir()
        self._prefetch_dir = scratch

        def fetch() -> None:
            for sha, (_, _, object_bytes, key) in jobs.items():
                target = scratch / f"{sha}.obj"
                copied = _copy_checked(self.directory / f"{sha}.obj", key, object_bytes, loose_prefix(sizes[sha]),
                                       target)
                if copied is not None:
                    self._prefetched[sha] = (target, copied, jobs[sha])

        self._prefetcher = threading.Thread(target=fetch, name="blob-prefetch", daemon=True)
        self._prefetcher.start()

    def discard_prefetched(self) -> None:
        """Wait for the prefetch and remove what ``place`` did not use."""
        if self._prefetcher is not None:
            self._prefetcher.join()
            self._prefetcher = None
        if self._prefetch_dir is not None:
            shutil.rmtree(self._prefetch_dir, ignore_errors=True)
            self._prefetch_dir = None
        self._prefetched.clear()

    def _take_prefetched(self, sha: str, record: tuple[str, str, int, StatKey]) -> Path | None:
        """The prefetched copy of this entry (this record), still with the stat taken after writing it, or None."""
        if self._prefetcher is not None:
            self._prefetcher.join()
            self._prefetcher = None
        fetched = self._prefetched.pop(sha, None)
        try:
            if fetched is not None and fetched[2] == record and stat_key(os.lstat(fetched[0])) == stat_key(fetched[1]):
                return fetched[0]
        except OSError:
            pass
        return None

    def place(self, rel: str, st: os.stat_result, objects_dir: Path) -> tuple[bytes, str] | None:
        sha = self.content_sha256(rel, st)
        if sha is None:
            return None
        record = _read_record(self.directory, sha, st.st_size)
        if record is None:
            return None
        oid, object_sha256, object_bytes, key = record
        source, prefix = self.directory / f"{sha}.obj", loose_prefix(st.st_size)
        targets = [objects_dir / f"tmp_obj_{os.getpid()}_{secrets.token_hex(4)}"]
        name = f"objects/{oid[:2]}/{oid[2:]}"
        if self.mirror is not None and name not in self.mirrored:
            (self.mirror / oid[:2]).mkdir(exist_ok=True)
            targets.append(self.mirror / oid[:2] / oid[2:])
        copies: list[os.stat_result | None] = [None] * len(targets)
        # Only the harness reaches the prefetch dir, and the stat taken after writing holds.
        fetched = self._take_prefetched(sha, record)

        def copy(i: int) -> None:
            if i == 0 and fetched is not None:
                os.replace(fetched, targets[0])
                copies[0] = os.lstat(targets[0])
            else:
                copies[i] = _copy_checked(source, key, object_bytes, prefix, targets[i])

        # Both copies at once: copy_file_range drops the GIL, and the second core is idle here.
        helper = threading.Thread(target=copy, args=(1,)) if len(targets) > 1 else None
        if helper is not None:
            helper.start()
        try:
            copy(0)
        finally:
            if helper is not None:
                helper.join()
        if any(c is None for c in copies):
            for target in targets:
                target.unlink(missing_ok=True)
            return None
        if len(targets) > 1 and (mirrored := copies[1]) is not None:
            self.mirrored[name] = mirrored
        return settle(targets[0], objects_dir, bytes.fromhex(oid)), object_sha256

    def keep(self, files: list[TreeFile], objects_dir: Path) -> None:
        """Enter each loose object written (not reused) for a file whose content SHA-256 is known.

        Best effort: a missing or read-only home only costs the next run the full build.
        """
        added = False
        for entry in files:
            if entry.data is not None or entry.reused or entry.object_sha256 is None:
                continue
            sha = self.content_sha256(entry.rel, entry.st)
            if sha is None:
                continue
            oid = entry.oid.hex()
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                _add(self.directory, sha, entry.st.st_size, oid, entry.object_sha256,
                     objects_dir / oid[:2] / oid[2:])
                added = True
            except OSError:
                return
        if added:
            _evict(self.directory, MAX_CACHE_BYTES)


def _read_record(directory: Path, sha: str, size: int) -> tuple[str, str, int, StatKey] | None:
    try:
        with open(directory / f"{sha}.json", "rb") as handle:
            data = json.loads(handle.read(4096))
        oid, object_sha256, object_bytes, key = (data["oid"], data["object_sha256"], data["object_bytes"],
                                                 tuple(data["stat"]))
        if (data["format"] != FORMAT or data["sha256"] != sha or data["size"] != size
                or not isinstance(oid, str) or not _OID.fullmatch(oid)
                or not isinstance(object_sha256, str) or not _SHA256.fullmatch(object_sha256)
                or type(object_bytes) is not int or object_bytes <= size
                or len(key) != 6 or not all(type(k) is int for k in key)):
            return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return oid, object_sha256, object_bytes, key


def _copy_checked(source: Path, key: StatKey, size: int, prefix: bytes, target: Path) -> os.stat_result | None:
    """Copy ``source`` to a new ``target`` (mode 0444) if it keeps lstat ``key`` throughout and starts with ``prefix``.

    Returns the copy's stat after writing, or None (and no ``target``).
    """
    try:
        fd = os.open(source, _READ_FLAGS)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or stat_key(before) != key or before.st_size != size:
            return None
        if os.pread(fd, len(prefix), 0) != prefix:
            return None
        out = os.open(target, _NEW_FLAGS, 0o444)
        try:
            copied = copy_fd(fd, out, size)
            written = os.fstat(out)
        finally:
            os.close(out)
        if copied != size or stat_key(os.fstat(fd)) != key:
            target.unlink()
            return None
        return written
    except OSError:
        target.unlink(missing_ok=True)
        return None
    finally:
        os.close(fd)


def _add(directory: Path, sha: str, size: int, oid: str, object_sha256: str, loose: Path) -> None:
    """Copy the run's loose object in, then write the record naming the copy's exact lstat."""
    token = f"{os.getpid()}.{secrets.token_hex(4)}"
    scratch = directory / f"{sha}.obj.{token}.tmp"
    fd = os.open(loose, _READ_FLAGS)
    try:
        out = os.open(scratch, _NEW_FLAGS, 0o444)
        try:
            object_bytes = copy_fd(fd, out, os.fstat(fd).st_size)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    target = directory / f"{sha}.obj"
    os.replace(scratch, target)
    key = stat_key(os.lstat(target))  # after the rename, which may itself move ctime
    record = directory / f"{sha}.json.{token}.tmp"
    record.write_text(json.dumps({"format": FORMAT, "sha256": sha, "size": size, "oid": oid,
                                  "object_sha256": object_sha256, "object_bytes": object_bytes,
                                  "stat": list(key)}))
    os.replace(record, directory / f"{sha}.json")


def _evict(directory: Path, limit: int) -> None:
    """Drop the oldest entries until the objects fit in ``limit`` bytes (and stray scratch files)."""
    entries: list[tuple[int, str, int]] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = directory / name
        try:
            if name.endswith(".json") and _SHA256.fullmatch(name[:-5]):
                obj = directory / f"{name[:-5]}.obj"
                entries.append((path.lstat().st_mtime_ns, name[:-5], obj.lstat().st_size if obj.exists() else 0))
            elif name.endswith(".tmp") and path.lstat().st_mtime_ns < time.time_ns() - STALE_SCRATCH_NS:
                path.unlink()
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    for _, sha, size in sorted(entries):
        if total <= limit:
            break
        for suffix in (".json", ".obj"):
            (directory / f"{sha}{suffix}").unlink(missing_ok=True)
        total -= size
