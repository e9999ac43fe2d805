"""The harness's own evidence: walked first on its own budget, ``patch.diff`` always signed as computed."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli_env, run_cli

from cto_harness.evidence import Budget, load_or_create_key, read_events, verify_run, write_attestation
from cto_harness.evidence._artifacts import HARNESS_BACKEND_FILES, collect_artifacts


def _run_dir(tmp_path: Path) -> Path:
    result = run_cli("run", "--runs-dir", str(tmp_path / "runs"), env=cli_env(tmp_path))
    assert result.run_dir is not None and result.report is not None, result.stderr
    assert result.report["verdict"] == "pass"
    return result.run_dir


def _resign(run_dir: Path, home: Path, *, subjects: Callable[[dict[str, str]], dict[str, str]],
            edit_report: Callable[[dict[str, Any]], None] = lambda report: None) -> None:
    """What a harness holding the key could sign: the report edited (the chain re-hashed to match), ``subjects``."""
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text())
    edit_report(report)
    data = (json.dumps(report, indent=2) + "\n").encode()
    report_path.write_bytes(data)
    events_path = run_dir / "events.jsonl"
    lines = events_path.read_bytes().split(b"\n")[:-1]
    last = json.loads(lines[-1])
    last["data"]["report_sha256"] = hashlib.sha256(data).hexdigest()
    lines[-1] = json.dumps(last, sort_keys=True, ensure_ascii=False).encode()
    events_path.write_bytes(b"\n".join(lines) + b"\n")
    envelope = json.loads((run_dir / "attestation.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    signed = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    signed["report.json"] = hashlib.sha256(data).hexdigest()
    chain = read_events(events_path)
    predicate = {**statement["predicate"], "events_head": chain.head, "events_count": chain.count}
    write_attestation(run_dir, load_or_create_key(home), subjects(signed), predicate)


def _without_patch(signed: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in signed.items() if k != "patch.diff"}


def test_a_patch_that_is_not_a_signed_subject_fails_verify(tmp_path: Path) -> None:
    """The old harness left an unhashed patch.diff out of the subjects, and verify compared None with None."""
    run_dir = _run_dir(tmp_path)
    home = tmp_path / "home"
    assert verify_run(run_dir, home=home).ok
    _resign(run_dir, home, subjects=_without_patch)
    problems = verify_run(run_dir, home=home).problems
    assert "patch.diff: not a signed subject of the attestation" in problems, problems


def test_a_report_patch_digest_other_than_the_signed_one_fails_verify(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    home = tmp_path / "home"

    def other_digest(report: dict[str, Any]) -> None:
        report["changes"]["patch_sha256"] = "0" * 64

    _resign(run_dir, home, subjects=lambda signed: signed, edit_report=other_digest)
    problems = verify_run(run_dir, home=home).problems
    assert problems == [f"report.json: changes.patch_sha256 {'0' * 64} differs from the signed patch.diff digest"]


@pytest.mark.parametrize("flooded", ["backend/flood", "task/flood", "workspace/flood"])
def test_a_flood_in_an_agent_dir_leaves_the_harness_evidence_hashed(tmp_path: Path, flooded: str) -> None:
    run = tmp_path / "run"
    for rel in ("patch.diff", "grading/verifier.json", "egress/ledger.jsonl", "backend/invocation.json",
                "backend/provider-timeout.txt", "backend/stdout.txt", ".run.lock"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(rel)
    (run / "task").mkdir()
    (run / flooded).mkdir(parents=True)
    for i in range(600):
        (run / flooded / f"f{i:04d}").touch()
    scan = collect_artifacts(run, Budget(max_files=100))
    assert scan.harness_skipped_total == 0
    assert scan.skipped_total >= 500
    for rel in ("patch.diff", "grading/verifier.json", "egress/ledger.jsonl", "backend/invocation.json",
                "backend/provider-timeout.txt", "backend/stdout.txt", ".run.lock"):
        assert scan.artifacts[rel].sha256 == hashlib.sha256(rel.encode()).hexdigest(), rel
    assert len(scan.artifacts) < 15  # the flood is one summary (or none), not 600 entries


def test_harness_evidence_over_its_budget_is_counted_apart(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "grading" / "many").mkdir(parents=True)
    for i in range(50):
        (run / "grading" / "many" / f"f{i:03d}").touch()
    (run / "backend" / "invocation.json").mkdir(parents=True)  # an agent turned the harness's file into a tree
    scan = collect_artifacts(run, Budget(max_files=20))
    assert scan.harness_skipped_total > 0
    assert scan.harness_skipped[0].endswith("(file budget)")


def test_the_runners_own_backend_files_are_harness_evidence() -> None:
    from cto_harness.egress._ledger import LEDGER_NAME
    from cto_harness.jobs._local import JOB_ERROR_FILE
    from cto_harness.providers._client_common import MODEL_SERVER_EVIDENCE
    from cto_harness.providers._gates import MODEL_NOT_ADMITTED_FILE
    from cto_harness.providers.case._task import PRISTINE_TASK_FILE
    from cto_harness.runner._finalize import HARNESS_ERROR_FILE
    from cto_harness.runner._recover import TORN_TAIL_FILE

    names = {LEDGER_NAME, MODEL_SERVER_EVIDENCE, MODEL_NOT_ADMITTED_FILE, PRISTINE_TASK_FILE,
             JOB_ERROR_FILE.removeprefix("backend/"), HARNESS_ERROR_FILE.removeprefix("backend/"),
             TORN_TAIL_FILE.removeprefix("backend/"), "invocation.json", "stdout.txt", "stderr.txt",
             "provider-timeout.txt", "provider-unavailable.txt", "provider-digest-mismatch.txt"}
    assert names <= HARNESS_BACKEND_FILES, names - HARNESS_BACKEND_FILES
