"""Digests of a run dir: the files an auditor reads one by one, bulky trees as summaries.

Outside the summarised trees every file is listed with its SHA-256 and size (a symlink by
its target, never followed). ``workspace/`` (the agent's final tree), ``workspace/.git``
and ``baseline.git`` are each one entry: a digest over the sorted listing of their files
(name, kind, size, content digest), their file count and bytes, and for a git store its
``HEAD`` commit and tree, read without running git (loose or packed ref, loose commit:
what the harness writes and a fresh repository holds; anything else records no tree).
Objects in ``baseline.git`` are content-addressed, so they are listed by
name and size and ``verify`` checks their content with ``git fsck``. At run time the
harness may vouch (``known``) for files of ``workspace/`` and ``workspace/.git`` it copied
there and the agent left untouched (their digest is reused, not re-read); ``verify``
re-hashes everything and must find the same digests. Any other top-level
directory with more than ``MAX_LISTED`` entries is summarised the same way, so an agent
that floods ``backend/`` cannot blow up the report.

Everything goes through one bounded ``Walker``: what it did not hash is listed in
``report.artifacts_skipped`` with its size and why.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cto_harness.evidence._gitcheck import read_head_nogit
from cto_harness.evidence._names import escape_name
from cto_harness.evidence._report import Artifact, SkippedArtifact
from cto_harness.evidence._walk import Budget, Entry, KnownDigest, Walker

UNLISTED = frozenset({"report.json", "events.jsonl", "attestation.dsse.json"})
"""Files that are not artifacts: the report, the chain it records separately, the signature over both."""
GIT_STORES = ("baseline.git", "workspace/.git")
TREES = ("workspace",)
MAX_LISTED = 500
"""A top-level directory with more entries than this is summarised, not listed file by file."""
MAX_SKIPPED_LISTED = 200
"""Skipped entries named in the report; the count of the rest is given."""
VOUCHABLE = frozenset({"workspace", "workspace/.git"})
"""Trees where the harness's ``known`` digests may stand in for reading a file."""
HARNESS_GIT_STORES = frozenset({"baseline.git"})
"""Stores only the harness writes: their objects are checked by git, not re-hashed."""


@dataclass
class ArtifactScan:
    artifacts: dict[str, Artifact]
    skipped: list[SkippedArtifact] = field(default_factory=list)
    skipped_total: int = 0


def sha256_file(path: Path) -> str:
    """Hash a file the operator named (an executable to admit); never used on agent-made paths."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def collect_artifacts(run_dir: Path, budget: Budget | None = None, known: KnownDigest | None = None) -> ArtifactScan:
    """List and hash ``run_dir`` within ``budget`` (see the module docstring).

    ``known`` vouches for files of ``workspace/`` (``workspace/.git`` included) by their
    lstat, given their path below ``run_dir``: the run's harness knows what it copied
    there and that the agent left it untouched. Such a file is not read, but counts against
    the byte budget as if it were, so ``verify``'s full re-hash lists the same set.
    """
    walker = Walker(budget)
    scan = ArtifactScan(artifacts={})
    summarised = {*GIT_STORES, *TREES}
    top_skip = frozenset(os.fsencode(n) for n in (*UNLISTED, *summarised) if "/" not in n)
    loose: list[Entry] = []
    for entry in walker.walk(run_dir, skip=top_skip):
        loose.append(entry)
    by_top: dict[bytes, list[Entry]] = {}
    for entry in loose:
        by_top.setdefault(entry.rel.split(b"/", 1)[0], []).append(entry)
    for top, entries in by_top.items():
        if len(entries) > MAX_LISTED and any(b"/" in e.rel for e in entries):
            scan.artifacts[escape_name(top) + "/"] = _summary(entries, top + b"/", kind="tree")
            _note_skipped(scan, entries)
            continue
        for entry in entries:
            _note_skipped(scan, [entry])
            scan.artifacts[escape_name(entry.rel)] = _artifact(entry)
    for name in (*TREES, *GIT_STORES):
        root = run_dir / name
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        git = name in GIT_STORES
        inner_skip = frozenset({b".git"}) if name == "workspace" else frozenset()
        no_content = frozenset({b"objects"}) if name in HARNESS_GIT_STORES else frozenset()
        prefix = os.fsencode(name) + b"/"
        entries = [Entry(rel=prefix + e.rel, kind=e.kind, size=e.size, sha256=e.sha256, target=e.target,
                         skipped=e.skipped)
                   for e in walker.walk(root, skip=inner_skip, no_content_under=no_content,
                                        known=_below(known, prefix) if name in VOUCHABLE else None)]
        summary = _summary(entries, prefix, kind="git" if git else "tree")
        if git:
            commit, tree = read_head_nogit(root)
            summary = summary.model_copy(update={"commit": commit, "tree": tree})
        scan.artifacts[name + "/"] = summary
        _note_skipped(scan, entries)
    scan.artifacts = dict(sorted(scan.artifacts.items()))
    return scan


def _below(known: KnownDigest | None, prefix: bytes) -> KnownDigest | None:
    """``known`` (paths below the run dir) for a walk rooted at ``prefix``."""
    if known is None:
        return None
    return lambda rel, st: known(prefix + rel, st)


def _artifact(entry: Entry) -> Artifact:
    if entry.kind == "symlink":
        return Artifact(sha256=None, bytes=0, symlink=escape_name(entry.target or b""))
    if entry.kind in ("special", "dir", "unknown"):
        return Artifact(sha256=None, bytes=entry.size or 0, kind=entry.kind, skipped=entry.skipped)  # type: ignore[arg-type]
    return Artifact(sha256=entry.sha256, bytes=entry.size or 0, skipped=entry.skipped)


def tree_digest(entries: Iterable[Entry], prefix: bytes) -> tuple[str, int, int]:
    """SHA-256 over the sorted listing below ``prefix``; also the file count and bytes."""
    digest = hashlib.sha256()
    count = total = 0
    for entry in sorted(entries, key=lambda e: e.rel):
        rel = entry.rel[len(prefix):] if entry.rel.startswith(prefix) else entry.rel
        detail = entry.sha256 or (b"->" + entry.target if entry.target is not None else b"") or b""
        if isinstance(detail, str):
            detail = detail.encode()
        digest.update(b"%s\0%s\0%d\0%s\0%s\n" % (rel, entry.kind.encode(), entry.size if entry.size is not None
                                                 else -1, detail, (entry.skipped or "").encode()))
        count += 1
        total += entry.size or 0
    return digest.hexdigest(), count, total


def _summary(entries: list[Entry], prefix: bytes, *, kind: str) -> Artifact:
    sha, count, total = tree_digest(entries, prefix)
    return Artifact(sha256=sha, bytes=total, kind=kind, files=count)  # type: ignore[arg-type]


def _note_skipped(scan: ArtifactScan, entries: Iterable[Entry]) -> None:
    for entry in entries:
        if entry.skipped is None:
            continue
        scan.skipped_total += 1
        if len(scan.skipped) < MAX_SKIPPED_LISTED:
            scan.skipped.append(SkippedArtifact(path=escape_name(entry.rel), bytes=entry.size,
                                                reason=entry.skipped))
