"""A run dir as a tar archive with a manifest of file digests, for workers that share no filesystem.

``pack_run_dir`` (worker side) reads each file once: the bytes go into the archive and into
the file's SHA-256 together, and no member needs a user or group name looked up. The archive
is gzip-compressed at level 1 (a run dir is mostly tar padding and text; the archive stays
small enough to travel inline in a Ray reply).

``unpack_archive`` (coordinator side) checks and extracts in one streaming pass, trusting
nothing in the archive: every member must lie in the run dir, be a directory, a regular file
or a symlink, appear once, and come after its parent directory, which must be a directory
this same extraction created (so nothing is ever written through a symlink, and no path is
resolved on disk); files are created ``O_EXCL | O_NOFOLLOW``; set-id, sticky and group/other
write bits are dropped; each file's digest is compared with the manifest as it is written,
and every file the manifest lists must have come. Proving the run itself (signature,
digests, event chain, ``git fsck``) is ``verify``'s job, after this.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

COMPRESS_LEVEL = 1
_CHUNK = 1 << 20
_MODE_MASK = 0o755
"""Kept mode bits (as tarfile's ``tar`` filter: no set-id or sticky bit, no group/other write)."""
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class ArchiveRejected(ValueError):
    """The archive disagrees with its manifest or holds something a run dir cannot."""


class _Hashing(io.RawIOBase):
    """A file read through once, hashing what is read."""

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__()
        self.handle = handle
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _entries(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(arcname, path, lstat) of ``root`` and everything below it, parents first, names sorted."""
    stack = [(root.name, root)]
    while stack:
        name, path = stack.pop()
        info = os.lstat(path)
        yield name, path, info
        if stat.S_ISDIR(info.st_mode):
            children = sorted(os.listdir(path), reverse=True)
            stack.extend((f"{name}/{child}", path / child) for child in children)


def pack_run_dir(run_dir: Path) -> tuple[bytes, dict[str, str]]:
    """``run_dir`` as a gzipped tar (members under ``run_dir.name``) and each file's SHA-256 by member name."""
    buffer = io.BytesIO()
    files: dict[str, str] = {}
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=COMPRESS_LEVEL) as archive:
        for name, path, info in _entries(run_dir) if os.path.lexists(run_dir) else ():
            member = tarfile.TarInfo(name)
            member.mode = stat.S_IMODE(info.st_mode)
            member.mtime = int(info.st_mtime)
            if stat.S_ISREG(info.st_mode):
                fd = os.open(path, _OPEN_FLAGS)
                with os.fdopen(fd, "rb") as handle:
                    member.size = os.fstat(fd).st_size
                    reader = _Hashing(handle)
                    archive.addfile(member, reader)
                files[name] = reader.digest.hexdigest()
            elif stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
                archive.addfile(member)
            elif stat.S_ISLNK(info.st_mode):
                member.type = tarfile.SYMTYPE
                member.linkname = os.readlink(path)
                archive.addfile(member)
            else:  # a FIFO, socket or device: sent as what it is, so the coordinator names it when it refuses it
                member.type = tarfile.FIFOTYPE if stat.S_ISFIFO(info.st_mode) else tarfile.CHRTYPE
                archive.addfile(member)
    return buffer.getvalue(), files


def _parts(name: str, dir_name: str) -> list[str]:
    parts = name.split("/")
    if parts[0] != dir_name or any(part in ("", ".", "..") for part in parts) or "\0" in name:
        raise ArchiveRejected(f"archive member outside the run dir: {name!r}")
    return parts


def unpack_archive(data: bytes, files: Mapping[str, str], dir_name: str, dest: Path) -> Path:
    """Extract the run dir ``dir_name`` from ``data`` into the existing dir ``dest``.

    Returns:
        ``dest / dir_name``.

    Raises:
        ArchiveRejected: why the archive was refused (what was extracted so far stays in ``dest``).
    """
    if not dir_name or "/" in dir_name or dir_name in (".", ".."):
        raise ArchiveRejected(f"bad run dir name {dir_name!r}")
    made_dirs: set[str] = set()
    seen: set[str] = set()
    written: set[str] = set()
    dir_modes: list[tuple[Path, int, float]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive:
                name = member.name
                parts = _parts(name, dir_name)
                if name in seen:
                    raise ArchiveRejected(f"archive member twice: {name!r}")
                seen.add(name)
                parent = "/".join(parts[:-1])
                if parent and parent not in made_dirs:
                    raise ArchiveRejected(f"archive member before (or outside) its directory: {name!r}")
                if not parent and not member.isdir():
                    raise ArchiveRejected(f"archive's run dir is not a directory: {name!r}")
                target = dest.joinpath(*parts)
                if member.isdir():
                    os.mkdir(target, 0o700)
                    made_dirs.add(name)
                    dir_modes.append((target, member.mode & _MODE_MASK, member.mtime))
                elif member.isreg():
                    expected = files.get(name)
                    if expected is None:
                        raise ArchiveRejected(f"archive and manifest differ at {name!r}")
                    content = archive.extractfile(member)
                    assert content is not None
                    _write_file(target, content, expected, name)
                    written.add(name)
                    os.chmod(target, member.mode & _MODE_MASK)
                    os.utime(target, (member.mtime, member.mtime))
                elif member.issym():
                    os.symlink(member.linkname, target)
                else:
                    raise ArchiveRejected(f"archive member of an unexpected kind: {name!r}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveRejected(f"archive unreadable: {exc}") from exc
    if dir_name not in made_dirs:
        raise ArchiveRejected("archive holds no run dir")
    missing = sorted(set(files) - written)
    if missing:
        raise ArchiveRejected(f"archive and manifest differ at {missing[0]!r}")
    for path, mode, mtime in reversed(dir_modes):  # deepest first: a read-only dir stops nothing still to come
        os.chmod(path, mode)
        os.utime(path, (mtime, mtime))
    return dest / dir_name


def _write_file(target: Path, source: IO[bytes], expected: str, name: str) -> None:
    digest = hashlib.sha256()
    fd = os.open(target, _CREATE_FLAGS, 0o600)
    with os.fdopen(fd, "wb") as sink:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != expected:
        raise ArchiveRejected(f"archive and manifest differ at {name!r}")
