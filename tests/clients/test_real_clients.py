"""Real agent CLIs + scripted model + harness, end to end, offline.

Each test skips (with the reason) when its client is not installed; CI installs the
four with ``.ci/install-clients.sh``. Where ``unshare -rn`` works the scenario runs in a
loopback-only network namespace, so nothing can leave the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clients_helpers import require_client, run_driver

CLIENTS = ("claude-code", "codex", "mini-swe-agent", "pi")
PROTOCOL = {"claude-code": "anthropic-messages", "codex": "openai-responses",
            "mini-swe-agent": "openai-chat", "pi": "openai-chat"}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("client", CLIENTS)
def test_certify_passes_every_builtin_fixture(client: str, tmp_path: Path) -> None:
    """Every built-in fixture passes in the real lane, usage parsed, the client's own protocol logged."""
    home = require_client(client)
    result = run_driver("certify", client, home, tmp_path / "runs")
    assert result["ok"], result["table"]
    for row in result["fixtures"]:
        run_dir = Path(row["run_dir"])
        report = json.loads((run_dir / "report.json").read_text())
        assert (report["verdict"], report["lane"]) == ("pass", "real")
        for source in ("measured", "reported"):
            assert report["usage"][source]["input_tokens"] > 0 and report["usage"][source]["output_tokens"] > 0
        assert report["usage"]["measured"]["calls"] == row["model_requests"]
        assert report["network"]["calls"] == row["model_requests"]
        log = (run_dir / "backend" / "model-server.jsonl").read_text().splitlines()
        assert PROTOCOL[client] in {json.loads(line)["protocol"] for line in log}
        assert row["model_requests"] >= 2


@pytest.mark.parametrize("client", CLIENTS)
def test_endpoint_down_fails_fast(client: str, tmp_path: Path) -> None:
    """Nothing listens at the endpoint: the client gives up by itself (a crash or protocol error).

    It must never hang until the harness's backstop timeout (180 s) kills it: that would be
    ``provider-timeout`` with ``timed_out`` set. How fast it gives up is the bench's business.
    """
    home = require_client(client)
    result = run_driver("down", client, home, tmp_path / "runs")
    assert result["verdict"] == "fail"
    assert result["failure_class"] in ("provider-crashed", "agent-protocol-error"), result["reasons"]
    assert result["timed_out"] is False, result


@pytest.mark.parametrize("client", CLIENTS)
def test_model_not_admitted_blocks_before_start(client: str, tmp_path: Path) -> None:
    """No admitted model named: blocked, and no client process ever started."""
    home = require_client(client)
    result = run_driver("no-model", client, home, tmp_path / "runs")
    assert (result["verdict"], result["failure_class"]) == ("blocked", "model-not-admitted")
    assert result["process_started"] is False
    assert (Path(result["run_dir"]) / "backend" / "provider-model-not-admitted.txt").is_file()


@pytest.mark.parametrize("client", CLIENTS)
def test_script_that_never_edits_is_no_changes(client: str, tmp_path: Path) -> None:
    home = require_client(client)
    result = run_driver("noedit", client, home, tmp_path / "runs")
    assert (result["verdict"], result["failure_class"]) == ("fail", "no-changes"), result["reasons"]
    assert result["model_requests"] >= 1


@pytest.mark.parametrize("client", CLIENTS)
def test_edit_that_breaks_tests_is_tests_failed(client: str, tmp_path: Path) -> None:
    home = require_client(client)
    result = run_driver("break", client, home, tmp_path / "runs")
    assert (result["verdict"], result["failure_class"]) == ("fail", "tests-failed"), result["reasons"]
