"""Secrets passed to a provider by name never reach the evidence.

Redaction happens before anything is recorded: each event's data is redacted as it is
emitted (so the hash chain is over redacted lines and never needs rewriting), and before
the report is built every run-dir file is rewritten and every file name renamed so that
no secret value remains, then the report's own strings are redacted too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cto_harness.evidence._artifacts import evidence_walk
from cto_harness.evidence._atomic import atomic_write_bytes
from cto_harness.evidence._walk import Budget, Entry

REDACTED = "[redacted]"
MIN_SECRET_LEN = 4
"""Shorter values are not redacted (they would shred ordinary text)."""
_NEVER_REWRITTEN = frozenset({b".run.lock"})
"""Besides what is never an artifact (the chain is redacted as it is written) and the git
stores (an edit would corrupt them; their objects hold the agent's change, which
``patch.diff`` shows redacted)."""


@dataclass
class Redactor:
    secrets: Sequence[str] = field(default_factory=list)

    def _needles(self) -> list[str]:
        return sorted({s for s in self.secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._needles():
            value = value.replace(secret, REDACTED)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._needles():
            for needle in {secret.encode("utf-8", "surrogateescape")}:
                value = value.replace(needle, REDACTED.encode())
        return value

    def value(self, value: Any) -> Any:
        """``value`` (JSON-like) with every secret replaced in every string, keys included."""
        if not self._needles():
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def tree(self, run_dir: Path, budget: Budget | None = None) -> list[str]:
        """Rewrite contents and rename names under ``run_dir`` that hold a secret; return what changed.

        The walk is the artifact scan's bounded, no-follow one, in its order (the harness's
        evidence first, on its own budget): symlinks are never followed (their targets are
        renamed like names), files over the budget are left alone (and listed as skipped by
        the artifact scan).
        """
        needles = [n.encode("utf-8", "surrogateescape") for n in self._needles()]
        if not needles:
            return []
        changed: list[str] = []
        renames: list[bytes] = []
        entries = (e for _, section in evidence_walk(run_dir, budget, git_stores=False) for e in section)
        for entry in entries:
            if entry.rel in _NEVER_REWRITTEN:
                continue
            if any(n in entry.rel for n in needles):
                renames.append(entry.rel)
            path = Path(os.fsdecode(os.path.join(os.fsencode(run_dir), entry.rel)))
            try:
                if self._rewrite(path, entry, needles):
                    changed.append(os.fsdecode(entry.rel))
            except OSError:
                continue
        for rel in sorted(_with_parents(renames, needles), key=lambda r: r.count(b"/"), reverse=True):
            parent, _, name = rel.rpartition(b"/")
            base = os.path.join(os.fsencode(run_dir), parent) if parent else os.fsencode(run_dir)
            new = self.data(name)
            target = new
            for n in range(1, 1000):
                if not os.path.lexists(os.path.join(base, target)):
                    break
                target = new + b".%d" % n
            try:
                os.rename(os.path.join(base, name), os.path.join(base, target))
            except OSError:
                continue
            changed.append(os.fsdecode(rel))
        return changed

    def _rewrite(self, path: Path, entry: Entry, needles: list[bytes]) -> bool:
        if entry.kind == "symlink" and entry.target is not None and any(n in entry.target for n in needles):
            path.unlink()
            os.symlink(self.data(entry.target), path)
            return True
        if entry.kind == "file" and entry.skipped is None:
            data = _read_nofollow(path)
            if data is not None and any(n in data for n in needles):
                atomic_write_bytes(path, self.data(data), mode=(os.lstat(path).st_mode & 0o7777) | 0o200)
                return True
        return False


def _with_parents(rels: list[bytes], needles: list[bytes]) -> set[bytes]:
    """Every path component (file or dir) whose own name holds a secret."""
    found: set[bytes] = set()
    for rel in rels:
        parts = rel.split(b"/")
        for depth in range(1, len(parts) + 1):
            if any(n in parts[depth - 1] for n in needles):
                found.add(b"/".join(parts[:depth]))
    return found


def _read_nofollow(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()
