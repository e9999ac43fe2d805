"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

Known trade-off (accepted): the temp file lives in the target's directory, so a crash
can leave a ``.*.tmp`` file behind; ``verify`` reports it as an unlisted artifact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename over ``path``.

    ``durable=False`` skips both fsyncs (the file's and the directory's): a reader still sees
    the old file or the whole new one, but a power cut may lose it. For an intermediate file
    whose digest a later durable write (``report.json``) records: one lost to a power cut
    makes ``verify`` fail, never pass; it is not worth two disk flushes on every run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
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
