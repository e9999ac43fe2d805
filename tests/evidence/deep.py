"""Deep directory chains for tests; ``remove_tree`` (the harness's own) removes them without recursion."""

from __future__ import annotations

import os
from pathlib import Path

from cto_harness._tree import remove_tree

__all__ = ["make_chain", "remove_tree"]


def make_chain(base: Path, depth: int, name: str = "d") -> None:
    fd = os.open(base, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        fd, parent = os.open(name, os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)
