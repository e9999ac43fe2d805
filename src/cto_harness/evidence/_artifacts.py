"""Digests of every file in a run dir."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cto_harness.evidence._report import Artifact

UNLISTED = frozenset({"report.json", "events.jsonl", "attestation.dsse.json"})
"""Files that are not artifacts: the report, the chain it records separately, the signature over both."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def collect_artifacts(run_dir: Path) -> dict[str, Artifact]:
    """Hash every file under ``run_dir`` (symlinks recorded, never followed)."""
    artifacts: dict[str, Artifact] = {}
    for dirpath, dirnames, filenames in os.walk(run_dir, followlinks=False):
        base = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            path = base / name
            rel = path.relative_to(run_dir).as_posix()
            if rel in UNLISTED:
                continue
            if path.is_symlink():
                artifacts[rel] = Artifact(sha256=None, bytes=0, symlink=os.readlink(path))
            elif path.is_file():
                artifacts[rel] = Artifact(sha256=sha256_file(path), bytes=path.stat().st_size)
    return dict(sorted(artifacts.items()))
