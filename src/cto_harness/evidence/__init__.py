"""The Harness Evidence Interface: report model, events chain, atomic writes, verify."""

from cto_harness.evidence._artifacts import collect_artifacts, sha256_file
from cto_harness.evidence._atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from cto_harness.evidence._events import EventLog, read_events, utc_now
from cto_harness.evidence._report import (
    EXIT_CODES,
    SCHEMA_VERSION,
    Artifact,
    BackendBlock,
    ChangesBlock,
    EventsBlock,
    FixtureRef,
    HarnessBlock,
    ModelBlock,
    NetworkBlock,
    ProviderBlock,
    Report,
    StreamInfo,
    TestCounts,
    TestsBlock,
    UsageBlock,
    UsageReport,
    report_schema,
)
from cto_harness.evidence._rundir import LOCK_NAME, RunDir, claim_run_dir, create_run_dir, is_locked
from cto_harness.evidence._verify import VerifyResult, load_report, verify_run

__all__ = [
    "EXIT_CODES",
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "Artifact",
    "BackendBlock",
    "ChangesBlock",
    "EventLog",
    "EventsBlock",
    "FixtureRef",
    "HarnessBlock",
    "ModelBlock",
    "NetworkBlock",
    "ProviderBlock",
    "Report",
    "RunDir",
    "StreamInfo",
    "TestCounts",
    "TestsBlock",
    "UsageBlock",
    "UsageReport",
    "VerifyResult",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "claim_run_dir",
    "collect_artifacts",
    "create_run_dir",
    "is_locked",
    "load_report",
    "read_events",
    "report_schema",
    "sha256_file",
    "utc_now",
    "verify_run",
]
