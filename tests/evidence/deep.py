"""Deep directory chains for tests, and their removal without recursion (shutil.rmtree recurses)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def make_chain(base: Path, depth: int, name: str = "d") -> None:
    fd = os.open(base, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        fd, parent = os.open(name, os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove ``path`` however deep it is (fd-relative, iterative)."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    stack = [(os.open(path, os.O_RDONLY | os.O_DIRECTORY), None)]
    while stack:
        fd, _ = stack[-1]
        names = os.listdir(fd)
        pushed = False
        for name in names:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                stack.append((os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd), name))
                pushed = True
                break
            os.unlink(name, dir_fd=fd)
        if pushed:
            continue
        fd, name = stack.pop()
        os.close(fd)
        if stack and name is not None:
            os.rmdir(name, dir_fd=stack[-1][0])
    os.rmdir(path)
