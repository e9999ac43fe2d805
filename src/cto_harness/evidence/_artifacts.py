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

Everything goes through bounded ``Walker``s, two budgets: the harness's own evidence
(``patch.diff``, ``grading/``, ``egress/``, ``baseline.git``, its named files in ``backend/``:
everything outside the sandbox-writable dirs) is walked first with one, the agent dirs
(``workspace/``, ``task/``, the rest of ``backend/``) after it with the other, so an agent
that floods its dirs cannot leave the harness's evidence unhashed. What a walk did not hash
is listed in ``report.artifacts_skipped`` with its size and why; harness evidence left
unhashed is also counted apart (``harness_skipped``): such a run cannot pass or verify.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from cto_harness.core import FailureClass
from cto_harness.evidence._gitcheck import read_head_nogit
from cto_harness.evidence._names import escape_name
from cto_harness.evidence._report import Artifact, SkippedArtifact
from cto_harness.evidence._walk import Budget, Entry, KnownDigest, Walker

UNLISTED = frozenset({"report.json", "events.jsonl", "attestation.dsse.json"})
"""Files that are not artifacts: the report, the chain it records separately, the signature over both."""
AGENT_DIRS = ("workspace", "task", "backend")
"""The sandbox-writable dirs of a run (``proc.wrap``'s writable binds); the rest only the harness writes."""
HARNESS_BACKEND_FILES = frozenset({
    "invocation.json", "stdout.txt", "stderr.txt",  # written by the runner before/while the agent runs
    "model-calls.jsonl", "model-server.jsonl",  # the egress ledger, the endpoint's log: installed after it exits
    "harness-error.txt", "job-error.txt", "events-torn-tail.bin", "provider-model-not-admitted.txt",
    "case-task.pristine.json",  # the Case task as the harness handed it over
    *(f"{cls}.txt" for cls in get_args(FailureClass)),  # a gate's or the runner's record of why (provider-timeout.txt)
})
"""The harness's own files in ``backend/``: hashed with its evidence (first, own budget), not the agent's."""
HARNESS_BACKEND_NAMES = frozenset(os.fsencode(n) for n in HARNESS_BACKEND_FILES)
MAX_HARNESS_SKIPPED_NAMED = 5
MAX_LISTED = 500
"""A top-level directory with more entries than this is summarised, not listed file by file."""
MAX_SKIPPED_LISTED = 200
"""Skipped entries named in the report; the count of the rest is given."""
HARNESS_GIT_STORES = frozenset({"baseline.git"})
"""Stores only the harness writes: their objects are checked by git, not re-hashed."""


@dataclass
class ArtifactScan:
    artifacts: dict[str, Artifact]
    skipped: list[SkippedArtifact] = field(default_factory=list)
    skipped_total: int = 0
    harness_skipped: list[str] = field(default_factory=list)
    """Harness-written evidence the walk did not hash (the first few, ``path (reason)``): a run with any fails."""
    harness_skipped_total: int = 0


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
    scan = ArtifactScan(artifacts={})
    for section, entries in evidence_walk(run_dir, budget, known=known):
        if section.harness:
            for entry in entries:
                if entry.skipped is not None:
                    scan.harness_skipped_total += 1
                    if len(scan.harness_skipped) < MAX_HARNESS_SKIPPED_NAMED:
                        scan.harness_skipped.append(f"{escape_name(entry.rel)} ({entry.skipped})")
        if section.summary is None:
            _add_listed(scan, entries, section.depth)
            continue
        prefix = os.fsencode(section.root) + b"/"
        summary = _summary(entries, prefix, kind=section.summary)
        if section.summary == "git":
            commit, tree = read_head_nogit(run_dir / section.root)
            summary = summary.model_copy(update={"commit": commit, "tree": tree})
        scan.artifacts[section.root + "/"] = summary
        _note_skipped(scan, entries)
    scan.artifacts = dict(sorted(scan.artifacts.items()))
    return scan


