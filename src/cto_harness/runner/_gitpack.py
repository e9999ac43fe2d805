"""Write a baseline git store in-process: one pack (blobs, trees), a loose commit, its ``.idx``, a work-tree index.

Why not ``git add``: git hashes with SHA-1DC (about 230 MB/s here) and its bulk check-in
reads the whole pack back to fix the header, so a 50 MB fixture file cost about a second.
``hashlib``'s SHA-1 runs on the CPU's SHA extensions, and the pack is written in one pass
(files above ``KEEP_BYTES`` become loose objects as they are read). The objects are
the ones git writes (same ids: tests build the same tree with git and compare), stored
uncompressed (zlib level 0, as ``core.compression=0``), and ``verify`` checks the store with
``git fsck --strict``.

Only what ``git add -A -f`` would store unchanged is written here: regular files and
symlinks. ``scan`` returns None for anything else (a special file, a nested ``.git``, a
``.gitattributes`` that could convert content, a name git treats specially) and the caller
lets git do the whole baseline instead.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import struct
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

KEEP_BYTES = 256 * 1024
"""Files up to this size are read once and kept in memory until the pack is written."""
MAX_PACK_BYTES = 1 << 31
"""Larger stores are left to git (this writer emits only 31-bit pack offsets)."""
_OBJ_TREE, _OBJ_BLOB = 2, 3
_CHUNK = 1 << 20
THREAD_BYTES = 4 << 20
"""A loose blob at least this large is checksummed in a helper thread while it is written."""
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_GIT_NAMES = frozenset({".git", ".gitattributes", ".gitmodules"})
_M32 = 0xFFFFFFFF
_STORED_END = b"\x01\x00\x00\xff\xff"
"""An empty, final stored deflate block."""


@dataclass
class TreeFile:
    """One file or symlink of the work tree, as it was read."""

    rel: str
    """Posix path below the work tree (str with surrogate escapes, as ``os.scandir`` names it)."""
    path: str
    """Where it is read from."""
    mode: int
    """Git mode: 0o100644, 0o100755 or 0o120000."""
    st: os.stat_result
    oid: bytes
    data: bytes | None
    """The content when small (or a link target); None: stored as a loose object during the scan."""
    object_sha256: str | None = None
    """SHA-256 of the loose object file's bytes, when it was hashed or taken from a ``LooseSource``."""
    reused: bool = False
    """The loose object came from a ``LooseSource`` (the file itself was not read)."""


class LooseSource(Protocol):
    """Where a large file's loose object may already exist (``runner._blobcache``)."""

    def place(self, rel: str, st: os.stat_result, objects_dir: Path) -> tuple[bytes, str] | None:
        """Put the loose object of the file at ``rel`` (lstat ``st``) into ``objects_dir``; (id, object SHA-256)."""

    def wants(self, rel: str, st: os.stat_result) -> bool:
        """Hash the loose object written for this file (SHA-256), so that it can be kept."""


def scan(work_tree: Path, objects_dir: Path, source: LooseSource | None = None) -> list[TreeFile] | None:
    """Read and hash every file and symlink below ``work_tree`` (its top-level ``.git`` aside).

    Files above ``KEEP_BYTES`` are stored as loose objects in ``objects_dir`` as they are
    read (one read, no pack offsets to fix), or copied from ``source`` without reading the
    file; smaller ones are kept for ``write_store``.
    Returns None when the tree holds anything this module leaves to git (see the module doc).
    """
    files: list[TreeFile] = []
    total = 0
    stack = [""]
    while stack:
        prefix = stack.pop()
        with os.scandir(os.path.join(work_tree, prefix) if prefix else work_tree) as it:
            children = list(it)
        for child in children:
            name = child.name
            if not prefix and name == ".git":
                continue
            if _special_name(name):
                return None
            rel = prefix + name
            st = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel + "/")
            elif stat.S_ISLNK(st.st_mode):
                target = os.fsencode(os.readlink(child.path))
                files.append(TreeFile(rel, child.path, 0o120000, st, _oid(b"blob", target), target))
            elif stat.S_ISREG(st.st_mode):
                entry = _read_file(child.path, rel, st, objects_dir, source)
                if entry is None:
                    return None
                files.append(entry)
                total += st.st_size
            else:
                return None
            if total >= MAX_PACK_BYTES // 2:
                return None
    return files


def _special_name(name: str) -> bool:
    lower = name.lower()
    return (lower in _GIT_NAMES or lower.startswith("git~") or name.endswith((" ", "."))
            or "\\" in name or ":" in name)


