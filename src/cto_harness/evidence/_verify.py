"""Re-check a finished run dir against its report: digests, file set, hash chain."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from cto_harness.evidence._artifacts import collect_artifacts
from cto_harness.evidence._events import read_events
from cto_harness.evidence._report import Report


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
    raw = (run_dir / "report.json").read_bytes()
    try:
        return Report.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"report.json does not match the schema: {exc.errors()[0]['msg']}") from exc


def verify_run(run_dir: Path) -> VerifyResult:
    problems: list[str] = []
    report_path = run_dir / "report.json"
    if not report_path.is_file():
        return VerifyResult(ok=False, problems=[f"{report_path}: missing report.json"])
    try:
        report = load_report(run_dir)
    except ValueError as exc:
        return VerifyResult(ok=False, problems=[f"report.json: {exc}"])

    actual = collect_artifacts(run_dir)
    for rel, recorded in report.artifacts.items():
        found = actual.get(rel)
        if found is None:
            problems.append(f"{rel}: removed (listed in the report, not on disk)")
        elif found != recorded:
            problems.append(
                f"{rel}: altered (sha256 {recorded.sha256} in report, {found.sha256} on disk)"
            )
    problems.extend(
        f"{rel}: added (on disk, not listed in the report)"
        for rel in actual
        if rel not in report.artifacts
    )
    problems.extend(_verify_events(run_dir, report, hashlib.sha256(report_path.read_bytes()).hexdigest()))
    return VerifyResult(ok=not problems, problems=problems, checked_artifacts=len(report.artifacts))


def _verify_events(run_dir: Path, report: Report, report_sha256: str) -> list[str]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return ["events.jsonl: removed"]
    chain = read_events(path)
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
    if last.get("data", {}).get("report_sha256") != report_sha256:
        return ["report.json: altered (its sha256 differs from the report_written event)"]
    return []


