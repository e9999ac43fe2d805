"""Grading: the isolated verifier's judgement of the agent's patch, as the report records it."""

from __future__ import annotations

from pathlib import Path

from cto_harness.evidence import TestsBlock, preload_signing
from cto_harness.fixtures import Fixture
from cto_harness.proc import Sandbox
from cto_harness.runner._held_grader import HeldGrader
from cto_harness.runner._verifier import MAX_LISTED_MISSING, Verification, verify_change

Grade = Verification


def run_grading(fixture: Fixture, patch: bytes, out_dir: Path, sandbox: Sandbox, harness_home: Path,
                *, tag: str, held: HeldGrader | None = None) -> Grade:
    """Grade ``patch`` on a fresh pristine copy of ``fixture`` (never the agent's workspace)."""
    preload_signing()  # the report is signed next: import that code while the tests run
    return verify_change(fixture, patch, out_dir, sandbox, harness_home, tag=tag, held=held)


def tests_block(grade: Grade) -> TestsBlock:
    result = grade.result
    return TestsBlock(
        ran=result is not None,
        passed=grade.passed,
        exit_code=result.exit_code if result else None,
        timed_out=result.timed_out if result else False,
        timeout_s=grade.timeout_s,
        duration_s=round(result.duration_s, 6) if result else None,
        counts=grade.counts,
        tampered_files=grade.dropped,
        command=grade.argv,
        expected=len(grade.expected) if grade.expected_source else None,
        expected_source=grade.expected_source,
        passed_ids=len(grade.passed_ids) if result else None,
        missing=grade.missing[:MAX_LISTED_MISSING],
        dropped_changes=grade.dropped,
    )
