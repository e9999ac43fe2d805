"""JSON records for admission, written atomically (a half-written admission must never be trusted)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cto_harness.evidence import atomic_write_bytes


def dumps(obj: BaseModel | Mapping[str, Any]) -> str:
    """Stable, human-readable JSON for a record."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else dict(obj)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(path: Path, obj: BaseModel | Mapping[str, Any], *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, dumps(obj).encode("utf-8"), mode=mode)
