"""Small shared helpers: digests, timestamps, provider-name checks."""

from __future__ import annotations

import os
import re
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

from cto_harness.supply_chain._errors import CatalogError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with a ``Z`` suffix (sortable as text at equal precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp(moment: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` for directory names."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_name(name: str) -> str:
    """Provider names become path components, so they are restricted to a safe alphabet."""
    if not NAME_RE.match(name) or ".." in name:
        raise CatalogError(
            f"invalid provider name {name!r}: use lowercase letters, digits, '.', '_' or '-'"
        )
    return name


def check_sha256(value: str, what: str = "sha256") -> str:
    value = value.strip().lower()
    if not SHA256_RE.match(value):
        raise CatalogError(f"{what} must be 64 hex characters, got {value!r}")
    return value


def force_rmtree(path: Path) -> None:
    """Delete a tree that may contain read-only dirs (the store, git objects)."""
    if not path.exists() and not path.is_symlink():
        return
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            p = Path(root, d)
            if not p.is_symlink():
                os.chmod(p, stat.S_IRWXU)
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, stat.S_IRWXU)
    shutil.rmtree(path)
