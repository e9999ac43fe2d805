"""Who ran, with which model, at what cost: one definition used by providers and the report alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from cto_harness.core._vocab import FailureClass


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderInfo(_Frozen):
    name: str
    executable: str | None = None
    sha256: str | None = None
    """Digest observed immediately before exec (or at preflight when nothing ran)."""
    admission: dict[str, Any] | None = None
    """The admission record (source, pin, expected digest), null for fake/unadmitted."""
    version: str | None = None


class ModelInfo(_Frozen):
    provider: str | None = None
    model: str | None = None
    admitted: bool = False
    admitted_by: str | None = None
    """"env", "flag", "policy" or "builtin" (the fake lane needs no model)."""
    base_url: str | None = None


class Usage(_Frozen):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    calls: int | None = None


@dataclass(frozen=True)
class Blocked:
    """A pre-start gate that failed: the run is blocked and no provider process starts."""

    failure_class: FailureClass
    reason: str
    evidence_file: str
    """File name written under backend/, e.g. ``provider-unavailable.txt``."""
