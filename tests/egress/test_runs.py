"""Whole Stage 2 runs of a ``command`` agent through the egress proxy against the scripted model."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

from egress_helpers import MODEL, bwrap_netns_works, model_server

from cto_harness.providers import RunOptions
from cto_harness.runner import RunRequest, RunResult, run_stage2

FIX = ('"""Small string helpers."""\n\nimport re\n\n\n'
       'def slugify(text):\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n')
EXPECTED_MODE = "isolated" if bwrap_netns_works() else "host"

AGENT = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys, urllib.request, urllib.error
    base_url, model, calls, fix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "fix"
    statuses = []
    for _ in range(calls):
        body = json.dumps({{"model": model, "messages": [{{"role": "user", "content": "fix slugify"}}],
                           "metadata": {{"key": os.environ.get("MY_API_KEY", "")}}}}).encode()
        headers = {{"Content-Type": "application/json", "Authorization": "Bearer " + os.environ.get("MY_API_KEY", "x")}}
        req = urllib.request.Request(base_url + "/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                statuses.append(reply.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
        except OSError as exc:
            statuses.append(type(exc).__name__)
    print(json.dumps({{"statuses": statuses, "base_url": base_url}}))
    if fix:
        open("strings.py", "w").write({FIX!r})
""")


def run(tmp_path: Path, base_url: str, *, model: str = "{model}", calls: int = 2, fix: bool = True,
        **extra: str) -> RunResult:
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    environ = {"PATH": "/usr/bin:/bin", "CTO_HARNESS_HOME": str(tmp_path / "home"), "CTO_HARNESS_CONFIG": "/dev/null",
               "CTO_HARNESS_COMMAND_BIN": str(agent),
               "CTO_HARNESS_COMMAND_ARGS": f"{{base_url}} {model} {calls} {'fix' if fix else 'nofix'}",
               "CTO_HARNESS_COMMAND_MODEL_PROVIDER": "scripted", "CTO_HARNESS_COMMAND_MODEL": MODEL,
               "CTO_HARNESS_COMMAND_BASE_URL": base_url, **extra}
    return run_stage2(RunRequest(provider="command", runs_dir=tmp_path / "runs", environ=environ,
                                 options=RunOptions(unadmitted=True, timeout_s=120)))


def ledger(result: RunResult) -> list[dict[str, Any]]:
    path = result.run_dir / "backend" / "model-calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def agent_said(result: RunResult) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((result.run_dir / "backend" / "stdout.txt").read_text().splitlines()[0])
    return out


def test_two_admitted_calls_and_a_real_fix_pass_on_the_record(tmp_path: Path) -> None:
    with model_server() as server:
        url = server.openai_base_url
        result = run(tmp_path, url)
        forwarded = len(server.requests)
    report = result.report
    assert (report.verdict, report.failure_class) == ("pass", None), report.reasons
    assert agent_said(result)["statuses"] == [200, 200]
    lines = ledger(result)
    assert len(lines) == 2 and all(x["allowed"] and x["status"] == 200 for x in lines)
    assert forwarded == 2
    measured = report.usage.measured
    assert measured is not None and measured.calls == 2
    assert measured.input_tokens == sum(x["input_tokens"] for x in lines) > 0
    assert measured.output_tokens == sum(x["output_tokens"] for x in lines) > 0
    assert measured.cost_usd is None
    assert report.network is not None
    assert (report.network.mode, report.network.calls, report.network.denied) == (EXPECTED_MODE, 2, 0)
    assert report.network.endpoint == url
    assert "backend/model-calls.jsonl" in report.artifacts
    assert not (result.run_dir / "egress").exists()


def test_another_model_is_refused_and_the_run_cannot_pass(tmp_path: Path) -> None:
    with model_server() as server:
        result = run(tmp_path, server.openai_base_url, model="claude-sonnet-4-6")
        forwarded = len(server.requests)
    report = result.report
    assert (report.verdict, report.failure_class) == ("fail", "model-not-admitted"), report.reasons
    assert "claude-sonnet-4-6" in report.reasons[0]
    assert agent_said(result)["statuses"] == [403, 403]
    assert forwarded == 0
    assert [x["allowed"] for x in ledger(result)] == [False, False]
    assert report.network is not None and report.network.denied == 2
    assert report.tests.passed  # the fix was real; the policy still decides


def test_max_calls_two_of_four_then_budget_exceeded(tmp_path: Path) -> None:
    with model_server() as server:
        result = run(tmp_path, server.openai_base_url, calls=4, CTO_HARNESS_COMMAND_MAX_CALLS="2")
        forwarded = len(server.requests)
    report = result.report
    assert (report.verdict, report.failure_class) == ("fail", "budget-exceeded"), report.reasons
    assert agent_said(result)["statuses"] == [200, 200, 429, 429]
    assert forwarded == 2
    assert report.usage.measured is not None and report.usage.measured.calls == 2
    assert "MAX_CALLS=2" in report.reasons[0]


def test_cost_is_priced_from_the_operator_table(tmp_path: Path) -> None:
    config = tmp_path / "cto-harness.toml"
    config.write_text(f'[prices."scripted/{MODEL}"]\ninput_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0\n')
    with model_server() as server:
        result = run(tmp_path, server.openai_base_url, CTO_HARNESS_CONFIG=str(config))
    measured = result.report.usage.measured
    assert measured is not None and measured.cost_usd is not None
    expected = ((measured.input_tokens or 0) * 3.0 + (measured.output_tokens or 0) * 15.0) / 1e6
    assert abs(measured.cost_usd - expected) < 1e-9


def test_cost_budget_without_a_price_blocks_before_start(tmp_path: Path) -> None:
    result = run(tmp_path, "http://127.0.0.1:9/v1", CTO_HARNESS_COMMAND_MAX_COST_USD="1")
    report = result.report
    assert (report.verdict, report.failure_class) == ("blocked", "provider-unavailable")
    assert "MAX_COST_USD" in report.reasons[0] and not report.backend.process_started


def test_endpoint_refusing_is_provider_crashed_with_count(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(tmp_path, f"http://127.0.0.1:{port}/v1", fix=False)
    report = result.report
    assert (report.verdict, report.failure_class) == ("fail", "provider-crashed"), report.reasons
    assert "connection refused x2" in report.reasons[0]
    assert any("changed nothing" in r for r in report.reasons)
    assert report.network is not None and report.network.endpoint_errors == {"connection refused": 2}


def test_kept_bodies_never_show_credentials(tmp_path: Path) -> None:
    key = "sk-live-0123456789abcdefghij"
    with model_server() as server:
        result = run(tmp_path, server.openai_base_url, CTO_HARNESS_KEEP_MODEL_BODIES="1", MY_API_KEY=key,
                     CTO_HARNESS_COMMAND_PASS_ENV="MY_API_KEY")
    assert result.report.verdict == "pass", result.report.reasons
    text = (result.run_dir / "backend" / "model-calls.jsonl").read_text()
    assert "request_body" in text and key not in text and "Bearer" not in text
