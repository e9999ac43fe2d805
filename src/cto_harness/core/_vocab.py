"""The closed vocabularies every room speaks: verdicts, failure classes, lanes, exit codes."""

from __future__ import annotations

from typing import Literal

Verdict = Literal["pass", "fail", "blocked", "error"]
FailureClass = Literal[
    "provider-unavailable",
    "provider-not-admitted",
    "provider-digest-mismatch",
    "model-not-admitted",
    "provider-timeout",
    "provider-crashed",
    "agent-protocol-error",
    "agent-reported-failure",
    "no-changes",
    "tests-failed",
    "budget-exceeded",
    "fixture-invalid",
    "harness-error",
]
Lane = Literal["fake", "real", "unadmitted"]
EXIT_CODES: dict[str, int] = {"pass": 0, "fail": 1, "blocked": 3, "error": 4}
"""CLI exit status per verdict; 2 is a usage error (no run)."""
USAGE_ERROR_EXIT = 2