def _read_file(path: str, rel: str, st: os.stat_result, objects_dir: Path,
               source: LooseSource | None = None) -> TreeFile | None:
    mode = 0o100755 if st.st_mode & stat.S_IXUSR else 0o100644
    if source is not None and st.st_size > KEEP_BYTES:
        placed = source.place(rel, st, objects_dir)
        if placed is not None:
            return TreeFile(rel, path, mode, st, placed[0], None, placed[1], reused=True)
    fd = os.open(path, _FILE_FLAGS)
    try:
        if _changed(os.fstat(fd), st):
            return None
        if st.st_size <= KEEP_BYTES:
            data = _read_exactly(fd, st.st_size)
            if data is None:
                return None
            return TreeFile(rel, path, mode, st, _oid(b"blob", data), data)
        object_sha = hashlib.sha256() if source is not None and source.wants(rel, st) else None
        oid = _store_loose(fd, st.st_size, objects_dir, object_sha)
        if oid is None:
            return None
        return TreeFile(rel, path, mode, st, oid, None, object_sha.hexdigest() if object_sha is not None else None)
    finally:
        os.close(fd)


def loose_prefix(size: int) -> bytes:
    """The first bytes of the loose blob ``_store_loose`` writes for ``size`` bytes of content."""
    return b"\x78\x01" + _stored(b"blob %d\0" % size)


def _store_loose(fd: int, size: int, objects_dir: Path, object_sha: hashlib._Hash | None = None) -> bytes | None:
    """Stream ``size`` bytes of ``fd`` into a loose blob (zlib stored blocks); None if the size was wrong.

    With ``object_sha``, every byte written to the object file also goes through it.
    """
    sums = _Sums(b"blob %d\0" % size, threaded=size >= THREAD_BYTES)
    scratch = objects_dir / f"tmp_obj_{os.getpid()}_{fd}"
    out = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)

    def put(data: bytes) -> None:
        if object_sha is not None:
            object_sha.update(data)
        _write_all(out, data)

    done = False
    try:
        put(loose_prefix(size))
        left = size
        while left > 0:
            chunk = os.read(fd, min(left, _CHUNK))
            if not chunk:
                return None
            sums.update(chunk)
            put(_stored(chunk))
            left -= len(chunk)
        if os.read(fd, 1):
            return None
        oid, adler = sums.finish()
        put(_STORED_END + struct.pack(">I", adler))
        done = True
    finally:
        try:
            sums.finish()
        finally:
            os.close(out)
            if not done:
                scratch.unlink(missing_ok=True)
    return settle(scratch, objects_dir, oid)


