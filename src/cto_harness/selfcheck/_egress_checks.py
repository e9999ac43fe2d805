"""Health checks of egress control: only the admitted endpoint is reachable, another model is refused."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from cto_harness.model_server import ScriptedModelServer, parse_script
from cto_harness.providers import RunOptions
from cto_harness.runner import RunResult
from cto_harness.selfcheck._lab import CheckResult, Lab
from cto_harness.selfcheck._listener import CountingListener, host_address

MODEL = "scripted-egress"
_AGENT = textwrap.dedent("""\
    #!{python}
    import json, socket, sys, urllib.request, urllib.error
    base_url, model, probes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = {{"status": None, "probes": {{}}}}
    body = json.dumps({{"model": model, "messages": [{{"role": "user", "content": "hi"}}]}}).encode()
    try:
        req = urllib.request.Request(base_url + "/chat/completions", data=body,
                                     headers={{"Content-Type": "application/json"}})
        with urllib.request.urlopen(req, timeout=30) as reply:
            out["status"] = reply.status
    except urllib.error.HTTPError as exc:
        out["status"] = exc.code
    except OSError as exc:
        out["status"] = type(exc).__name__
    for name, (host, port) in probes.items():
        try:
            socket.create_connection((host, port), timeout=3).close()
            out["probes"][name] = "connected"
        except OSError as exc:
            out["probes"][name] = type(exc).__name__
    print(json.dumps(out))
""")


def _agent(lab: Lab) -> Path:
    path = lab.bin_dir / "egress-agent"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_AGENT.format(python=sys.executable))
        path.chmod(0o755)
    return path


def _run(lab: Lab, key: str, *, model: str, probes: dict[str, list[Any]]) -> tuple[RunResult, dict[str, Any]]:
    script = parse_script({"model": MODEL, "steps": [{"action": "finish", "text": "done"}]}, "egress-health")
    with ScriptedModelServer(script) as server:
        probes.setdefault("second port", ["127.0.0.1", server.port + 1])
        literal = json.dumps(probes).replace("{", "{{").replace("}", "}}")  # not placeholders
        environ = {**lab.base_environ(), "CTO_HARNESS_COMMAND_BIN": str(_agent(lab)),
                   "CTO_HARNESS_COMMAND_ARGS": f"{{base_url}} {model} '{literal}'",
                   "CTO_HARNESS_COMMAND_MODEL_PROVIDER": "scripted", "CTO_HARNESS_COMMAND_MODEL": MODEL,
                   "CTO_HARNESS_COMMAND_BASE_URL": server.openai_base_url}
        result = lab.run(key, provider="command", environ=environ, options=RunOptions(unadmitted=True, timeout_s=60))
    try:
        said: dict[str, Any] = json.loads((result.run_dir / "backend" / "stdout.txt").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        said = {}
    return result, said


def egress_only_admitted_endpoint(lab: Lab) -> CheckResult:
    """A sandboxed agent reaches its model only through the proxy; host listeners get nothing."""
    loopback = CountingListener("127.0.0.1")
    address = host_address()
    outside = CountingListener(address) if address else None
    probes = {"host loopback listener": loopback.address}
    if outside is not None:
        probes["host non-loopback address"] = outside.address
    try:
        result, said = _run(lab, "egress-probe", model=MODEL, probes=probes)
    finally:
        loopback.close()
        if outside is not None:
            outside.close()
    report = result.report
    network = report.network
    observed = {"model_call": said.get("status"), "probes": said.get("probes"),
                "arrived": loopback.hits + (outside.hits if outside else 0),
                "mode": network.mode if network else None, "calls": network.calls if network else None}
    expected = {"model_call": 200, "probes": "none connected", "arrived": 0, "mode": "isolated", "calls": 1}
    probes_ok = bool(said.get("probes")) and all(v != "connected" for v in said["probes"].values())
    ok = (observed["model_call"] == 200 and probes_ok and observed["arrived"] == 0
          and observed["mode"] == "isolated" and observed["calls"] == 1)
    return CheckResult(ok=ok, expected=expected, observed=observed, run_dir=str(result.run_dir))


def model_mismatch_refused(lab: Lab) -> CheckResult:
    """An agent asking the endpoint for another model gets 403 and the run ends model-not-admitted."""
    result, said = _run(lab, "egress-other-model", model="claude-sonnet-4-6", probes={})
    report = result.report
    observed = {"model_call": said.get("status"), "verdict": report.verdict, "failure_class": report.failure_class,
                "denied": report.network.denied if report.network else None}
    expected = {"model_call": 403, "verdict": "fail", "failure_class": "model-not-admitted", "denied": 1}
    return CheckResult(ok=observed == expected, expected=expected, observed=observed, run_dir=str(result.run_dir))
