"""`health` and `validate case` end to end through the CLI, and the check registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import cli_env, run_cli

from cto_harness.evidence import verify_run
from cto_harness.providers.case import BEHAVIOURS, synthetic_ca_source
from cto_harness.selfcheck import _health as health
from cto_harness.selfcheck._lab import CheckResult, Lab
from cto_harness.supply_chain import active_admissions

REQUIRED_CHECKS = {"fake_lane_passes", "provider_timeout_fail_closed", "provider_unavailable_fail_closed",
                   "model_provider_gate_blocks", "agent_protocol_error_classified", "report_always_written",
                   "digest_mismatch_blocks"}
SYNTHETIC_REASON = "synthetic provider admitted by the self-check lab: not evidence of real case"


def _case_reports(runs_dir: Path) -> list[dict[str, Any]]:
    reports = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*/report.json"))]
    return [r for r in reports if r["provider"]["name"] == "case"]


def test_health_json_passes_with_the_required_checks(tmp_path: Path) -> None:
    result = run_cli("health", "--json", "--keep", str(tmp_path / "lab"), env=cli_env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert set(data["checks"]) >= REQUIRED_CHECKS
    for name in ("provider_timeout_fail_closed", "model_provider_gate_blocks"):
        assert data["checks"][name]["ok"] is True
    for name, check in data["checks"].items():
        assert check["status"] in ("ok", "fail", "skip") and check["status"] != "fail", name
        assert check["ok"] is (check["status"] == "ok"), name
    for name in REQUIRED_CHECKS:
        assert data["checks"][name]["status"] == "ok"
    # The test home has no client installed: each real-client check is skipped, never ok.
    for name in ("real_client_claude_code", "real_client_codex", "real_client_mini_swe_agent", "real_client_pi"):
        assert data["checks"][name]["status"] == "skip" and data["checks"][name]["ok"] is False
        assert "not installed" in data["checks"][name]["detail"]
    assert data["counts"]["skip"] == 4 and data["counts"]["fail"] == 0
    timeout_run = Path(data["checks"]["provider_timeout_fail_closed"]["run_dir"])
    assert (timeout_run / "backend" / "provider-timeout.txt").is_file() and (timeout_run / "report.json").is_file()
    # Every Case run of the kept lab ran the synthetic ca: each report says so itself.
    case_reports = _case_reports(tmp_path / "lab" / "runs")
    assert any(r["provider"]["admission"] is not None for r in case_reports)
    for report in case_reports:
        admission = report["provider"]["admission"]
        assert admission is None or admission["synthetic"] is True, report["run_id"]
        assert (SYNTHETIC_REASON in report["reasons"]) is (admission is not None), report["run_id"]


def test_validate_case_json_all_scenarios_hold(tmp_path: Path) -> None:
    result = run_cli("validate", "case", "--json", env=cli_env(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["kept"] is False
    assert {"good_fix_passes", "sleeping_provider_times_out", "hang_with_children_times_out",
            "agent_protocol_error_classified", "fatal_exit_is_provider_crashed", "missing_binary_blocks",
            "model_missing_blocks", "tampered_digest_blocks", "model_provider_gate_blocks"} <= set(data["checks"])
    assert all(check["ok"] for check in data["checks"].values())
    gate = data["checks"]["model_provider_gate_blocks"]["observed"]
    assert set(gate) == {"model_missing", "model_off_allowlist"}
    assert not Path(data["workdir"]).exists()


def test_a_lab_case_pass_says_its_provider_is_synthetic(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    result = lab.run("case-fix", environ=lab.case_environ("fix"))
    report = result.report
    assert (report.verdict, report.lane, report.provider.name) == ("pass", "real", "case"), report.reasons
    assert report.provider.admission is not None and report.provider.admission["synthetic"] is True
    assert SYNTHETIC_REASON in report.reasons
    on_disk = json.loads((result.run_dir / "report.json").read_text())
    assert on_disk["provider"]["admission"]["synthetic"] is True and SYNTHETIC_REASON in on_disk["reasons"]
    assert verify_run(result.run_dir, home=lab.home).ok
    (admission,) = active_admissions(lab.home, "case")
    assert admission.synthetic is True
    stored = json.loads((Path(admission.path).parent / "admission.json").read_text())
    assert stored["synthetic"] is True


def test_adding_a_check_is_one_function(tmp_path: Path) -> None:
    @health.health_check("always_fails_for_test")
    def always_fails(lab: Lab) -> CheckResult:
        return CheckResult(ok=False, expected=1, observed=2, run_dir=str(lab.runs_dir))

    try:
        suite = health.run_health(["always_fails_for_test"], workdir=tmp_path / "lab")
        assert suite.ok is False and list(suite.checks) == ["always_fails_for_test"]
        with pytest.raises(ValueError, match="already registered"):
            health.health_check("always_fails_for_test")(always_fails)
    finally:
        del health.CHECKS["always_fails_for_test"]
    with pytest.raises(KeyError, match="unknown health check"):
        health.run_health(["no_such_check"])


def test_synthetic_ca_never_reads_the_harness_solution() -> None:
    for behaviour in BEHAVIOURS:
        source = synthetic_ca_source(behaviour)
        assert "solution.patch" not in source and f"BEHAVIOUR = {behaviour!r}" in source