class _Sums:
    """SHA-1 and Adler-32 of a stream; for a large one, in a helper thread (both drop the GIL).

    The writer meanwhile frames and writes the chunks (and hashes the object bytes): on two
    cores a cold 50 MB blob costs about the slower of the two instead of their sum.
    """

    def __init__(self, header: bytes, *, threaded: bool) -> None:
        self._sha1 = hashlib.sha1(header, usedforsecurity=False)
        self._adler = zlib.adler32(header)
        self._queue: queue.Queue[bytes | None] | None = queue.Queue(maxsize=8) if threaded else None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._result: tuple[bytes, int] | None = None
        if self._queue is not None:
            self._thread = threading.Thread(target=self._drain, name="blob-sums", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._add(chunk)
                except BaseException as exc:  # re-raised by finish
                    self._error = exc

    def _add(self, chunk: bytes) -> None:
        self._sha1.update(chunk)
        self._adler = zlib.adler32(chunk, self._adler)

    def update(self, chunk: bytes) -> None:
        if self._queue is None:
            self._add(chunk)
        else:
            self._queue.put(chunk)

    def finish(self) -> tuple[bytes, int]:
        """The SHA-1 digest and the Adler-32; stops the helper (safe to call again)."""
        if self._result is None:
            if self._queue is not None and self._thread is not None:
                self._queue.put(None)
                self._thread.join()
            if self._error is not None:
                raise self._error
            self._result = (self._sha1.digest(), self._adler)
        return self._result


def store_loose_object(objects_dir: Path, kind: bytes, data: bytes) -> bytes:
    """Write one small object (a commit) as a loose object; return its id."""
    raw = b"%s %d\0%s" % (kind, len(data), data)
    scratch = objects_dir / f"tmp_obj_{os.getpid()}"
    with open(scratch, "xb") as handle:
        handle.write(b"\x78\x01" + _stored(raw) + _STORED_END + struct.pack(">I", zlib.adler32(raw)))
    os.chmod(scratch, 0o444)
    return settle(scratch, objects_dir, hashlib.sha1(raw, usedforsecurity=False).digest())


def settle(scratch: Path, objects_dir: Path, oid: bytes) -> bytes:
    """Move a finished object file to its place by id (keep the one already there)."""
    target = objects_dir / oid[:1].hex() / oid[1:].hex()
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        scratch.unlink()
    else:
        os.replace(scratch, target)
    return oid


def _zlib_stored(data: bytes) -> bytes:
    """``data`` as a whole zlib stream of stored blocks: what ``zlib.compress(data, 0)`` gives, built by hand.

    Many small objects: no compressor object per entry.
    """
    size = len(data)
    # One final block, or non-final blocks and an empty final one.
    body = b"\x01" + struct.pack("<HH", size, size ^ 0xFFFF) + data if size <= 0xFFFF else _stored(data) + _STORED_END
    return b"\x78\x01" + body + struct.pack(">I", zlib.adler32(data))


def _stored(data: bytes) -> bytes:
    """``data`` as non-final deflate stored blocks (at most 65535 bytes each)."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(data), 0xFFFF):
        block = view[start:start + 0xFFFF]
        parts.append(b"\x00" + struct.pack("<HH", len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _changed(now: os.stat_result, then: os.stat_result) -> bool:
    return ((now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns, now.st_ctime_ns)
            != (then.st_ino, then.st_dev, then.st_size, then.st_mtime_ns, then.st_ctime_ns))


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks) if not os.read(fd, 1) else None


def _oid(kind: bytes, data: bytes) -> bytes:
    return hashlib.sha1(b"%s %d\0%s" % (kind, len(data), data), usedforsecurity=False).digest()


class _Pack:
    """A pack being written: each entry a zlib stream of stored blocks (level 0), through SHA-1 and CRC-32."""

    def __init__(self, path: Path, count: int) -> None:
        self._fh = open(path, "xb")  # noqa: SIM115 (closed in finish)
        self._sha = hashlib.sha1(usedforsecurity=False)
        self.offset = 0
        self.entries: list[tuple[bytes, int, int]] = []
        self._put(b"PACK" + struct.pack(">II", 2, count))

    def _put(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.offset += len(data)

    def add(self, oid: bytes, kind: int, data: bytes) -> None:
        start = self.offset
        size = len(data)
        byte, size_left = (kind << 4) | (size & 0x0F), size >> 4
        header = bytearray()
        while size_left:
            header.append(byte | 0x80)
            byte, size_left = size_left & 0x7F, size_left >> 7
        header.append(byte)
        entry = b"".join((header, _zlib_stored(data)))
        self._put(entry)
        self.entries.append((oid, zlib.crc32(entry), start))

    def finish(self) -> bytes:
        checksum = self._sha.digest()
        self._fh.write(checksum)
        self._fh.close()
        return checksum


def write_store(objects_dir: Path, files: list[TreeFile], identity: Mapping[str, str], message: str,
                when: int) -> str:
    """Write one pack (and its ``.idx``) holding the small blobs of ``files`` and their trees, and a loose commit.

    Returns:
        The commit id.
    """
    trees = _trees(files)
    blobs: dict[bytes, bytes] = {}
    for entry in files:
        if entry.data is not None:
            blobs.setdefault(entry.oid, entry.data)
    unique_trees = dict(trees)
    root_tree = trees[-1][0]
    commit = _commit(root_tree, identity, message, when)
    commit_oid = _oid(b"commit", commit)
    pack_dir = objects_dir / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    scratch = pack_dir / f"tmp_pack_{os.getpid()}"
    pack = _Pack(scratch, len(blobs) + len(unique_trees))
    try:
        for oid, data in blobs.items():
            pack.add(oid, _OBJ_BLOB, data)
        for oid, data in unique_trees.items():
            pack.add(oid, _OBJ_TREE, data)
        checksum = pack.finish()
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    name = f"pack-{checksum.hex()}"
    idx_path = pack_dir / f"{name}.idx"
    _write_idx(idx_path, pack.entries, checksum)
    pack_path = pack_dir / f"{name}.pack"
    os.replace(scratch, pack_path)
    for path in (pack_path, idx_path):
        os.chmod(path, 0o444)
    # Loose, as git commit-tree writes it: readers of the agent's store that do not run git find it.
    store_loose_object(objects_dir, b"commit", commit)
    return commit_oid.hex()


def _trees(files: list[TreeFile]) -> list[tuple[bytes, bytes]]:
    """Every tree object (id, content), children before parents; the root tree last."""
    children: dict[str, dict[bytes, tuple[int, bytes] | None]] = {"": {}}
    for entry in files:
        parts = entry.rel.split("/")
        for depth in range(1, len(parts)):
            parent, here = "/".join(parts[:depth - 1]), "/".join(parts[:depth])
            if here not in children:
                children[here] = {}
                children[parent][os.fsencode(parts[depth - 1])] = None
        children["/".join(parts[:-1])][os.fsencode(parts[-1])] = (entry.mode, entry.oid)
    out: list[tuple[bytes, bytes]] = []
    done: dict[str, bytes] = {}
    for directory in sorted(children, key=lambda d: d.count("/") + 1 if d else 0, reverse=True):
        items = children[directory]
        body = bytearray()
        for name in sorted(items, key=lambda n: n + b"/" if items[n] is None else n):
            item = items[name]
            if item is None:
                sub = f"{directory}/{os.fsdecode(name)}" if directory else os.fsdecode(name)
                body += b"40000 %s\0%s" % (name, done[sub])
            else:
                body += b"%o %s\0%s" % (item[0], name, item[1])
        oid = _oid(b"tree", bytes(body))
        done[directory] = oid
        out.append((oid, bytes(body)))
    return out


def _commit(tree: bytes, identity: Mapping[str, str], message: str, when: int) -> bytes:
    author = f"{identity['GIT_AUTHOR_NAME']} <{identity['GIT_AUTHOR_EMAIL']}> {when} +0000"
    committer = f"{identity['GIT_COMMITTER_NAME']} <{identity['GIT_COMMITTER_EMAIL']}> {when} +0000"
    return f"tree {tree.hex()}\nauthor {author}\ncommitter {committer}\n\n{message}\n".encode()


def _write_idx(path: Path, entries: list[tuple[bytes, int, int]], pack_checksum: bytes) -> None:
    entries = sorted(entries)
    fanout = [0] * 256
    for oid, _, _ in entries:
        fanout[oid[0]] += 1
    running = 0
    for i in range(256):
        running += fanout[i]
        fanout[i] = running
    body = b"".join((
        b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *fanout),
        b"".join(oid for oid, _, _ in entries),
        b"".join(struct.pack(">I", crc) for _, crc, _ in entries),
        b"".join(struct.pack(">I", offset) for _, _, offset in entries),
        pack_checksum,
    ))
    with open(path, "xb") as handle:
        handle.write(body + hashlib.sha1(body, usedforsecurity=False).digest())


def init_repo(git_dir: Path, *, bare: bool) -> None:
    """The repository ``git init -b main`` makes (minus the sample hooks and description), without spawning git.

    Raises:
        FileExistsError: ``git_dir`` exists.
    """
    git_dir.mkdir()
    for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags", "info", "hooks"):
        (git_dir / sub).mkdir(parents=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/main\n")
    tail = "\tbare = true\n" if bare else "\tbare = false\n\tlogallrefupdates = true\n"
    (git_dir / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n" + tail)


_INDEX_HEAD = struct.Struct(">10I")
_INDEX_FLAGS = struct.Struct(">H")


def index_bytes(files: list[TreeFile]) -> tuple[bytes, bytes]:
    """Two version 2 indexes of ``files``: with their stat data, and with every stat field 0.

    The second is what ``git read-tree`` writes: a stat-less entry never matches a file's
    stat, so ``git add`` hashes every path it is given.
    """
    count = struct.pack(">II", 2, len(files))
    with_stat, stat_less = [b"DIRC", count], [b"DIRC", count]
    for name, entry in sorted([(os.fsencode(e.rel), e) for e in files], key=lambda pair: pair[0]):
        st, mode = entry.st, entry.mode
        tail = b"".join((entry.oid, _INDEX_FLAGS.pack(min(len(name), 0xFFF)), name,
                         b"\0" * (8 - (62 + len(name)) % 8)))
        with_stat += (_INDEX_HEAD.pack(
            (st.st_ctime_ns // 10**9) & _M32, st.st_ctime_ns % 10**9, (st.st_mtime_ns // 10**9) & _M32,
            st.st_mtime_ns % 10**9, st.st_dev & _M32, st.st_ino & _M32, mode, st.st_uid & _M32,
            st.st_gid & _M32, st.st_size & _M32), tail)
        stat_less += (_INDEX_HEAD.pack(0, 0, 0, 0, 0, 0, mode, 0, 0, 0), tail)
    out = []
    for parts in (with_stat, stat_less):
        body = b"".join(parts)
        out.append(body + hashlib.sha1(body, usedforsecurity=False).digest())
    return out[0], out[1]
