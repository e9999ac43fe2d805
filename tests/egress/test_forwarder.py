"""The in-namespace forwarder: inside ``bwrap --unshare-net`` the admitted endpoint is the only exit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from egress_helpers import MODEL, Listener, bwrap_netns_works, model_server, running_proxy

from cto_harness.egress import FORWARDER, Budgets, EgressProxy, Endpoint, Ledger, Policy
from cto_harness.selfcheck import host_address

pytestmark = pytest.mark.skipif(not bwrap_netns_works(), reason="bubblewrap cannot make a network namespace here")

AGENT = textwrap.dedent("""
    import json, socket, sys, urllib.request
    port, probes = int(sys.argv[1]), json.loads(sys.argv[2])
    out = {"calls": [], "probes": {}}
    for model in sys.argv[3:]:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                out["calls"].append(r.status)
        except urllib.error.HTTPError as e:
            out["calls"].append(e.code)
    for name, (host, p) in probes.items():
        try:
            socket.create_connection((host, p), timeout=3).close()
            out["probes"][name] = "connected"
        except OSError as e:
            out["probes"][name] = type(e).__name__
    print(json.dumps(out))
""")


def _sandboxed(tmp: Path, port: int, sock: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    script = tmp / "forwarder.py"
    shutil.copyfile(FORWARDER, script)
    argv = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-net", "--unshare-pid", "--die-with-parent", "--cap-drop", "ALL", "--",
            os.path.realpath(sys.executable), "-I", "-S", str(script), str(port), str(sock), "--", *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_only_the_admitted_endpoint_is_reachable(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # longer than a Unix socket path may be
    deep.mkdir(parents=True)
    loopback = Listener("127.0.0.1")
    address = host_address()
    outside = Listener(address) if address else None
    with model_server() as server:
        endpoint = Endpoint.parse(server.openai_base_url)
        ledger = Ledger(deep / "model-calls.jsonl")
        proxy = EgressProxy(endpoint, Policy(model=MODEL, model_provider="scripted", budgets=Budgets()), ledger)
        proxy.listen_unix(deep / "proxy.sock")
        proxy.start()
        try:
            port = endpoint.inner_port()
            probes = {"host loopback listener": ["127.0.0.1", loopback.port],
                      "second port": ["127.0.0.1", port + 1]}
            if outside is not None:
                probes["host non-loopback address"] = [address, outside.port]
            proc = _sandboxed(tmp_path, port, deep / "proxy.sock",
                              [sys.executable, "-c", AGENT, str(port), json.dumps(probes), MODEL, MODEL, "other-model"])
        finally:
            proxy.stop()
        forwarded = len(server.requests)
    loopback.close()
    if outside is not None:
        outside.close()
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["calls"] == [200, 200, 403]
    assert forwarded == 2
    assert all(v != "connected" for v in result["probes"].values()), result["probes"]
    assert loopback.hits == 0 and (outside is None or outside.hits == 0)
    lines = [json.loads(x) for x in (deep / "model-calls.jsonl").read_text().splitlines()]
    assert sorted(x["allowed"] for x in lines) == [False, True, True]  # lines are in completion order
    assert not (deep / "proxy.sock").exists()


def test_exit_status_and_signal_of_the_provider_pass_through(tmp_path: Path) -> None:
    with model_server() as server, running_proxy(server.openai_base_url, tmp_path) as run:
        sock = tmp_path / "unused.sock"
        code = _sandboxed(tmp_path, 18080, sock, [sys.executable, "-c", "raise SystemExit(7)"])
        killed = _sandboxed(tmp_path, 18080, sock, [sys.executable, "-c",
                                                    "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
        missing = _sandboxed(tmp_path, 18080, sock, [str(tmp_path / "no-such-program")])
    del run
    assert code.returncode == 7
    assert killed.returncode in (-15, 143)
    assert missing.returncode == 127 and "cannot execute" in missing.stderr
