"""Case mode: the scripted model plays each WorkOS Case agent role.

Case spawns one pi agent per pipeline role with the role's prompt as the system prompt
(``# Implementer — Code Implementation Agent``, ``# Verifier — ...``, ...). Each
conversation is fresh, so the role is detected from the system prompt of every request
and the step is the number of tool results in that conversation. Every role ends its
work with the block Case parses::

    <<<AGENT_RESULT
    {"status": "completed", ...}
    AGENT_RESULT>>>

The implementer runs the script's action steps (the fixture's solution) and reports
``filesChanged`` + ``testsPassed``; the verifier runs the script's test command and
reports a passing rubric; the reviewer looks at the diff and reports a passing rubric
with no findings; the closer reports ``completed`` without a PR (it never runs ``gh``);
the retrospective reports ``completed``. Steps are idempotent when a role repeats (a
revision cycle or a retry): an edit whose ``old`` text is already gone fails in pi's edit
tool and the scripted agent carries on with the file already fixed.

A script's ``[case]`` table changes what a role reports, for failure paths::

    [case]
    implementer = "failed"     # completed | failed | no-result | hang | server-error | rubric-fail
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

CASE_ROLES = ("implementer", "verifier", "reviewer", "closer", "retrospective")
CaseRole = Literal["implementer", "verifier", "reviewer", "closer", "retrospective"]
CaseBehaviour = Literal["completed", "failed", "no-result", "hang", "rubric-fail", "server-error"]
"""``completed``: the role's work and a passing AGENT_RESULT. ``failed``: status failed.
``no-result``: a final answer without the AGENT_RESULT block (a protocol error).
``hang``: the server never answers that role's first request. ``server-error``: the
server answers that role's requests with HTTP 500. ``rubric-fail``
(verifier/reviewer): completed with a failing rubric category (reviewer: a hard one)."""

_ROLE_RE = re.compile(r"^# (Implementer|Verifier|Reviewer|Closer|Retrospective) — ", re.MULTILINE)
START, END = "<<<AGENT_RESULT", "AGENT_RESULT>>>"
VERIFIER_CATEGORIES = ("reproduced-scenario", "exercised-changed-path", "evidence-proves-change",
                       "edge-case-checked")
REVIEWER_CATEGORIES = ("principle-compliance", "test-sufficiency", "scope-discipline", "pattern-fit")
REVIEW_COMMAND = "git status --short && git log --oneline -3 && git diff HEAD~1 --stat"
CLOSER_COMMAND = "git log --oneline -3"


class CaseScript(BaseModel):
    """The ``[case]`` table of a script: what each role reports (default: completed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    implementer: CaseBehaviour = "completed"
    verifier: CaseBehaviour = "completed"
    reviewer: CaseBehaviour = "completed"
    closer: CaseBehaviour = "completed"
    retrospective: CaseBehaviour = "completed"

    def behaviour(self, role: CaseRole) -> CaseBehaviour:
        value: CaseBehaviour = getattr(self, role)
        return value


def case_role(system_text: str) -> CaseRole | None:
    """The Case agent role whose prompt heads the system prompt, if any."""
    match = _ROLE_RE.search(system_text)
    if match is None:
        return None
    role = match.group(1).lower()
    assert role in CASE_ROLES
    return role  # type: ignore[return-value]


def _artifacts(files: list[str] | None = None, tests_passed: bool | None = None) -> dict[str, object]:
    return {"commit": None, "filesChanged": files or [], "testsPassed": tests_passed, "screenshotUrls": [],
            "evidenceMarkers": [], "prUrl": None, "prNumber": None}


def _rubric(role: str, categories: tuple[str, ...], fail: str | None) -> dict[str, object]:
    return {"role": role, "categories": [
        {"category": c, "verdict": "fail" if c == fail else "pass",
         "detail": "scripted: failing on purpose" if c == fail else "scripted model: checked"}
        for c in categories]}


def agent_result(role: CaseRole, behaviour: CaseBehaviour, *, summary: str, files: list[str]) -> str:
    """The final answer of ``role``: a short text and its AGENT_RESULT block (or none)."""
    if behaviour == "no-result":
        return f"{summary}\n\n(scripted model: no AGENT_RESULT block on purpose)"
    result: dict[str, object] = {"status": "failed" if behaviour == "failed" else "completed",
                                 "summary": summary, "artifacts": _artifacts(), "error": None}
    if behaviour == "failed":
        result["error"] = f"scripted model: the {role} fails on purpose"
    if role == "implementer":
        result["artifacts"] = _artifacts(files, behaviour != "failed")
    elif role == "verifier":
        fail = VERIFIER_CATEGORIES[0] if behaviour == "rubric-fail" else None
        result["rubric"] = _rubric("verifier", VERIFIER_CATEGORIES, fail)
    elif role == "reviewer":
        fail = REVIEWER_CATEGORIES[0] if behaviour == "rubric-fail" else None
        result["rubric"] = _rubric("reviewer", REVIEWER_CATEGORIES, fail)
        result["findings"] = {"critical": 0, "warning": 0, "info": 0}
    elif role == "closer":
        result["summary"] = (f"{summary} No pull request was created: the scripted closer never runs "
                             "`gh pr create`.")
    return f"{summary}\n\n{START}\n{json.dumps(result)}\n{END}\n"
