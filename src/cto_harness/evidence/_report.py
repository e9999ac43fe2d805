"""``report.json``: the Harness Evidence Interface. Consumers read this file only.

WARNING: field order is part of the format (it is the order in the written file).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from cto_harness.core import EXIT_CODES, FailureClass, ModelInfo, ProviderInfo, Usage, Verdict

SCHEMA_VERSION: Literal["cto-harness.report/2"] = "cto-harness.report/2"
"""/2: ``usage`` became {measured, reported} and ``network`` was added; /1 reports are migrated on load."""

FailureClassName = FailureClass
ProviderBlock = ProviderInfo
ModelBlock = ModelInfo
UsageBlock = Usage
__all__ = ["EXIT_CODES", "SCHEMA_VERSION", "FailureClassName", "ModelBlock", "ProviderBlock", "UsageBlock", "Verdict"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FixtureRef(_Strict):
    id: str
    """Fixture id from its manifest (or the directory name when the manifest is invalid)."""
    digest: str | None
    """SHA-256 over the fixture's files; null when the fixture could not be read."""
    title: str | None = None
    builtin: bool = False


class StreamInfo(_Strict):
    bytes_total: int
    bytes_kept: int
    truncated: bool


class BackendBlock(_Strict):
    process_started: bool = False
    pid: int | None = None
    argv: list[str] | None = None
    exit_code: int | None = None
    """Raw return code; negative means killed by that signal."""
    timed_out: bool = False
    timeout_s: float | None = None
    duration_s: float | None = None
    interrupted: str | None = None
    """Signal that interrupted the harness during the run (e.g. "SIGTERM")."""
    sandbox: str | None = None
    """"bwrap" (filesystem read-only but workspace/, task/, backend/) or "none"."""
    stdout: StreamInfo | None = None
    stderr: StreamInfo | None = None
    killed_pids: list[int] = Field(default_factory=list)
    leftover_pids: list[int] = Field(default_factory=list)
    """Descendants still alive after the provider exited (killed by the harness)."""


class ChangesBlock(_Strict):
    files: list[str] = Field(default_factory=list)
    """Files changed against the baseline commit (agent commits included)."""
    patch_sha256: str | None = None
    patch_bytes: int = 0
    excluded: list[str] = Field(default_factory=list)
    """Provider state dirs kept as evidence and left out of the patch."""


class TestCounts(_Strict):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0


class TestsBlock(_Strict):
    ran: bool = False
    passed: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    timeout_s: float | None = None
    duration_s: float | None = None
    counts: TestCounts | None = None
    tampered_files: list[str] = Field(default_factory=list)
    """Changes the verifier did not apply (grading tests, test config): same as ``dropped_changes``."""
    command: list[str] | None = None
    expected: int | None = None
    """How many test node ids must pass (from the fixture manifest or its reference solution)."""
    expected_source: Literal["manifest", "reference"] | None = None
    passed_ids: int | None = None
    """How many distinct test node ids the verifier's result channel reported passed."""
    missing: list[str] = Field(default_factory=list)
    """Expected node ids not reported passed (at most 100 listed; see ``grading/verifier.json``)."""
    dropped_changes: list[str] = Field(default_factory=list)
    """Files of the patch the verifier did not apply: grading tests, test dirs, pytest/Python config."""


class Artifact(_Strict):
    sha256: str | None
    """Content digest; for a ``tree``/``git`` summary the digest of its sorted listing. Null for a
    symlink (its target is recorded instead) or a file left unhashed (see ``skipped``)."""
    bytes: int
    symlink: str | None = None
    """A symlink's target, escaped like every name (never followed)."""
    kind: Literal["file", "tree", "git", "special", "dir", "unknown"] = "file"
    """``tree``/``git``: a whole directory summarised as one entry (key ends with ``/``)."""
    files: int | None = None
    """Entries in a summarised tree."""
    commit: str | None = None
    """A git store's ``HEAD`` commit, read by harness-side git (``verify`` re-reads it)."""
    tree: str | None = None
    """A git store's ``HEAD`` tree."""
    skipped: str | None = None
    """Why the content was not hashed (``byte budget``, ``unreadable``, ...)."""


    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Write only what is set: 15,000 entries of nulls would be most of the report."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items()
                if k in ("sha256", "bytes") or (v is not None and not (k == "kind" and v == "file"))}


