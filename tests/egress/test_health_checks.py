"""``health`` gains egress_only_admitted_endpoint and model_mismatch_refused; the first fails without isolation."""

from __future__ import annotations

from pathlib import Path

import pytest
from egress_helpers import bwrap_netns_works

from cto_harness.selfcheck import _health as health
from cto_harness.selfcheck._egress_checks import egress_only_admitted_endpoint
from cto_harness.selfcheck._lab import Lab

needs_netns = pytest.mark.skipif(not bwrap_netns_works(), reason="bubblewrap cannot make a network namespace here")


@needs_netns
def test_egress_health_checks_hold(tmp_path: Path) -> None:
    suite = health.run_health(["egress_only_admitted_endpoint", "model_mismatch_refused"], workdir=tmp_path / "lab")
    assert suite.ok, {name: check.to_json() for name, check in suite.checks.items()}
    probe = suite.checks["egress_only_admitted_endpoint"].observed
    assert probe["model_call"] == 200 and probe["arrived"] == 0
    assert len(probe["probes"]) >= 2 and "connected" not in probe["probes"].values()


def test_without_the_sandbox_the_isolation_check_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is a real test of the defence: unconfined, the agent does reach the host listeners."""
    original = Lab.base_environ
    monkeypatch.setattr(Lab, "base_environ", lambda self: {**original(self), "CTO_HARNESS_SANDBOX": "none"})
    result = egress_only_admitted_endpoint(Lab(tmp_path / "lab"))
    assert not result.ok
    assert result.observed["mode"] == "host" and result.observed["arrived"] >= 1
    assert "connected" in result.observed["probes"].values()
