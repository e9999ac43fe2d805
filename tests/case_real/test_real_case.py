"""Real ``ca`` through ``cto-harness``, offline against the Case-aware scripted model.

Every built-in fixture is certified (patch equals the fixture's solution, Case's own event
log agrees, every agent ran the admitted model, the closer ran contained), and the failure
paths are classified: protocol error, implementer failure, reviewer hard-fail, hang ->
timeout, endpoint down, endpoint HTTP 500.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cto_harness.fixtures import builtin_fixture_ids, resolve_fixture
from cto_harness.model_server import Script, load_script
from cto_harness.selfcheck import certify, run_scripted

from .conftest import RealCase

pytestmark = pytest.mark.real_case
FIXTURE = "r1-string-slugify"


def _without_index(patch: str) -> list[str]:
    return [line for line in patch.splitlines() if not line.startswith("index ")]


def _script(**case: str) -> Script:
    base = load_script(resolve_fixture(FIXTURE) / "model-script.toml")
    return base.model_copy(update={"case": base.case.model_copy(update=case)})


def _report(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return data


def test_certify_case_passes_on_every_builtin_fixture(real_case: RealCase, runs_dir: Path) -> None:
    result = certify("case", runs_dir=runs_dir, environ=real_case.environ, timeout_s=600)
    print("\n" + result.table())
    assert result.ok, result.table()
    assert [row.fixture for row in result.fixtures] == builtin_fixture_ids()
    for row in result.fixtures:
        report = _report(row.run_dir)
        assert report["provider"]["sha256"] == real_case.admission.sha256
        patch = (row.run_dir / "patch.diff").read_text()
        solution = (resolve_fixture(row.fixture) / "solution.patch").read_text()
        assert _without_index(patch) == _without_index(solution), row.fixture
        agent = report["agent_result"]
        assert agent["signals"] == {"stdout": "completed", "pipelineFinished": "completed", "runLog": "completed",
                                    "eventLog": "completed"}
        assert agent["phases"] == ["implementer", "verifier", "reviewer", "closer", "retrospective"]
        model = report["model"]
        assert {(a["provider"], a["model"]) for a in agent["agents"]} == {(model["provider"], model["model"])}
        assert (row.run_dir / agent["eventLog"]).is_file() and (row.run_dir / agent["plan"]).is_file()
        assert agent["containment"]["closerRan"] and agent["containment"]["contained"]
        measured = report["usage"]["measured"]  # on the wire, by the egress proxy
        assert measured["calls"] == row.model_requests > 0 and measured["input_tokens"] > 0
        assert report["usage"]["reported"] is None  # Case prints none of its own
        assert agent["endpoint"]["calls"] == row.model_requests


@pytest.mark.parametrize(("case", "failure_class", "failed_agent"), [
    ({"implementer": "no-result"}, "agent-protocol-error", "implementer"),
    ({"implementer": "failed"}, "agent-reported-failure", "implementer"),
    ({"reviewer": "rubric-fail"}, "agent-reported-failure", "reviewer"),
])
def test_failure_paths_are_classified(real_case: RealCase, runs_dir: Path, case: dict[str, str],
                                      failure_class: str, failed_agent: str) -> None:
    run = run_scripted("case", FIXTURE, runs_dir=runs_dir, environ=real_case.environ, script=_script(**case),
                       timeout_s=600)
    report = run.result.report
    assert (report.verdict, report.failure_class) == ("fail", failure_class), report.reasons
    assert report.agent_result is not None and report.agent_result["failedAgent"] == failed_agent
    assert report.agent_result["signals"]["eventLog"] == "failed"


def test_hang_is_killed_by_the_timeout(real_case: RealCase, runs_dir: Path) -> None:
    run = run_scripted("case", FIXTURE, runs_dir=runs_dir, environ=real_case.environ,
                       script=_script(implementer="hang"), timeout_s=15)
    report = run.result.report
    assert (report.verdict, report.failure_class) == ("fail", "provider-timeout"), report.reasons
    evidence = (run.result.run_dir / "backend" / "provider-timeout.txt").read_text()
    assert "pids killed:" in evidence  # runs_dir's teardown checks that none survived


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"endpoint_down": True}, "connection refused"),
    ({"script": _script(implementer="server-error")}, "500"),
])
def test_endpoint_failures_are_named(real_case: RealCase, runs_dir: Path, kwargs: dict[str, Any], says: str) -> None:
    """Case itself only says "AGENT_RESULT start delimiter not found"; the report names the endpoint."""
    run = run_scripted("case", FIXTURE, runs_dir=runs_dir, environ=real_case.environ, timeout_s=600, **kwargs)
    report = run.result.report
    assert (report.verdict, report.failure_class) == ("fail", "provider-crashed"), report.reasons
    assert "model endpoint" in report.reasons[0] and says in report.reasons[0], report.reasons
