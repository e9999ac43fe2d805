"""Which subtrees of a fixture's ``repo/`` the verifier shares read-only instead of copying.

Light on purpose (no pydantic): ``cto-harness run`` asks before its own imports, to start
the held grader with those binds (``early_shared``). The loaded fixture's answer
(``fixtures.shareable_subtrees``) is the one that counts: a grader started with another
list is not used as is.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

SHARE_MIN_FILES = 100
SHARE_MIN_BYTES = 8 * 1024 * 1024
"""Untouched subtrees at least this large are shared (bound read-only) rather than copied."""
IGNORED_DIR_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
"""Tool caches that appear when someone runs a fixture in place; never part of a fixture."""
FIXTURE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A fixture id (a manifest's, or ``--fixture``'s): a built-in one wins over a same-named directory."""
EARLY_MAX_FILES = 10_000
"""``early_shared`` gives up on a larger tree (the loader refuses it anyway)."""


def shareable(entries: Iterable[tuple[str, int, bool]], touched: Collection[str]) -> list[str]:
    """The highest untouched subtrees worth sharing, from ``(relative path, size, is a symlink)`` per file."""
    if any(not t or t in (".", "/") for t in touched):
        return []
    blocked: set[str] = set()  # touched paths and every directory above one
    for path in touched:
        parts = path.strip("/").split("/")
        blocked.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    files: dict[str, int] = {}
    size: dict[str, int] = {}
    linked: set[str] = set()
    for rel, nbytes, is_link in entries:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            node = "/".join(parts[:i])
            files[node] = files.get(node, 0) + 1
            size[node] = size.get(node, 0) + nbytes
            if is_link:
                linked.add(node)
    shared: list[str] = []
    for node in sorted(files):
        if node in blocked or node in linked or any(node.startswith(p + "/") for p in shared):
            continue
        if files[node] >= SHARE_MIN_FILES or size[node] >= SHARE_MIN_BYTES:
            shared.append(node)
    return shared


def early_shared(spec: str) -> list[tuple[Path, str]]:
    """``(repo dir, subtree)`` pairs the verifier will likely share for ``--fixture spec``; [] when unsure.

    A built-in id names a small fixture (nothing to share). A directory is walked as the
    loader walks it (no symlink followed, tool caches skipped); anything the loader would
    refuse or that is unusual gives [].
    """
    builtin = Path(__file__).resolve().parent / "fixtures" / "builtin"
    try:
        if not spec or "\x00" in spec or (FIXTURE_ID.fullmatch(spec) and (builtin / spec / "fixture.toml").is_file()):
            return []
        candidate = Path(spec).expanduser()
        if not candidate.is_dir():
            return []
        repo = candidate.resolve() / "repo"
        entries: list[tuple[str, int, bool]] = []
        stack = [(str(repo), "")]
        while stack:
            directory, prefix = stack.pop()
            with os.scandir(directory) as it:
                for child in it:
                    st = child.stat(follow_symlinks=False)
                    rel = prefix + child.name
                    if stat.S_ISDIR(st.st_mode):
                        if child.name == ".git":
                            return []
                        if child.name not in IGNORED_DIR_NAMES:
                            stack.append((child.path, rel + "/"))
                    elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                        entries.append((rel, st.st_size if stat.S_ISREG(st.st_mode) else 0, stat.S_ISLNK(st.st_mode)))
                    else:
                        return []
                    if len(entries) > EARLY_MAX_FILES:
                        return []
    except (OSError, RuntimeError, ValueError):
        return []
    return [(repo, rel) for rel in shareable(entries, ())]
