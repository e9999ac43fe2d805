"""Turning a run's accumulated state into ``report.json``: the one place a report is written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cto_harness import __version__
from cto_harness.core import harness_home
from cto_harness.evidence import (
    ArtifactScan,
    BackendBlock,
    ChangesBlock,
    EventLog,
    EventsBlock,
    FixtureRef,
    HarnessBlock,
    ModelBlock,
    NetworkBlock,
    ProviderBlock,
    Redactor,
    Report,
    SigningKey,
    TestsBlock,
    UsageBlock,
    UsageReport,
    atomic_write_bytes,
    atomic_write_text,
    collect_artifacts,
    json_safe,
    load_or_create_key,
    utc_now,
    write_attestation,
)

HARNESS_ERROR_FILE = "backend/harness-error.txt"


@dataclass
class RunState:
    """Everything learned so far in one run; mutated by the pipeline stages."""

    run_id: str
    run_dir: Path
    started_at: str
    fixture: FixtureRef
    provider: ProviderBlock
    lane: str
    t0: float = field(default_factory=time.monotonic)
    model: ModelBlock = field(default_factory=ModelBlock)
    verdict: str | None = None
    failure_class: str | None = None
    reasons: list[str] = field(default_factory=list)
    backend: BackendBlock = field(default_factory=BackendBlock)
    agent_result: dict[str, Any] | None = None
    usage: UsageBlock | None = None
    """The provider's own (reported) figures."""
    measured_usage: UsageBlock | None = None
    network: NetworkBlock | None = None
    changes: ChangesBlock = field(default_factory=ChangesBlock)
    tests: TestsBlock = field(default_factory=TestsBlock)
    secrets: list[str] = field(default_factory=list)
    duration_s: float | None = None
    harness_home: Path | None = None
    """Where the evidence signing key lives (None: from the process environment)."""
    known_digest: Callable[[bytes, os.stat_result], str | None] | None = None
    """Files of ``workspace/`` (and its ``.git``) the harness can vouch for by their stat, by path below the run
    dir (``runner._workspace.vouched_digests``)."""

    def decide(self, verdict: str, failure_class: str | None, *reasons: str) -> None:
        """Set the verdict once; the first decision stands (a later stage cannot overturn it).

        The deciding reasons go first in ``reasons``; a later stage's reasons are appended.
        """
        if self.verdict is None:
            self.verdict = verdict
            self.failure_class = failure_class
            self.reasons[:0] = [r for r in reasons if r]
        else:
            self.reasons.extend(r for r in reasons if r)

    def overrule(self, verdict: str, failure_class: str, reason: str) -> None:
        """Replace any verdict (an interrupt, a harness bug); its reason goes first."""
        self.verdict, self.failure_class = verdict, failure_class
        self.reasons.insert(0, reason)

    def record_harness_error(self, exc: BaseException) -> None:
        """A harness bug: verdict error, traceback kept as evidence."""
        text = "".join(traceback.format_exception(exc))
        path = self.run_dir / HARNESS_ERROR_FILE
        with contextlib.suppress(OSError):  # the report still says what happened
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        self.overrule("error", "harness-error", f"harness error: {type(exc).__name__}: {exc}".splitlines()[0][:500])


def harness_block() -> HarnessBlock:
    return HarnessBlock(version=__version__, python=sys.version.split()[0], platform=_platform())


def _platform() -> str:
    """``platform.platform()``'s string on glibc Linux, without what it costs on every run.

    ``platform.platform()`` starts ``uname -p`` (a process outside ``cto_harness.proc``) and
    reads the whole interpreter binary to find the libc version; ``os.uname`` and confstr
    give the same answer here. Elsewhere it falls back to ``platform.platform()``.
    """
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else None
    uname = os.uname()
    if uname.sysname != "Linux" or not libc:
        return platform.platform()
    return f"{uname.sysname}-{uname.release}-{uname.machine}-with-{libc.replace(' ', '')}"


def redact_text(text: str, secrets: list[str]) -> str:
    return Redactor(secrets).text(text)


