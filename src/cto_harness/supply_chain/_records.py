"""The JSON records admission writes under the harness home.

Each record is a pydantic model with a ``schema_version`` so a reader can tell what it
holds; each is written atomically. Source URLs in every record are already redacted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SYNTHETIC_MARKER = "(synthetic)"
"""What a synthetic test double (the lab's ``ca``) prints when it identifies itself."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolStatus(_Record):
    """One required build tool as found (or not) on this machine."""

    name: str
    min_version: str | None = None
    found: bool
    path: str | None = None
    version: str | None = None
    """Numeric version parsed from the tool's output (``20.19.5``)."""
    version_output: str | None = None
    meets_minimum: bool | None = None
    bootstrapped: bool = False
    """Found under ``<home>/toolchains/`` rather than the caller's PATH."""
    ok: bool
    detail: str
    """Human summary, e.g. ``node v20.19.5 present`` or ``bun missing``."""


class ToolchainReport(_Record):
    schema_version: Literal["cto-harness.toolchain/1"] = "cto-harness.toolchain/1"
    provider: str
    checked_at: str
    tools: list[ToolStatus]
    ok: bool
    summary: str
    bootstrapped_dirs: list[str] = Field(default_factory=list)
    """Bootstrapped bin dirs searched before the caller's PATH (and prepended for builds)."""


class BootstrapRecord(_Record):
    """A toolchain installed reversibly under the harness home (``toolchain.json``)."""

    schema_version: Literal["cto-harness.toolchain-bootstrap/1"] = (
        "cto-harness.toolchain-bootstrap/1"
    )
    tool: str
    version: str
    prefix: str
    bin_dir: str
    command: list[str]
    source: str
    installed_at: str
    verified_version_output: str
    log: str


class DiscoveryRecord(_Record):
    """``discovery.json``: the source was cloned and the pin verified. Evidence only."""

    schema_version: Literal["cto-harness.discovery/1"] = "cto-harness.discovery/1"
    name: str
    source_url: str
    pin: str
    head: str
    head_matches_pin: bool
    tree: str
    commit_date: str
    commit_subject: str
    checkout: str
    discovered_at: str
    git_version: str
    executable: Literal[False] = False
    note: str = (
        "discovery clone: evidence only; nothing is ever built or executed from it "
        "(builds use a separate fresh checkout)"
    )


class ArtifactInfo(_Record):
    path: str
    """Path relative to the build checkout (the catalog's ``artifact``)."""
    absolute: str
    """The kept copy (``<build dir>/artifact/<file>``): the checkout is reused by the next
    build of the same pin, so the artifact is copied out of it."""
    built_path: str | None = None
    """Where the build wrote it (inside the pin-derived checkout)."""
    sha256: str
    bytes: int
    symlink_target: str | None = None


class LockfileInfo(_Record):
    path: str
    """Relative to the checkout (the catalog's ``lockfile``)."""
    sha256: str | None
    """None when the checkout has no such file (recorded, and the install step decides)."""


class Reproducibility(_Record):
    """``provider build --verify-reproducible``: two builds of one pin, fresh checkouts."""

    reproducible: bool
    digests: list[str]
    """The artifact digest of each build, in build order."""
    builds: list[str]
    """The two build dirs."""


class BuildRecord(_Record):
    """``build.json``: one build from the pin, successful or not (failures are kept)."""

    schema_version: Literal["cto-harness.build/1"] = "cto-harness.build/1"
    name: str
    source_url: str
    pin: str
    head: str | None = None
    cloned_from: str
    """``discovery`` (the local discovery clone) or ``source`` (the source URL)."""
    pinned_by: Literal["operator", "discovery", "catalog"] = "catalog"
    """Who chose source + pin: ``--source/--pin``, the latest discovery, or the catalog."""
    build_dir: str
    checkout: str
    command: list[str]
    resolved_command: str | None = None
    install_command: list[str] | None = None
    install_exit_code: int | None = None
    lockfile: LockfileInfo | None = None
    source_date_epoch: int | None = None
    """``SOURCE_DATE_EPOCH`` given to the build: the pinned commit's committer time."""
    timeout_s: float
    started_at: str
    finished_at: str
    duration_s: float
    exit_code: int | None = None
    timed_out: bool = False
    log: str
    toolchain: ToolchainReport
    path_prepend: list[str] = Field(default_factory=list)
    modified_tracked_files: list[str] = Field(default_factory=list)
    untracked_files: list[str] = Field(default_factory=list)
    untracked_truncated: bool = False
    dirty: bool = False
    """True when the build changed tracked files (recorded, not hidden)."""
    artifact: ArtifactInfo | None = None
    reproducibility: Reproducibility | None = None
    """Set on the second build of ``--verify-reproducible``."""
    ok: bool
    failure: str | None = None


class IdentifyResult(_Record):
    argv: list[str]
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str
    """Combined stdout+stderr, capped."""
    output_truncated: bool
    patterns: list[str]
    matched: list[bool]
    ok: bool


class AdmissionRecord(_Record):
    """``admission.json``: these exact bytes may run as provider ``name``."""

    schema_version: Literal["cto-harness.admission/1"] = "cto-harness.admission/1"
    name: str
    sha256: str
    file_name: str
    path: str
    """The read-only stored copy: ``<home>/admitted/sha256/<digest>/<file_name>``."""
    bytes: int
    source_url: str
    pin: str
    built_here: bool
    """False when the binary was supplied: source and pin are then the catalog's claim."""
    build_command: list[str] | None = None
    build: BuildRecord | None = None
    build_record: str | None = None
    binary_origin: str
    toolchain: list[ToolStatus] | None = None
    identify: IdentifyResult
    expect_sha256: str | None = None
    known_digest_note: str | None = None
    """Set when the digest equals a catalog ``known_digests`` entry (informational)."""
    reproducible: bool | None = None
    """From the build's ``--verify-reproducible`` check; None when it was not checked."""
    reproducibility_digests: list[str] = Field(default_factory=list)
    """Both builds' digests when ``reproducible`` is set."""
    provenance: str
    admitted_at: str
    synthetic: bool = False
    """True: a test double admitted by the self-check lab (``health``, ``validate case``);
    its runs are never evidence of the real provider."""
    revoked: bool = False
    revoked_at: str | None = None
    revoked_reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Records older than ``synthetic``: a double that identified itself as synthetic is one."""
        if isinstance(data, dict) and "synthetic" not in data:
            identify = data.get("identify")
            output = identify.get("output") if isinstance(identify, dict) else None
            data = {**data, "synthetic": isinstance(output, str) and SYNTHETIC_MARKER in output}
        return data


class VerifyEntry(_Record):
    sha256: str
    path: str
    observed_sha256: str | None
    ok: bool
    revoked: bool
    error: str | None = None


class VerifyReport(_Record):
    schema_version: Literal["cto-harness.verify/1"] = "cto-harness.verify/1"
    name: str
    checked_at: str
    entries: list[VerifyEntry]
    ok: bool
