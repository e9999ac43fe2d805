"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

Known trade-off (accepted): the temp file lives in the target's directory, so a crash
can leave a ``.*.tmp`` file behind; ``verify`` reports it as an unlisted artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

from cto_harness._tree import remove_tree


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename over ``path``.

    ``durable=False`` skips both fsyncs (the file's and the directory's): a reader still sees
    the old file or the whole new one, but a power cut may lose it. For an intermediate file
    whose digest a later durable write (``report.json``) records: one lost to a power cut
    makes ``verify`` fail, never pass; it is not worth two disk flushes on every run.
    """
    _write_replacing(path, lambda handle: handle.write(data), mode=mode, durable=durable)


def atomic_copy_file(source: Path, path: Path, *, mode: int = 0o644) -> None:
    """Copy the harness's own file ``source`` to ``path`` as ``atomic_write_bytes`` writes (no fsync)."""
    with open(source, "rb") as reader:
        _write_replacing(path, lambda handle: shutil.copyfileobj(reader, handle), mode=mode, durable=False)


def _write_replacing(path: Path, fill: Any, *, mode: int, durable: bool) -> None:
    """Fill a temp file beside ``path``, then rename it over ``path``.

    The rename replaces a symlink at ``path`` instead of writing through it. A directory at
    ``path`` (an agent can make one where the harness later writes evidence, e.g. in
    ``backend/``) is removed, without following any link in it, and the rename retried: the
    harness's file always lands, and nothing outside the run dir is touched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        handle: IO[bytes]
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        try:
            os.replace(tmp, path)
        except OSError:
            if not _is_real_dir(path):
                raise
            remove_tree(path)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n",
                      durable=durable)


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
