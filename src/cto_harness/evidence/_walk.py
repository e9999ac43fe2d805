"""A bounded, iterative, no-follow walk over an agent-controlled tree.

The walk never recurses (a 10,000-deep tree costs a loop, not the Python stack), opens
every directory and file relative to its parent's descriptor with ``O_NOFOLLOW`` (a
symlink swapped in mid-walk is never followed out of the tree, and paths longer than
``PATH_MAX`` still work), never opens a FIFO or device, and stops at a file, byte and depth
budget. What it did not hash is listed with its size and why.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_HASH_BYTES = 1 << 30
"""Bytes hashed per walk; a file that would exceed what is left is listed as skipped."""
MAX_FILES = 100_000
"""Entries visited per walk; the rest of the tree is listed as skipped."""
MAX_DEPTH = 128
"""Directory depth below the root; deeper dirs are listed as skipped, not entered."""
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
KnownDigest = Callable[[bytes, os.stat_result], "str | None"]
"""``(rel, lstat) -> SHA-256`` of a file whose content the caller can vouch for by its stat, else None."""


@dataclass(frozen=True)
class Budget:
    max_bytes: int = MAX_HASH_BYTES
    max_files: int = MAX_FILES
    max_depth: int = MAX_DEPTH


@dataclass(frozen=True)
class Entry:
    """One non-directory entry (or a skipped directory) under the root."""

    rel: bytes
    """Path below the root, ``/``-separated, raw bytes."""
    kind: str
    """``file``, ``symlink``, ``special`` (FIFO, socket, device) or ``dir`` (only when skipped)."""
    size: int | None
    sha256: str | None = None
    target: bytes | None = None
    skipped: str | None = None
    """Why it was not hashed: ``byte budget``, ``file budget``, ``too deep``, ``unreadable``."""


@dataclass
class _Counters:
    files: int = 0
    hashed_bytes: int = 0


class Walker:
    """Walks trees sharing one budget (one walker per run dir scan)."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self._count = _Counters()

    def walk(self, root: Path, *, content: bool = True, skip: frozenset[bytes] = frozenset(),
             no_content_under: frozenset[bytes] = frozenset(), known: KnownDigest | None = None,
             only: frozenset[bytes] | None = None) -> Iterator[Entry]:
        """Yield the entries under ``root`` in a stable order (byte order of names, depth first).

        ``skip`` names paths (relative to the root, any depth) left out entirely;
        ``content=False`` records sizes only; ``no_content_under`` names subtrees (relative
        to the root) whose files are recorded by size only (content-addressed git objects);
        ``known`` gives the digest of a file the caller vouches for by its lstat (not read,
        but counted against the byte budget as if it were, so a full re-walk agrees);
        ``only`` keeps just these names of the root's own entries (what is below them is walked whole).
        A missing root or one that is a symlink yields nothing.
        """
        try:
            top = os.open(root, _DIR_FLAGS)
        except OSError:
            return
        stack: list[tuple[int, bytes, Iterator[bytes]]] = []
        try:
            listed = self._names(top)
            stack.append((top, b"", iter(listed if only is None else [n for n in listed if n in only])))
            while stack:
                fd, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(fd)
                    stack.pop()
                    continue
                rel = prefix + name
                if rel in skip:
                    continue
                if self._count.files >= self.budget.max_files:
                    yield Entry(rel=rel, kind="unknown", size=None, skipped="file budget")
                    continue
                self._count.files += 1
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    yield Entry(rel=rel, kind="unknown", size=None, skipped="unreadable")
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if len(stack) > self.budget.max_depth:
                        yield Entry(rel=rel, kind="dir", size=None, skipped="too deep")
                        continue
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        yield Entry(rel=rel, kind="dir", size=None, skipped="unreadable")
                        continue
                    try:
                        children = self._names(child)
                    except OSError:
                        os.close(child)
                        yield Entry(rel=rel, kind="dir", size=None, skipped="unreadable")
                        continue
                    stack.append((child, rel + b"/", iter(children)))
                elif stat.S_ISLNK(info.st_mode):
                    try:
                        target = os.readlink(name, dir_fd=fd)
                    except OSError:
                        target = b""
                    yield Entry(rel=rel, kind="symlink", size=0, target=os.fsencode(target))
                elif stat.S_ISREG(info.st_mode):
                    hashed = content and not any(rel.startswith(p + b"/") for p in no_content_under)
                    digest = known(rel, info) if hashed and known is not None else None
                    if digest is not None and self._count.hashed_bytes + info.st_size <= self.budget.max_bytes:
                        self._count.hashed_bytes += info.st_size
                        yield Entry(rel=rel, kind="file", size=info.st_size, sha256=digest)
                    else:
                        yield self._file(fd, name, rel, info.st_size, hashed)
                else:
                    yield Entry(rel=rel, kind="special", size=0)
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    @staticmethod
    def _names(fd: int) -> list[bytes]:
        return sorted(os.fsencode(n) for n in os.listdir(fd))

    def _file(self, dir_fd: int, name: bytes, rel: bytes, size: int, hashed: bool) -> Entry:
        if not hashed:
            return Entry(rel=rel, kind="file", size=size)
        if self._count.hashed_bytes + size > self.budget.max_bytes:
            return Entry(rel=rel, kind="file", size=size, skipped="byte budget")
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError:
            return Entry(rel=rel, kind="file", size=size, skipped="unreadable")
        digest = hashlib.sha256()
        total = 0
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return Entry(rel=rel, kind="special", size=0)
            limit = self.budget.max_bytes - self._count.hashed_bytes
            while total <= limit:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
        except OSError:
            return Entry(rel=rel, kind="file", size=size, skipped="unreadable")
        finally:
            os.close(fd)
        self._count.hashed_bytes += total
        if total > limit:
            return Entry(rel=rel, kind="file", size=total, skipped="byte budget")
        return Entry(rel=rel, kind="file", size=total, sha256=digest.hexdigest())
