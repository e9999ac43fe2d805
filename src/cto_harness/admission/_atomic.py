"""Atomic, durable file writes for admission records.

A record that is half-written after a crash would be worse than none: readers could
trust a truncated admission. Every record is written to a temp file in the same
directory, fsynced, then renamed over the target (and the directory fsynced).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def dumps(obj: BaseModel | Mapping[str, Any]) -> str:
    """Stable, human-readable JSON for a record."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else dict(obj)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(path: Path, obj: BaseModel | Mapping[str, Any], *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, dumps(obj).encode("utf-8"), mode=mode)