def _build_report(state: RunState, events: EventLog) -> Report:
    scan = collect_artifacts(state.run_dir, known=state.known_digest)
    _check_own_evidence(state, scan)
    report = Report(
        run_id=state.run_id,
        lane=state.lane,  # type: ignore[arg-type]
        started_at=state.started_at,
        finished_at=utc_now(),
        duration_s=round(state.duration_s if state.duration_s is not None else time.monotonic() - state.t0, 6),
        fixture=state.fixture,
        provider=state.provider,
        model=state.model,
        verdict=state.verdict or "error",  # type: ignore[arg-type]
        failure_class=state.failure_class if state.verdict else "harness-error",  # type: ignore[arg-type]
        reasons=state.reasons or ["no verdict was reached (harness error)"],
        backend=state.backend,
        agent_result=state.agent_result,
        usage=UsageReport(measured=state.measured_usage, reported=state.usage),
        network=state.network,
        changes=state.changes,
        tests=state.tests,
        artifacts=scan.artifacts,
        artifacts_skipped=scan.skipped,
        artifacts_skipped_total=scan.skipped_total,
        events=EventsBlock(count=events.count, head_sha256=events.head),
        harness=harness_block(),
    )
    # Names and option values are the agent's or the operator's bytes: escape what JSON
    # cannot carry, and take out every secret, before anything is written.
    return Report.model_validate(json_safe(Redactor(state.secrets).value(report.model_dump())))


def _check_own_evidence(state: RunState, scan: ArtifactScan) -> None:
    """Fail closed: a run whose own evidence is not hashed, or whose patch is not the one computed, is an error."""
    failures = []
    if scan.harness_skipped_total:
        failures.append(f"evidence over budget: {scan.harness_skipped_total} harness-written evidence file(s) "
                        f"not hashed ({', '.join(scan.harness_skipped)}); verify will fail")
    patch = scan.artifacts.get("patch.diff")
    if patch is not None and (patch.sha256 is None or patch.sha256 != state.changes.patch_sha256):
        failures.append(f"patch.diff on disk (sha256 {patch.sha256}) is not the patch the harness computed "
                        f"(sha256 {state.changes.patch_sha256}); verify will fail")
    for reason in failures:
        if state.verdict == "error":  # already failed (a harness error, an interrupt): its reason stays first
            state.reasons.append(reason)
        else:
            state.overrule("error", "harness-error", reason)


def write_report(state: RunState, events: EventLog) -> Report:
    """Write report.json atomically, then the ``report_written`` event naming its digest.

    If the state cannot be turned into a valid report (a harness bug), the bug itself
    becomes the report: verdict error, class harness-error.
    """
    Redactor(state.secrets).tree(state.run_dir)
    key = None
    try:
        key = load_or_create_key(state.harness_home or harness_home(os.environ))
    except (OSError, ValueError) as exc:
        state.record_harness_error(exc)
        state.reasons.append("the evidence could not be signed (no attestation.dsse.json): verify will fail")
    try:
        report = _build_report(state, events)
    except Exception as exc:
        state.record_harness_error(exc)
        state.agent_result = None
        state.verdict, state.failure_class = "error", "harness-error"
        report = _build_report(state, events)
    data = (report.model_dump_json(indent=2) + "\n").encode("utf-8")
    events.sync()  # the chain the report names is on disk before the report is
    atomic_write_bytes(state.run_dir / "report.json", data)
    report_sha256 = hashlib.sha256(data).hexdigest()
    events.emit(
        "report_written",
        report_sha256=report_sha256,
        verdict=report.verdict,
        failure_class=report.failure_class,
    )
    if key is not None:
        sign_run(state.run_dir, key, report, report_sha256, events)
    return report


def sign_run(run_dir: Path, key: SigningKey, report: Report, report_sha256: str, events: EventLog) -> None:
    """Write attestation.dsse.json over the report, the patch and the whole event chain.

    ``patch.diff`` is a subject whenever the harness wrote one, with the digest it computed
    (``changes.patch_sha256``), never one read back from the run dir.
    """
    subjects = {"report.json": report_sha256}
    if report.changes.patch_sha256 is not None:  # the digest the harness computed as it wrote patch.diff
        subjects["patch.diff"] = report.changes.patch_sha256
    write_attestation(run_dir, key, subjects, {
        "run_id": report.run_id,
        "verdict": report.verdict,
        "failure_class": report.failure_class,
        "fixture_digest": report.fixture.digest,
        "provider_digest": report.provider.sha256,
        "events_head": events.head,
        "events_count": events.count,
    })
