"""Reading a file the agent could have touched: never through a symlink, never unbounded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

DEFAULT_LIMIT = 16 * 1024 * 1024


def read_agent_file(path: Path, *, limit: int = DEFAULT_LIMIT, tail: bool = False,
                    root: Path | None = None) -> bytes | None:
    """At most ``limit`` bytes of ``path`` (its last ones with ``tail``), or None.

    None when ``path`` is missing, a symlink (a link to ``/etc/shadow`` or ``/dev/zero`` is
    never read), not a regular file (a FIFO never blocks the harness), or, with ``root``,
    when a directory on the way is a symlink leading out of ``root``.
    """
    if root is not None:
        real_parent = os.path.realpath(path.parent)
        real_root = os.path.realpath(root)
        if os.path.commonpath([real_parent, real_root]) != real_root:
            return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if tail and info.st_size > limit:
            os.lseek(fd, info.st_size - limit, os.SEEK_SET)
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
