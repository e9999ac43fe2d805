"""The provider contract: a provider describes what to run; the runner runs it.

A provider never starts processes or writes report files. It answers three questions:
may this run start (``preflight``), what exactly runs (``prepare``), and what did the
provider say happened (``interpret``). Everything else (process groups, timeouts,
output caps, digests before exec, diffs, grading, the report) belongs to the runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cto_harness.core import Blocked, FailureClass, HarnessConfig, Lane, ModelInfo, ProcessResult, ProviderInfo, Usage

if TYPE_CHECKING:
    from cto_harness.fixtures import Fixture

__all__ = ["Blocked", "FailureClass", "Lane", "ModelInfo", "ProcessResult", "ProviderInfo", "Usage"]


class ProviderSettingError(ValueError):
    """A ``CTO_HARNESS_<P>_*`` setting is present but unusable: the run is blocked, not a bug."""


@dataclass(frozen=True)
class RunOptions:
    """What the operator asked for on the command line (None = not given)."""

    scenario: str | None = None
    model_provider: str | None = None
    model: str | None = None
    timeout_s: float | None = None
    unadmitted: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunContext:
    """Everything a provider may look at for one run; paths are inside the run dir."""

    run_id: str
    run_dir: Path
    workspace: Path
    task_dir: Path
    backend_dir: Path
    fixture: Fixture
    options: RunOptions
    environ: Mapping[str, str]
    """Snapshot of the caller's environment: read settings from here, never pass it on whole."""
    config: HarnessConfig
    harness_home: Path


@dataclass(frozen=True)
class Gate:
    """The answer of ``preflight``: who would run, with which model, and whether it may."""

    provider: ProviderInfo
    model: ModelInfo
    lane: Lane
    blocked: Blocked | None = None
    also_blocked: tuple[Blocked, ...] = ()
    """Gates that failed too, after ``blocked`` (which decides): each writes its evidence file."""


@dataclass(frozen=True)
class Invocation:
    """Exactly what the runner starts: argv list, cwd, the complete child environment."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    timeout_s: float
    expected_sha256: str | None = None
    """When set, the runner re-hashes ``argv[0]`` immediately before exec and blocks on mismatch."""
    secrets: Sequence[str] = ()
    """Values redacted from every evidence file (credential values passed by name)."""
    process_event: str = "provider_process_started"
    state_dirs: Mapping[str, str] = field(default_factory=dict)
    """Workspace-relative provider state dirs -> backend-relative evidence dir.

    The runner copies them into backend/ and excludes them from the patch."""


@dataclass(frozen=True)
class Outcome:
    """What the provider's own protocol said. It never decides a pass on its own."""

    failure_class: FailureClass | None
    reasons: tuple[str, ...] = ()
    agent_result: dict[str, Any] | None = None
    usage: Usage | None = None


class Provider(Protocol):
    """A provider adapter. Implementations do not inherit from this; it types them."""

    name: str

    def preflight(self, ctx: RunContext) -> Gate:
        """Check availability, admission and model admission; start nothing."""
        ...

    def prepare(self, ctx: RunContext, gate: Gate) -> Invocation:
        """Write task files and isolated data dirs; return what to run."""
        ...

    def interpret(self, ctx: RunContext, invocation: Invocation, result: ProcessResult) -> Outcome:
        """Read the provider's completion signal from its output and state."""
        ...
