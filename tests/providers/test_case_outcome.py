"""Reading Case's completion signals: exit status alone never decides."""

from __future__ import annotations

import json

import pytest

from cto_harness.providers.case import classify, read_signals

OK = b"[unattended] Starting\n[unattended] Pipeline completed successfully.\n"
FAILED = b"[unattended] Starting\n[unattended] Pipeline failed at implement phase.\n"


def jl(*objects: dict[str, object]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


FINISHED_OK = {"msg": "pipeline finished", "outcome": "completed", "failedAgent": None}
FINISHED_FAILED = {"msg": "pipeline finished", "outcome": "failed", "failedAgent": "implementer"}
PARSE_ERROR = {"msg": "phase:implement", "status": "failed", "error": "AGENT_RESULT start delimiter not found"}


@pytest.mark.parametrize(("stdout", "stderr", "run_log", "exit_code", "timed_out", "expected"), [
    (OK, jl(FINISHED_OK), jl({"outcome": "completed"}), 0, False, None),
    (FAILED, jl(PARSE_ERROR, FINISHED_FAILED), b"", 0, False, "agent-protocol-error"),
    (FAILED, jl({"status": "retrying", "failureClass": "agent-protocol-error"}, FINISHED_FAILED), b"", 0, False,
     "agent-protocol-error"),
    (FAILED, jl({"msg": "phase:verify", "status": "failed", "error": "tests fail"}, FINISHED_FAILED), b"", 0, False,
     "agent-reported-failure"),
    (OK, jl(FINISHED_OK), jl({"outcome": "failed", "failedAgent": "reviewer"}), 0, False, "agent-reported-failure"),
    (b"[unattended] Starting\n", b"", b"", 0, False, "agent-protocol-error"),
    (b"", b"Fatal: config.json not found\n", b"", 1, False, "provider-crashed"),
    (b"[unattended] Starting\n", b"", b"", -15, True, "provider-timeout"),
])
def test_classification(stdout: bytes, stderr: bytes, run_log: bytes, exit_code: int, timed_out: bool,
                        expected: str | None) -> None:
    failure_class, _ = classify(read_signals(stdout, stderr, run_log), exit_code=exit_code, timed_out=timed_out)
    assert failure_class == expected


def test_crash_reason_is_the_fatal_line() -> None:
    stderr = b'{"msg": "loading"}\nError: Repo "x" not found in projects.json\n'
    _, reasons = classify(read_signals(b"", stderr, b""), exit_code=1, timed_out=False)
    assert reasons == ('Case exited 1: Error: Repo "x" not found in projects.json',)


def test_failed_agent_prefers_the_structured_log() -> None:
    signals = read_signals(FAILED, jl(PARSE_ERROR, FINISHED_FAILED), b"not json\n")
    assert signals.failed_agent == "implementer" and signals.outcome == "failed"
    assert signals.errors == ["AGENT_RESULT start delimiter not found"]


def test_colour_codes_and_trailing_lines_do_not_hide_the_outcome() -> None:
    stdout = (b"\x1b[32m[unattended] Pipeline completed successfully.\x1b[0m\n"
              b"[unattended] Run log: .case/run-log.jsonl\n")
    signals = read_signals(stdout, b"\x1b[31mFatal: boom\x1b[0m\n", b"")
    assert signals.stdout_outcome == "completed" and signals.fatal == "Fatal: boom"
