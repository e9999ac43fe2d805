"""Who ran, with which model, at what cost: one definition used by providers and the report alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cto_harness.core._vocab import FailureClass


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


AdmissionDict = Annotated[dict[str, Any], Field(json_schema_extra={"properties": {"synthetic": {
    "type": "boolean",
    "description": "True: a test double admitted by the self-check lab (health, validate case); the run is "
                   "never evidence of the real provider. Absent from records older than the field.",
}}})]
"""An admission record as a dict (the supply chain owns its model); the schema names ``synthetic``."""


class ProviderInfo(_Frozen):
    name: str
    executable: str | None = None
    sha256: str | None = None
    """Digest observed immediately before exec (or at preflight when nothing ran)."""
    admission: AdmissionDict | None = None
    """The admission record (source, pin, expected digest), null for fake/unadmitted."""
    version: str | None = None

    def synthetic_note(self) -> str | None:
        """The reason a run of a synthetic admission carries in its report; None for any other run."""
        if self.admission is None or self.admission.get("synthetic") is not True:
            return None
        return f"synthetic provider admitted by the self-check lab: not evidence of real {self.name}"


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
