"""Harness-side git reads of a run's git stores, running none of their configuration.

The repositories may be the agent's (``workspace/.git``): git here never reads the
system or global config, and the repository's own hooks, fsmonitor, pager and external
diff are switched off on the command line (which wins over the repository's config).
Only plumbing that reads objects runs (``fsck``), never one that touches a
work tree or an index.
"""

from __future__ import annotations

import os
import re
import stat
import zlib
from pathlib import Path

from cto_harness.proc import SpawnError, git_config_args, git_env, run_captured

GIT_TIMEOUT_S = 120.0
_OID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _git(git_dir: Path, *args: str) -> tuple[bool, str]:
    argv = ["git", "--no-pager", f"--git-dir={git_dir}", *git_config_args(), *args]
    try:
        done = run_captured(argv, cwd=git_dir, env=git_env(), timeout_s=GIT_TIMEOUT_S)
    except SpawnError as exc:
        return False, str(exc)
    if not done.ok:
        lines = done.text("stderr").strip().splitlines()
        return False, lines[-1] if lines else "git failed"
    return True, done.text("stdout")


def fsck(git_dir: Path) -> str | None:
    """None when every object in ``git_dir`` is intact; else git's complaint."""
    ok, out = _git(git_dir, "fsck", "--full", "--strict", "--no-dangling", "--no-progress")
    return None if ok else out


def read_head_nogit(git_dir: Path) -> tuple[str | None, str | None]:
    """``HEAD``'s commit and tree of a run's repository (the agent's or ``baseline.git``), read without running git.

    Only loose refs, ``packed-refs`` and a loose commit object are understood (what a fresh
    repository and ordinary commits produce); anything else gives (None, None). Every read
    is small, ``O_NOFOLLOW`` and ``O_NONBLOCK``, so a symlink or FIFO planted in the
    repository cannot send the harness elsewhere or stall it.
    """
    head = _read_small(git_dir / "HEAD")
    if head is None:
        return None, None
    text = head.decode("ascii", "replace").strip()
    commit: str | None = text if _OID.match(text) else None
    if commit is None and text.startswith("ref: refs/"):
        ref = text[5:]
        if ".." in ref.split("/") or "\0" in ref:
            return None, None
        loose = _read_small(git_dir / ref)
        if loose is not None and _OID.match(loose.decode("ascii", "replace").strip()):
            commit = loose.decode().strip()
        else:
            packed = _read_small(git_dir / "packed-refs", limit=1 << 20) or b""
            for line in packed.decode("ascii", "replace").splitlines():
                oid, _, name = line.partition(" ")
                if name == ref and _OID.match(oid):
                    commit = oid
    if commit is None:
        return None, None
    raw = _read_small(git_dir / "objects" / commit[:2] / commit[2:], limit=1 << 20)
    if raw is None:
        return commit, None
    try:
        body = zlib.decompressobj().decompress(raw, 4096)
    except zlib.error:
        return commit, None
    header, _, rest = body.partition(b"\0")
    if not header.startswith(b"commit ") or not rest.startswith(b"tree "):
        return commit, None
    tree = rest[5:45].decode("ascii", "replace")
    return commit, tree if _OID.match(tree) else None


def _read_small(path: Path, limit: int = 4096) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)
