"""Removing a directory tree an agent may have shaped: any depth, read-only dirs, no symlink followed.

``shutil.rmtree`` recurses once per level: a hostile 1,500-deep chain of directories raised
``RecursionError`` in the harness. Nothing of ours is imported here, so any room may use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path) -> None:
    """Best-effort removal of ``path`` (fd-relative and iterative); what cannot go stays."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    emptied: set[tuple[int, int]] = set()
    try:
        stack: list[tuple[int, str | None]] = [(os.open(path, _DIR_FLAGS), None)]
    except OSError:
        return
    try:
        while stack:
            fd = stack[-1][0]
            descended = False
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IRWXU)  # a read-only directory cannot lose its entries
            try:
                names = os.listdir(fd)
            except OSError:
                names = []
            for child in names:
                try:
                    child_info = os.stat(child, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISDIR(child_info.st_mode):
                        if (child_info.st_dev, child_info.st_ino) in emptied:
                            continue  # emptied as far as it goes, and still there: leave it
                        stack.append((os.open(child, _DIR_FLAGS, dir_fd=fd), child))
                        descended = True
                        break
                    os.unlink(child, dir_fd=fd)
                except OSError:
                    continue
            if descended:
                continue
            done, entry = stack.pop()
            with contextlib.suppress(OSError):
                done_info = os.fstat(done)
                emptied.add((done_info.st_dev, done_info.st_ino))
            os.close(done)
            if stack and entry is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(entry, dir_fd=stack[-1][0])
    finally:
        for fd, _ in stack:
            os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)
