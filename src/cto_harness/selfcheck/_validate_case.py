"""``cto-harness validate case``: the Case adapter against synthetic ``ca`` executables.

One scenario per path of the Case contract (``docs/case.md``): a well-behaved ``ca``
that fixes the fixture, one that sleeps, one that hangs with children in their own
session, a pipeline failed by an AGENT_RESULT parse error (exit 0), a ``Fatal:`` exit 1,
success reported with nothing edited, an agent-reported failure, no final line, a
missing binary, an unadmitted binary, a tampered admitted binary, and unadmitted models.
Each passes only if the report says exactly the expected verdict and class.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cto_harness.selfcheck._lab import (
    ADMITTED_MODEL,
    UNLISTED_MODEL,
    CheckResult,
    Expectation,
    Lab,
    LabCheck,
    SuiteResult,
    admit_synthetic,
    combine,
    observe,
    run_checks,
)
from cto_harness.supply_chain import admission_dir

__all__ = ["SCENARIOS", "tampered_digest", "validate_case"]

STARTED = "case_process_started"


def _started(verdict: str, failure_class: str | None, **more: str) -> Expectation:
    """A run whose Case process started (real lane)."""
    return Expectation(verdict, failure_class, lane="real", process_event=STARTED, tests_ran=True, **more)


def _blocked(failure_class: str, evidence_file: str) -> Expectation:
    return Expectation("blocked", failure_class, evidence_file=evidence_file, no_process_event=STARTED,
                       tests_ran=False)


def _behaviour(behaviour: str, expect: Expectation) -> LabCheck:
    def check(lab: Lab) -> CheckResult:
        return observe(lab.run(f"case-{behaviour}", environ=lab.case_environ(behaviour)), expect)
    return check


def _keyless_endpoint(lab: Lab) -> CheckResult:
    """A base URL and no credential: Case's agents still find a key where pi-ai looks (OPENAI_API_KEY)."""
    environ = lab.case_environ("fix", CTO_HARNESS_CASE_MODEL_BASE_URL="http://127.0.0.1:9/v1")
    return observe(lab.run("case-keyless-endpoint", environ=environ), _started("pass", None))


def _missing_binary(lab: Lab) -> CheckResult:
    result = lab.run("case-missing-binary", environ=lab.case_environ(None))
    return observe(result, _blocked("provider-unavailable", "provider-unavailable.txt"))


def _unadmitted_binary(lab: Lab) -> CheckResult:
    result = lab.run("case-unadmitted-binary", environ=lab.case_environ("fix", admitted=False))
    return observe(result, _blocked("provider-not-admitted", "provider-not-admitted.txt"))


def tampered_digest(lab: Lab) -> CheckResult:
    """Admit into a separate store, flip one byte of the stored copy, resolve from the store."""
    home = lab.workdir / "tamper-home"
    source = lab.bin_dir / "tamper" / "ca"
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lab.synthetic_ca("fix"), source)
    source.chmod(0o755)
    digest = admit_synthetic(source, home=home)
    stored_dir = admission_dir(home, digest)
    stored = stored_dir / "ca"
    stored_dir.chmod(0o755)
    stored.chmod(0o755)
    data = bytearray(stored.read_bytes())
    data[-2] ^= 0x01
    stored.write_bytes(bytes(data))
    environ = lab.case_environ("fix", CTO_HARNESS_HOME=str(home))
    del environ["CTO_HARNESS_CASE_BIN"]
    return observe(lab.run("case-tampered-digest", environ=environ),
                   _blocked("provider-digest-mismatch", "provider-digest-mismatch.txt"))


def _model(key: str, model: tuple[str, str] | None) -> LabCheck:
    def check(lab: Lab) -> CheckResult:
        result = lab.run(key, environ=lab.case_environ("fix", model=model))
        return observe(result, _blocked("model-not-admitted", "provider-model-not-admitted.txt"))
    return check


def _model_gate(lab: Lab) -> CheckResult:
    """The seed's ``model_provider_gate_blocks``: both model scenarios (their runs are shared)."""
    return combine({"model_missing": _model("case-model-missing", None)(lab),
                    "model_off_allowlist": _model("case-model-unlisted", UNLISTED_MODEL)(lab)})


SCENARIOS: dict[str, LabCheck] = {
    "good_fix_passes": _behaviour("fix", _started("pass", None)),
    "sleeping_provider_times_out": _behaviour(
        "sleep", _started("fail", "provider-timeout", evidence_file="provider-timeout.txt")),
    "hang_with_children_times_out": _behaviour(
        "hang-with-children", _started("fail", "provider-timeout", evidence_file="provider-timeout.txt")),
    "agent_protocol_error_classified": _behaviour("protocol-error", _started("fail", "agent-protocol-error")),
    "fatal_exit_is_provider_crashed": _behaviour(
        "fatal", _started("fail", "provider-crashed", reason_contains="Fatal: Model not found")),
    "success_without_edits_is_no_changes": _behaviour("noop-success", _started("fail", "no-changes")),
    "agent_reported_failure_classified": _behaviour("agent-failure", _started("fail", "agent-reported-failure")),
    "no_final_line_is_protocol_error": _behaviour("no-final-line", _started("fail", "agent-protocol-error")),
    "agent_on_other_model_fails_closed": _behaviour(
        "wrong-model", _started("fail", "model-not-admitted", reason_contains="verifier openai/some-other-model")),
    "keyless_endpoint_gets_the_pi_key_variable": _keyless_endpoint,
    "missing_binary_blocks": _missing_binary,
    "unadmitted_binary_blocks": _unadmitted_binary,
    "tampered_digest_blocks": tampered_digest,
    "model_missing_blocks": _model("case-model-missing", None),
    "model_off_allowlist_blocks": _model("case-model-unlisted", UNLISTED_MODEL),
    "model_provider_gate_blocks": _model_gate,
}
"""Scenario name -> check, in run order."""
assert ADMITTED_MODEL != UNLISTED_MODEL


def validate_case(*, workdir: Path | None = None) -> SuiteResult:
    """Run every Case scenario in one scratch lab.

    Raises:
        HarnessInterrupted: the harness was signalled.
    """
    return run_checks(SCENARIOS, workdir=workdir)
