"""Re-check a finished run dir against its report: signature, digests, file set, hash chain."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from cto_harness.core import harness_home
from cto_harness.evidence._artifacts import HARNESS_GIT_STORES, collect_artifacts
from cto_harness.evidence._attest import (
    ATTESTATION_FILE,
    AttestationError,
    home_public_key,
    read_attestation,
    subject_digests,
)
from cto_harness.evidence._events import ChainReading, read_events
from cto_harness.evidence._gitcheck import fsck
from cto_harness.evidence._report import Artifact, Report

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass
class VerifyResult:
    ok: bool
    problems: list[str] = field(default_factory=list)
    """Every mismatch found, the first one first."""
    checked_artifacts: int = 0


def load_report(run_dir: Path) -> Report:
    """Read and validate ``report.json``.

    Raises:
        FileNotFoundError: no report.
        ValueError: the report is not valid JSON or does not match the schema.
    """
    return _parse_report((run_dir / "report.json").read_bytes())


def _parse_report(raw: bytes) -> Report:
    try:
        return Report.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"report.json does not match the schema: {exc.errors()[0]['msg']}") from exc


def verify_run(run_dir: Path, public_key: Ed25519PublicKey | None = None, *,
               home: Path | None = None) -> VerifyResult:
    """Check RUN_DIR against its report, its event chain and its signed attestation.

    ``public_key`` is the key that must have signed the run; by default the signing key of
    ``home`` (default: the harness home of this process). No key at all fails closed.
    """
    run_dir = Path(os.path.abspath(run_dir))  # git runs with its own cwd: a relative path must not change the answer
    if public_key is None:
        try:
            public_key = home_public_key(home or harness_home(os.environ))
        except ValueError:
            public_key = None
    problems: list[str] = []
    report_path = run_dir / "report.json"
    if not report_path.is_file():
        return VerifyResult(ok=False, problems=[f"{report_path}: missing report.json"])
    raw_report = report_path.read_bytes()  # once: the bytes checked are the bytes hashed against the signature
    try:
        report = _parse_report(raw_report)
    except ValueError as exc:
        return VerifyResult(ok=False, problems=[f"report.json: {exc}"])

    scan = collect_artifacts(run_dir)
    actual = scan.artifacts
    for rel, recorded in report.artifacts.items():
        found = actual.get(rel)
        if found is None:
            problems.append(f"{rel}: removed (listed in the report, not on disk)")
        elif found != recorded:
            problems.append(_altered(rel, recorded, found))
    problems.extend(
        f"{rel}: added (on disk, not listed in the report)"
        for rel in actual
        if rel not in report.artifacts
    )
    if (scan.skipped, scan.skipped_total) != (report.artifacts_skipped, report.artifacts_skipped_total):
        problems.append("artifacts_skipped: what the bounded walk skips differs from the report")
    if scan.harness_skipped_total:
        problems.append(f"harness evidence not hashed: {scan.harness_skipped_total} file(s) over its own walk "
                        f"budget ({', '.join(scan.harness_skipped)}): an edit there would not be detected")
    problems.extend(_verify_git_stores(run_dir, report))
    report_sha256 = hashlib.sha256(raw_report).hexdigest()
    events_path = run_dir / "events.jsonl"
    chain = read_events(events_path) if events_path.is_file() else None  # read once, checked twice
    problems.extend(_verify_events(chain, report, report_sha256))
    problems.extend(_verify_attestation(run_dir, chain, report, report_sha256, public_key, actual.get("patch.diff")))
    return VerifyResult(ok=not problems, problems=problems, checked_artifacts=len(report.artifacts))


def _altered(rel: str, recorded: Artifact, found: Artifact) -> str:
    if recorded.kind in ("tree", "git"):
        return (f"{rel}: altered (listing digest {recorded.sha256} of {recorded.files} entries in report, "
                f"{found.sha256} of {found.files} on disk)")
    if (recorded.commit, recorded.tree) != (found.commit, found.tree):
        return f"{rel}: altered (HEAD {recorded.commit} tree {recorded.tree} in report, {found.commit} {found.tree})"
    return f"{rel}: altered (sha256 {recorded.sha256} in report, {found.sha256} on disk)"


def _verify_git_stores(run_dir: Path, report: Report) -> list[str]:
    """Objects of harness-only git stores are listed by name and size: git checks their content."""
    problems = []
    for name in HARNESS_GIT_STORES:
        recorded = report.artifacts.get(name + "/")
        if recorded is None or recorded.kind != "git":
            continue
        complaint = fsck(run_dir / name)
        if complaint is not None:
            problems.append(f"{name}/: git fsck fails: {complaint}")
    return problems


def _verify_events(chain: ChainReading | None, report: Report, report_sha256: str) -> list[str]:
    if chain is None:
        return ["events.jsonl: removed"]
    if chain.error:
        return [chain.error]
    if chain.torn_tail:
        return ["events.jsonl: trailing bytes after the last complete event"]
    if chain.count != report.events.count + 1:
        return [
            f"events.jsonl: {chain.count} events, report expects {report.events.count} "
            "plus report_written"
        ]
    prefix_head = chain.events[-1]["prev_sha256"]
    if prefix_head != report.events.head_sha256:
        return ["events.jsonl: chain head does not match the report"]
    last = chain.events[-1]
    if last.get("event") != "report_written":
        return ["events.jsonl: last event is not report_written"]
    data = last.get("data")
    if not isinstance(data, dict):
        return ["events.jsonl: report_written event has no data"]
    if data.get("report_sha256") != report_sha256:
        return ["report.json: altered (its sha256 differs from the report_written event)"]
    if (data.get("verdict"), data.get("failure_class")) != (report.verdict, report.failure_class):
        return [f"report.json: verdict {report.verdict}/{report.failure_class} differs from the report_written "
                f"event's {data.get('verdict')}/{data.get('failure_class')}"]
    return []


def _verify_patch(run_dir: Path, report: Report, signed: str | None, found: Artifact | None) -> list[str]:
    """``patch.diff``, when there is one, is signed with the digest the harness computed: the report, the walk and
    the file on disk must all agree with it (an unhashed or unsigned patch fails, never compares None with None)."""
    patch = run_dir / "patch.diff"
    if signed is None and report.changes.patch_sha256 is None and found is None \
            and not (patch.exists() or patch.is_symlink()):
        return []  # the run made no patch
    if signed is None:
        return ["patch.diff: not a signed subject of the attestation"]
    problems = []
    if report.changes.patch_sha256 != signed:
        problems.append(f"report.json: changes.patch_sha256 {report.changes.patch_sha256} differs from the signed "
                        "patch.diff digest")
    recorded = report.artifacts.get("patch.diff")
    if recorded is None or recorded.sha256 != signed or found is None or found.sha256 != signed:
        problems.append("patch.diff: differs from the signed attestation")
    return problems


def _verify_attestation(run_dir: Path, chain: ChainReading | None, report: Report, report_sha256: str,
                        public_key: Ed25519PublicKey | None, patch_found: Artifact | None) -> list[str]:
    if public_key is None:
        return [f"{ATTESTATION_FILE}: no public key to check the signature with "
                "(pass --pubkey FILE, or run where the harness home holds the key)"]
    try:
        parsed = read_attestation(run_dir / ATTESTATION_FILE, public_key)
    except AttestationError as exc:
        return [str(exc)]
    problems: list[str] = []
    subjects = subject_digests(parsed)
    if subjects.get("report.json") != report_sha256:
        problems.append("report.json: altered (its sha256 differs from the signed attestation)")
    problems.extend(_verify_patch(run_dir, report, subjects.get("patch.diff"), patch_found))
    predicate = parsed["predicate"]
    expected = {
        "run_id": report.run_id,
        "verdict": report.verdict,
        "failure_class": report.failure_class,
        "fixture_digest": report.fixture.digest,
        "provider_digest": report.provider.sha256,
    }
    problems.extend(f"report.json: {name} {value!r} differs from the signed attestation's {predicate.get(name)!r}"
                    for name, value in expected.items() if predicate.get(name) != value)
    signed = (predicate.get("events_head"), predicate.get("events_count"))
    if chain is not None and (chain.head, chain.count) != signed:
        problems.append("events.jsonl: the chain differs from the one the attestation signed "
                        f"(head {chain.head[:16]}…, signed {str(signed[0])[:16]}…)")
    return problems


