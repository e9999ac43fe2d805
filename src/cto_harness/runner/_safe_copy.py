"""Copying agent-made trees into the evidence without following any symlink out of the run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cto_harness.evidence import Walker

_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def keep_state_dir(workspace: Path, source_rel: str, backend: Path, dest_rel: str) -> bool:
    """Copy the provider state dir ``workspace/source_rel`` to ``backend/dest_rel``.

    Both ends are agent-writable: the source must be a real directory (not a symlink), and
    whatever the agent left at the destination (a symlink to a host dir, a dir holding
    symlinks) is moved aside first, so the copy only ever creates new entries in a fresh
    directory. Symlinks are copied as symlinks; FIFOs and devices are left out; the walk
    is the bounded one. Returns False when there was nothing to copy.
    """
    source = workspace / source_rel
    if source.is_symlink() or not source.is_dir():
        return False
    dest = backend / dest_rel
    if os.path.lexists(dest):
        aside = dest.with_name(dest.name + ".agent-made")
        n = 0
        while os.path.lexists(aside):
            n += 1
            aside = dest.with_name(f"{dest.name}.agent-made.{n}")
        os.rename(dest, aside)
    os.mkdir(dest, 0o755)
    root = os.fsencode(dest)
    for entry in Walker().walk(source, content=False):
        target = os.path.join(root, entry.rel)
        try:
            _ensure_parents(root, entry.rel)
            if entry.kind == "symlink" and entry.target is not None:
                os.symlink(entry.target, target)
            elif entry.kind == "file":
                _copy_file(os.path.join(os.fsencode(source), entry.rel), target)
        except OSError:
            continue
    return True


def _ensure_parents(root: bytes, rel: bytes) -> None:
    parts = rel.split(b"/")[:-1]
    current = root
    for part in parts:
        current = os.path.join(current, part)
        if not os.path.isdir(current) or os.path.islink(current):
            os.mkdir(current, 0o755)


def _copy_file(source: bytes, target: bytes) -> None:
    src = os.open(source, _NOFOLLOW_READ)
    try:
        dst = os.open(target, _CREATE, 0o644)
        with os.fdopen(src, "rb", closefd=False) as reader, os.fdopen(dst, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
    finally:
        os.close(src)