class SkippedArtifact(_Strict):
    """A file the bounded walk listed but did not hash, or a subtree it did not enter."""

    path: str
    bytes: int | None
    reason: str


class EventsBlock(_Strict):
    count: int
    """Events before ``report_written`` (which follows the report and names its digest)."""
    head_sha256: str


class UsageReport(_Strict):
    """Two sources of usage that must not be confused: the wire and the provider's word."""

    measured: UsageBlock | None = None
    """Counted by the harness's egress proxy from the responses on the wire (null: nothing was
    measured: no endpoint admitted, an https endpoint only tunnelled, or a run that never started)."""
    reported: UsageBlock | None = None
    """The provider's own figures as it printed them (null: it printed none)."""

    @property
    def best(self) -> UsageBlock | None:
        """The figures to count: measured on the wire when there are any, else the provider's own."""
        return self.measured if self.measured is not None else self.reported

    def disagreements(self) -> list[str]:
        """Figures both sides give that differ (``calls`` too, when the provider counts them)."""
        if self.measured is None or self.reported is None:
            return []
        out = []
        for name in ("calls", "input_tokens", "output_tokens"):
            wire, said = getattr(self.measured, name), getattr(self.reported, name)
            if wire is not None and said is not None and wire != said:
                out.append(f"{name}: measured {wire}, reported {said}")
        return out


class NetworkBlock(_Strict):
    """What the provider could reach and what crossed the egress proxy."""

    mode: Literal["isolated", "host"]
    """"isolated": own network namespace, the proxy is the only exit; "host": the operator chose no
    sandbox, so the proxy records and polices calls but cannot stop a provider going around it."""
    endpoint: str | None = None
    """The admitted endpoint (credentials redacted); null: no network at all in isolated mode."""
    calls: int = 0
    """Model calls forwarded (https: tunnelled connections)."""
    denied: int = 0
    """Requests the proxy refused (another model, a spent budget, another destination)."""
    ledger: str | None = None
    """Run-relative path of the call ledger (``backend/model-calls.jsonl``)."""
    endpoint_errors: dict[str, int] = Field(default_factory=dict)
    """Endpoint failures by kind (``HTTP 503``, ``connection refused``) and count."""


class HarnessBlock(_Strict):
    version: str
    python: str
    platform: str


class Report(_Strict):
    """One Stage 2 run, whatever happened in it."""

    schema_version: Literal["cto-harness.report/2"] = SCHEMA_VERSION
    run_id: str
    stage: Literal["stage2"] = "stage2"
    lane: Literal["fake", "real", "unadmitted"]
    """"unadmitted" runs are local experiments and never evidence."""
    started_at: str
    finished_at: str
    duration_s: float
    fixture: FixtureRef
    provider: ProviderBlock
    model: ModelBlock
    verdict: Verdict
    failure_class: FailureClassName | None
    reasons: list[str]
    backend: BackendBlock
    agent_result: dict[str, Any] | None = None
    usage: UsageReport = Field(default_factory=UsageReport)
    network: NetworkBlock | None = None
    """Null when no provider process was started."""
    changes: ChangesBlock
    tests: TestsBlock
    artifacts: dict[str, Artifact]
    """Every file of the run dir except report.json, events.jsonl and attestation.dsse.json;
    ``workspace/``, ``workspace/.git/`` and ``baseline.git/`` as one summary each. Keys are
    escaped names (non-UTF-8 bytes as ``\\xNN``, control characters escaped)."""
    artifacts_skipped: list[SkippedArtifact] = Field(default_factory=list)
    """What the bounded walk did not hash or enter, with its size (first 200)."""
    artifacts_skipped_total: int = 0
    events: EventsBlock
    harness: HarnessBlock

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Read /1 reports: their ``usage`` was the provider's own figures (or null)."""
        if isinstance(data, dict) and data.get("schema_version") == "cto-harness.report/1":
            usage = {"measured": None, "reported": data.get("usage")}
            data = {**data, "schema_version": SCHEMA_VERSION, "usage": usage}
        return data


def report_schema() -> dict[str, Any]:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://cto-harness.invalid/schema/report-2.json"
    return schema