@dataclass(frozen=True)
class Section:
    """One part of a run dir's walk: whose it is, how it is recorded."""

    root: str
    """Below the run dir (``""``: the run dir itself, minus the agent dirs and git stores)."""
    harness: bool
    """Written only by the harness: walked first, with its own budget; anything skipped fails closed."""
    summary: str | None = None
    """``tree`` or ``git``: one entry for the whole section; None: listed, grouped below ``depth`` components."""
    depth: int = 1


def evidence_walk(run_dir: Path, budget: Budget | None = None, *, known: KnownDigest | None = None,
                  git_stores: bool = True) -> Iterator[tuple[Section, list[Entry]]]:
    """Walk ``run_dir`` section by section, harness-written evidence first; paths are below ``run_dir``.

    The harness's own evidence (everything outside the agent dirs, ``baseline.git``, and
    its named files in ``backend/``) shares one budget; the agent dirs share another that
    comes after, so no flood in an agent dir can leave the harness's evidence unhashed.
    ``git_stores=False`` leaves ``baseline.git`` and ``workspace/.git`` out (redaction).
    """
    own, agent = Walker(budget), Walker(budget)
    real_dirs = {n for n in (*AGENT_DIRS, *HARNESS_GIT_STORES) if _real_dir(run_dir / n)}
    top_skip = frozenset(os.fsencode(n) for n in (*UNLISTED, *real_dirs))
    yield Section("", harness=True), list(own.walk(run_dir, skip=top_skip))
    if "backend" in real_dirs:
        yield Section("backend", harness=True, depth=2), _prefixed(
            own.walk(run_dir / "backend", only=HARNESS_BACKEND_NAMES), b"backend/")
    if git_stores and "baseline.git" in real_dirs:
        yield Section("baseline.git", harness=True, summary="git"), _prefixed(
            own.walk(run_dir / "baseline.git", no_content_under=frozenset({b"objects"})), b"baseline.git/")
    if "workspace" in real_dirs:
        yield Section("workspace", harness=False, summary="tree"), _prefixed(
            agent.walk(run_dir / "workspace", skip=frozenset({b".git"}), known=_below(known, b"workspace/")),
            b"workspace/")
        if git_stores and _real_dir(run_dir / "workspace" / ".git"):
            yield Section("workspace/.git", harness=False, summary="git"), _prefixed(
                agent.walk(run_dir / "workspace" / ".git", known=_below(known, b"workspace/.git/")),
                b"workspace/.git/")
    if "task" in real_dirs:
        yield Section("task", harness=False), _prefixed(agent.walk(run_dir / "task"), b"task/")
    if "backend" in real_dirs:
        yield Section("backend", harness=False), _prefixed(
            agent.walk(run_dir / "backend", skip=HARNESS_BACKEND_NAMES), b"backend/")


def _real_dir(path: Path) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _prefixed(entries: Iterable[Entry], prefix: bytes) -> list[Entry]:
    return [Entry(rel=prefix + e.rel, kind=e.kind, size=e.size, sha256=e.sha256, target=e.target, skipped=e.skipped)
            for e in entries]


def _add_listed(scan: ArtifactScan, entries: list[Entry], depth: int) -> None:
    """Each entry its own artifact, or one summary per group (``depth`` leading components) too big to list."""
    groups: dict[bytes, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(b"/".join(entry.rel.split(b"/", depth)[:depth]), []).append(entry)
    for top, group in groups.items():
        if len(group) > MAX_LISTED and any(e.rel.count(b"/") >= depth for e in group):
            scan.artifacts[escape_name(top) + "/"] = _summary(group, top + b"/", kind="tree")
            _note_skipped(scan, group)
            continue
        for entry in group:
            _note_skipped(scan, [entry])
            scan.artifacts[escape_name(entry.rel)] = _artifact(entry)


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
